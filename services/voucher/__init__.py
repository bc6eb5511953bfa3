"""The voucher service (to come): QR codes, institution scans, usage and mutual-aid payments."""

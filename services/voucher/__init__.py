"""The voucher service (to come): QR codes, institution scans, usage records, mutual-aid payments."""

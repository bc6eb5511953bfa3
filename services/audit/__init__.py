"""The audit service (to come): the audit-trail projection, verification and replay tools."""

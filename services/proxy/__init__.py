"""The proxy service (to come): filings, resident registration and queries for proxy members."""

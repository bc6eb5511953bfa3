"""The identity service: insured persons, ID checks, places, passwords, face checks (domain)."""

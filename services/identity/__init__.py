"""The identity service (to come): insured persons, ID checks, places, passwords, face checks."""

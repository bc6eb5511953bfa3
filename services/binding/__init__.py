"""The binding service (to come): family-account, mutual-aid and proxy bindings; the family view."""

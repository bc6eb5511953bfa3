"""The review service (to come): review cases, reviewer queues, automatic rules per region."""

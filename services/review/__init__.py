"""The review service: review cases, reviewer queues by region, automatic review policies."""

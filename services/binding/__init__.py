"""The binding service: so far its pure domain (rules, errors, events, holder decider); no I/O."""

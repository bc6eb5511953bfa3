"""The binding service: pure domain so far (rules, commands, events, errors, decider); no I/O."""

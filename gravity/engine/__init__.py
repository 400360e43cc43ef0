"""The engine: worlds, models, objectives, the history spec and its training loop, the geometry
it records, the Defence protocol the loop runs (the defences themselves plug in from
`gravity.defences`), and the one loop that trains models outside a history (digits,
distillation). It imports nothing above it."""

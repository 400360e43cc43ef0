"""Instruments: what the library measures and reads off training histories (per-run measures,
same-basis nulls, first-passage statistics, frontiers). They build on the engine and never on
the run layer (sweeps, store, command line)."""

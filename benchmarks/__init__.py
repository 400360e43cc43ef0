"""`make bench`: gravity's engine measured against the ways peers train toy models, and against
the machine's matmul peak. `python -m benchmarks [--quick]` writes bench.json and prints a table;
see `benchmarks.bench` for how the pairs are formed and `benchmarks.config` for what is run."""

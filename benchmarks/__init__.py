"""Speed and memory benchmarks: scripts that print markdown tables (see README.md). Run from the repo root,
e.g. `python -m benchmarks.train_throughput`."""

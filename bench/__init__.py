"""Benchmarks: run with `python -m bench.run` from the repository root (see bench/README.md)."""

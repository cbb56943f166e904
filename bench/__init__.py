"""Benchmarks: `python -m bench.storefront` (see docs/benchmarks.md)."""

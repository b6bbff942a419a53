"""Benchmarks with in-run baselines; figures recorded in bench/RESULTS.md."""

"""Benchmarks: each scenario times our code against a bare baseline doing the same work."""

"""Benchmarks and long-running checks (run from the repository root)."""

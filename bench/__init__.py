"""Benchmarks (not part of the installed package; never imported by the app)."""

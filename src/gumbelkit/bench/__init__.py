"""Benchmarks: the diagnostic problems, and (later) kernel speed and published protocols."""

"""Benchmarks (``make bench``): figures and ratios against a baseline run alongside."""

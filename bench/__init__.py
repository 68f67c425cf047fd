"""Benchmarks of the dashboard against the embedded simulator (`make bench`).

Every figure is printed as `name: value (bound: value)`; nothing is asserted. See
docs/performance.md for the figures of a run and how to read them.
"""

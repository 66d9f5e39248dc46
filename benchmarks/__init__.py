"""Speed targets, measured outside the test suite: ``python -m benchmarks``."""

"""Experiments and benchmarks beside the product (the product never imports this package)."""

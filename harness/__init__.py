"""SR edge benchmarking harness."""

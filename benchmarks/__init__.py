"""Load generators and benchmarks that print numbers (never timed tests)."""

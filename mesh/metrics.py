"""Prometheus conventions shared by every service (no gRPC here: domain code may use them)."""

# Latency histogram buckets in seconds, from 1 ms: ours is a scoring system, not an LLM.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

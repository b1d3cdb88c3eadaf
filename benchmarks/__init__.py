"""Benchmarks: the sidecar's added latency, CPU and memory, measured against baselines in one run."""

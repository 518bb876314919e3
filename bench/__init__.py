"""Measurements: scoring transcripts against references, the offline limit, benchmarks."""

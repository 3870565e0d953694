"""Benchmarks of flask-trakkr-webhooks: ``python -m bench.run [--quick]`` (see bench/RESULTS.md)."""

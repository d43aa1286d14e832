"""Benchmarks for guardstream (pytest-benchmark); see README.md. Not part of the test suite."""

"""Throw-away real engines (PostgreSQL, SeaweedFS) for tests and benchmarks, on loopback."""

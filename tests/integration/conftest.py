"""Integration tests use the `postgres` and `database` fixtures of tests/conftest.py."""

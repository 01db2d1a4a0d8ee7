"""Fixtures of the integration tests; the servers themselves live in vendor_harness.py."""

from vendor_harness import vendor_server  # noqa: F401  (a fixture)

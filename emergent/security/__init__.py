"""Security and compliance: API tokens (tokens.py), envelope encryption at rest (crypto.py), retention,
purge and right-to-erasure (retention.py)."""

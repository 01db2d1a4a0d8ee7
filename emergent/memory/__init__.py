"""Short-term and long-term memory with decay, consolidation, backup and analytics."""

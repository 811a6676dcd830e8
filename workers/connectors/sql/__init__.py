"""The generic SQL target: one table in SQLite or PostgreSQL (settings, rows, errors, the connector)."""

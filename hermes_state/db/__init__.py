"""The SQLite shell: driver choice, engine, schema, revision check, error translation."""

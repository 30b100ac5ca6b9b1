"""The SQLite backend: everything that knows the store is a SQLite file lives in this package."""

"""The PostgreSQL backend: a fleet's shared store, selected by ``HERMES_STATE_URL`` (docs/fleet.md)."""

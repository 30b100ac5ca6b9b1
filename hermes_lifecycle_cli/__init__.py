"""The `hermes` command: a thin layer over hermes_lifecycle."""

"""The store's backends: each implements ``hermes_lifecycle.store.recorder.Recorder`` for one database."""

"""The store's backends: each implements ``hermes_state.store.recorder.Recorder`` for one database."""

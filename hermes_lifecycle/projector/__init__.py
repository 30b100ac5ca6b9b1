"""The projector: the log's desired states made real as s6 service slots."""

"""The store, whatever the database behind it: the append rules and the reads every backend shares."""

from .log import EventStore, StoreTransaction, ensure_default_profile

__all__ = ["EventStore", "StoreTransaction", "ensure_default_profile"]

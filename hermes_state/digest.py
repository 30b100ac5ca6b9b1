"""SHA-256 as the interpreter builds it in, for the chain and the schema check at every open.

A module of its own so that a reader checking the schema's tables does not
import the hash chain (``chain.py``), which only appends and doctor use.
"""

from __future__ import annotations

try:
    # The interpreter's own SHA-256 (3.12+: _sha2; 3.11: _sha256): hashlib would load OpenSSL,
    # milliseconds that every hook pays at start-up for one digest. Same function, same digests.
    from _sha2 import sha256
except ImportError:
    try:
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256

__all__ = ["sha256"]

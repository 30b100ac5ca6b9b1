"""SHA-256 as the interpreter builds it in, for the chain and the schema check at every open.

A module of its own so that a reader checking the schema's tables does not
import the hash chain (``chain.py``), which only appends and doctor use.
"""

from __future__ import annotations

import sys

# The interpreter's own SHA-256 (3.12+: _sha2; 3.11: _sha256): hashlib would load OpenSSL,
# milliseconds that every hook pays at start-up for one digest. Same function, same digests.
# Chosen by version: a failed import of the other name searches the whole sys.path first.
try:
    if sys.version_info >= (3, 12):
        from _sha2 import sha256
    else:
        from _sha256 import sha256
except ImportError:
    from hashlib import sha256

__all__ = ["sha256"]

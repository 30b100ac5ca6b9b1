"""A gateway's gateway_state.json on disk: read it with bounds, write it back as hermes-agent does.

Only the gateway user's own process (``watch-gateways``) calls these: the
file is that user's, and root never parses it (docs/reliability.md). It is
still untrusted input: no link is followed, only a regular file is read, and
its size and nesting are bounded before it is decoded. A write merges into
what is there (every key the gateway wrote stays), goes to a temporary file
beside it, is synced, and replaces the file only if nobody wrote it meanwhile:
hermes-agent's own discipline (``utils.atomic_json_write``), plus that check.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from typing import Any

from .records import Record
from .volume import NotRegular, TooLarge, open_nofollow, read_regular

FILE_NAME = "gateway_state.json"
MAX_BYTES = 256 * 1024  # hermes-agent's file with its 24 platforms is a few KB
MAX_DEPTH = 16  # its deepest value is platforms.NAME.field: 3


class Unreadable(ValueError):
    """The file cannot be taken as a gateway's account: one line, no event."""


class Seen(Record):
    """What a read found: the decoded content and the file's identity when it was read."""

    content: Any
    identity: tuple[int, int, int, int]  # device, inode, size, mtime in ns


def identity(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def read(path: str) -> Seen | None:
    """The file's content, or None when there is none; Unreadable for anything else than a small
    regular file of JSON (a link, a FIFO, a device, too big, too deep, not UTF-8, not JSON)."""
    try:
        fd = open_nofollow(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise Unreadable(f"cannot open it: {error.strerror}") from None
    try:
        raw, info = read_regular(fd, MAX_BYTES)
    except NotRegular:
        raise Unreadable("not a regular file") from None
    except TooLarge as large:
        raise Unreadable(f"{large.size} bytes, more than {MAX_BYTES}" if large.size is not None
                         else f"more than {MAX_BYTES} bytes") from None
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("not UTF-8") from None
    if _depth(text) > MAX_DEPTH:
        raise Unreadable(f"nested deeper than {MAX_DEPTH}")
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:  # what json.loads raises for any text it refuses
        raise Unreadable(f"not JSON ({error.msg})") from None
    return Seen(content, identity(info))


def _depth(text: str) -> int:
    """How deep the JSON text nests, without decoding it (the decoder recurses)."""
    deepest = depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def replace(path: str, content: dict[str, Any], expected: tuple[int, int, int, int] | None) -> bool:
    """Write ``content`` over ``path`` as one rename; False (nothing written) when the file is no longer
    the one read (``expected``: its identity then, None: there was none), so the caller reads again."""
    directory, name = os.path.split(path)
    staging = os.path.join(directory, f".{name}.hermes-state-{secrets.token_hex(6)}")
    mode = 0o600
    try:
        current = os.lstat(path)
    except FileNotFoundError:
        current = None
    if current is not None:
        mode = stat.S_IMODE(current.st_mode) & 0o666
    body = (json.dumps(content, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        # The nearest thing to a compare-and-swap a directory offers: the gateway may have written
        # since the read; then its words win and the caller looks again.
        try:
            now = identity(os.lstat(path))
        except FileNotFoundError:
            now = None
        if now != expected:
            return False
        os.rename(staging, path)
        staging = ""
        return True
    finally:
        if staging:
            try:
                os.unlink(staging)
            except FileNotFoundError:
                pass

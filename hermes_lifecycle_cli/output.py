"""What the CLI writes: JSON lines for programs, one line on stderr for a refusal, a progress bar.

Tables for people are ``grid.table``, the one table renderer."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Mapping


def say(line: str) -> None:
    """One line on stderr, whatever the message held (docs/design.md section 7: one clear line);
    an error may quote a row, so nothing in it reaches the terminal raw."""
    from .grid import printable

    print(printable(" ".join(line.split("\n"))), file=sys.stderr, flush=True)


def json_lines(rows: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object per line on stdout, and nothing else (``json_line``)."""
    out = sys.stdout
    for row in rows:
        out.write(json_line(row) + "\n")
    out.flush()


def json_line(row: Mapping[str, Any]) -> str:
    """``row`` as one line of JSON that keeps every value exact and writes nothing raw to a terminal.

    Values come from the store, which the gateway user writes: every character that is not
    printable (C1 controls, bidi overrides, line separators; JSON escapes the C0 ones itself)
    is written as its ``\\uXXXX`` escape, which any JSON reader turns back into it. A BLOB
    (a value no append writes; `hermes-state sql` may meet one) is ``{"blob": "<hex>"}``.
    """
    text = _LINE_ENCODER.encode(row)
    if text.isprintable():  # the common case costs one C-level scan
        return text
    return "".join(c if c.isprintable() else _json_escape(c) for c in text)


def _json_value(value: object) -> object:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"blob": bytes(value).hex()}
    raise TypeError(f"{type(value).__name__} is not JSON")


# json.dumps's options, made once: with any option it builds a new JSONEncoder per call, which was
# a fifth of `history --limit 0 --json` (100k lines). The same options, the same text.
_LINE_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), default=_json_value)


def _json_escape(character: str) -> str:
    code = ord(character)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a surrogate pair, as JSON spells a character beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def progress_bar(description: str, total: int, minimum: int = 2000):
    """A progress bar on a terminal for long work; a no-op otherwise. Returns (advance, close)."""
    if total < minimum or not sys.stderr.isatty():
        return (lambda n: None), (lambda: None)
    from rich.console import Console  # only here: a long run on a terminal pays its import
    from rich.progress import Progress

    progress = Progress(console=Console(stderr=True, highlight=False), transient=True)
    task = progress.add_task(description, total=total)
    progress.start()
    return (lambda n: progress.advance(task, n)), progress.stop

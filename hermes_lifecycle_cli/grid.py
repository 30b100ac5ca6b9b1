"""The one table renderer: every table a person reads (history, list, doctor, sql, import-legacy).

Plain aligned columns, bold headers and coloured event names on a terminal
(not when NO_COLOR is set or the output is a pipe). Not rich: importing it
costs ~25 ms, more than the interpreter's own start-up, and a table needs
none of it. A layout can be fixed in advance so `history --follow` prints
later rows under the same columns. Lines are never folded: a pipe or a file
gets each row whole on one line, a terminal wraps what is wider than it.

Every value shown comes from the store, which the gateway user writes:
``printable`` is the one way such text reaches a person's terminal (this
module's cells and headers, ``output.say``, ``gateway status``).
``--json`` keeps the exact values.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Mapping, Sequence

from hermes_lifecycle.records import Record

BOLD = "1"
RED = "31"
GREEN = "32"
YELLOW = "33"
BLUE = "34"
MAGENTA = "35"
CYAN = "36"
DIM = "2"


class Column(Record):
    key: str
    header: str
    right: bool = False  # numbers and ages align right


def use_colour(stream=None) -> bool:
    stream = stream or sys.stdout
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def paint(text: str, code: str | None, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if code and colour and text else text


CELL_LIMIT = 120  # characters of one value in a table; a huge `reason` must not make a line unreadable


def printable(text: str, limit: int | None = None) -> str:
    """``text`` safe to write to a terminal: every character that is not printable (controls,
    escape sequences, bidi overrides, line separators) is shown as its Python escape, e.g.
    ``\\x1b``, so nothing from a row can move the cursor, recolour or rewrite the screen.
    With ``limit``, longer text is cut and ends with an ellipsis."""
    if not text.isprintable():  # the common case costs one C-level scan
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text


def _cell(row: Mapping[str, Any], key: str, whole: bool = False) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):  # a BLOB `sql` met: as its JSON line says it
        return f'{{"blob": "{bytes(value).hex()}"}}'
    if whole:  # every character kept, a line break shown as \n: nothing cut, nothing a terminal would act on
        return printable(str(value))
    # One line per row, whatever a value holds; then nothing a terminal would act on.
    return printable(" ".join(str(value).split()), CELL_LIMIT)


class Grid:
    """Columns with widths fixed by ``fit``; ``lines`` renders rows under them.

    ``whole``: every value shown in full (doctor's details, `sql`'s values), not cut to
    ``CELL_LIMIT`` nor its whitespace folded, as the event tables' cells are."""

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        style: Callable[[str, str], str | None] | None = None,
        colour: bool | None = None,
        whole: bool = False,
    ) -> None:
        self.columns = list(columns)
        self.headers = [printable(c.header) for c in self.columns]  # `sql`'s column names come from the store too
        self.widths = [len(h) for h in self.headers]
        self.style = style or (lambda key, value: None)
        self.colour = use_colour() if colour is None else colour
        self.whole = whole

    def fit(self, rows: Sequence[Mapping[str, Any]], minimum: Mapping[str, int] | None = None) -> "Grid":
        minimum = minimum or {}
        for index, column in enumerate(self.columns):
            widest = max((len(_cell(row, column.key, self.whole)) for row in rows), default=0)
            self.widths[index] = max(self.widths[index], widest, minimum.get(column.key, 0))
        return self

    def _join(self, cells: Sequence[tuple[str, str | None]]) -> str:
        parts = []
        last = len(self.columns) - 1
        for index, ((text, code), column, width) in enumerate(zip(cells, self.columns, self.widths)):
            padded = text.rjust(width) if column.right else (text if index == last else text.ljust(width))
            parts.append(paint(padded, code, self.colour))
        return "  ".join(parts).rstrip()

    def header(self) -> str:
        return self._join([(h, BOLD) for h in self.headers])

    def line(self, row: Mapping[str, Any]) -> str:
        cells = []
        for column in self.columns:
            text = _cell(row, column.key, self.whole)
            cells.append((text, self.style(column.key, text)))
        return self._join(cells)

    def lines(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        return [self.header()] + [self.line(row) for row in rows]


def print_lines(lines: Sequence[str]) -> None:
    out = sys.stdout
    out.write("".join(line + "\n" for line in lines))
    out.flush()


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    title: str | None = None,
    empty: str = "(nothing)",
) -> None:
    """``rows`` in full under ``columns``, after ``title`` (a line of its own), on stdout;
    ``empty`` alone when there are none."""
    if not rows:
        print_lines([empty])
        return
    lines = [] if title is None else [printable(title)]
    print_lines(lines + Grid(columns, whole=True).fit(rows).lines(rows))

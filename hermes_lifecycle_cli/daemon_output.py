"""A daemon's stdout and stderr that never block it: its log is written by a thread of its own.

A daemon writes its log into a pipe (s6-log, `docker logs`). When the reader
stops reading (a logger that crash-loops on a read-only directory, a
terminal stopped with Ctrl-S), the pipe fills at 64 KiB and a plain write
blocks: the watch daemon then stopped acting while the log still asked for
changes. Here a write only queues the line; a writer thread empties the
queue into the descriptor and may block there alone. Past ``capacity``
bytes queued, lines are dropped and counted, and the count is said on the
same stream, as one JSON line, once the log takes lines again.

``install()`` puts such a stream in place of ``sys.stdout`` and
``sys.stderr`` (one writer when both are the same file, so lines never
interleave). Their ``flush()`` waits for nothing; at exit the process waits
for what is queued at most ``FLUSH_SECONDS``, so even its last line cannot
hold it.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from collections import deque

CAPACITY = 256 * 1024  # bytes queued before lines are dropped
FLUSH_SECONDS = 0.5


class DroppingWriter:
    """Whole lines to ``fd``, written by a thread; ``write_line`` never blocks."""

    def __init__(self, fd: int, *, capacity: int = CAPACITY) -> None:
        self.fd = fd
        self.capacity = capacity
        self.dropped = 0  # lines dropped since the last notice
        self.dropped_total = 0
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._writing = False
        self._ready = threading.Condition()
        threading.Thread(target=self._run, name=f"log-writer-{fd}", daemon=True).start()

    def write_line(self, line: bytes) -> None:
        with self._ready:
            if self._queued + len(line) > self.capacity:
                self.dropped += 1
                self.dropped_total += 1
                return
            self._queue.append(line)
            self._queued += len(line)
            self._ready.notify()

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Wait until everything queued is written, at most ``timeout`` seconds; True when it was."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while self._queue or self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._ready.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self.dropped:
                    self._ready.wait()
                if self._queue:
                    line = self._queue.popleft()
                    self._queued -= len(line)
                else:  # only a notice is due: the log took everything queued before the drops
                    line = b""
                notice = self.dropped if not self._queue else 0
                if notice:
                    self.dropped = 0
                self._writing = True
            try:
                self._write(line)
                if notice:
                    self._write(_dropped_notice(notice))
            finally:
                with self._ready:
                    self._writing = False
                    self._ready.notify_all()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except InterruptedError:
                continue
            except OSError:  # the reader is gone for good (EPIPE), or the descriptor is: nothing to wait for
                with self._ready:
                    self.dropped_total += 1
                return
            view = view[written:]


def _dropped_notice(count: int) -> bytes:
    from hermes_lifecycle.events import utc_now

    record = {"time": utc_now(), "log": "dropped", "lines": count,
              "why": "the log did not take them (a reader that stopped reading, or a full pipe)"}
    return (json.dumps(record, separators=(",", ":")) + "\n").encode()


class LineStream:
    """A text stream for ``sys.stdout``/``sys.stderr`` that hands whole lines to a DroppingWriter."""

    encoding = "utf-8"
    errors = "backslashreplace"

    def __init__(self, writer: DroppingWriter) -> None:
        self.writer = writer
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            text = self._partial + text
            *lines, self._partial = text.split("\n")
            for line in lines:
                self.writer.write_line((line + "\n").encode(self.encoding, self.errors))
        return len(text)

    def flush(self) -> None:
        """Queue an unfinished line as it is; waits for nothing (a log that does not read must not hold a
        ``print(..., flush=True)``)."""
        with self._lock:
            if self._partial:
                self.writer.write_line(self._partial.encode(self.encoding, self.errors))
                self._partial = ""

    def fileno(self) -> int:
        return self.writer.fd

    def isatty(self) -> bool:
        return os.isatty(self.writer.fd)

    def writable(self) -> bool:
        return True


def install() -> None:
    """Replace ``sys.stdout`` and ``sys.stderr`` by LineStreams for the rest of the process's life."""
    sys.stdout.flush()
    sys.stderr.flush()
    out = DroppingWriter(sys.stdout.fileno())
    err = out if _same_file(sys.stdout.fileno(), sys.stderr.fileno()) else DroppingWriter(sys.stderr.fileno())
    sys.stdout = LineStream(out)
    sys.stderr = LineStream(err)

    def last_lines() -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        deadline = time.monotonic() + FLUSH_SECONDS
        for writer in {id(out): out, id(err): err}.values():
            writer.flush(max(0.0, deadline - time.monotonic()))

    atexit.register(last_lines)


def _same_file(first: int, second: int) -> bool:
    one, two = os.fstat(first), os.fstat(second)
    return (one.st_dev, one.st_ino) == (two.st_dev, two.st_ino)

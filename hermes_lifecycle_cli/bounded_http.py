"""An HTTP server whose every connection is bounded: in number, in time and in bytes.

The standard library's ThreadingHTTPServer gives each connection a thread that
waits for its request as long as the client likes: 6,000 held partial
requests made 5,700 threads and over a gigabyte, `/metrics` went unanswered,
and SIGTERM did not stop it. Here one thread reads every request head without
blocking (``selectors``), and only a complete head reaches one of a few
worker threads, which answer it with the usual ``BaseHTTPRequestHandler``:

- at most ``max_connections`` connections at once; at the bound, a new one
  closes the oldest that has not sent its head yet (it has had the longest),
  so a client that sends its request at once is answered under a flood of
  held ones;
- a head must arrive within ``head_timeout`` seconds and ``max_head_bytes``;
- an answer is written with a ``write_timeout`` on the socket;
- ``serve_until(stop)`` returns within ``POLL_SECONDS`` of ``stop`` being set
  and leaves nothing to wait for: the workers are daemon threads.

Only requests without a body are read (the operators' view answers GET and
HEAD); each connection carries one request.
"""

from __future__ import annotations

import io
import queue
import selectors
import socket
import sys
import threading
import time
import traceback
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler

POLL_SECONDS = 0.2
ACCEPTS_PER_TURN = 64  # then the loop reads what has arrived, so a flood of connects cannot starve reading


class _Partial:
    __slots__ = ("sock", "address", "head", "deadline")

    def __init__(self, sock: socket.socket, address, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.head = b""
        self.deadline = deadline


class BoundedHTTPServer:
    def __init__(
        self,
        address: tuple,
        handler_class: type[BaseHTTPRequestHandler],
        *,
        family: int = socket.AF_INET,
        max_connections: int = 256,
        workers: int = 4,
        head_timeout: float = 5.0,
        write_timeout: float = 10.0,
        max_head_bytes: int = 16 * 1024,
    ) -> None:
        self.handler_class = _answering_a_read_head(handler_class)
        self.max_connections = max_connections
        self.head_timeout = head_timeout
        self.write_timeout = write_timeout
        self.max_head_bytes = max_head_bytes
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(address)
            self.listener.listen(128)
        except OSError:
            self.listener.close()
            raise
        self.listener.setblocking(False)
        self.server_address = self.listener.getsockname()
        self._partials: OrderedDict[int, _Partial] = OrderedDict()  # by fd, oldest first
        self._busy = 0  # connections handed to a worker and not closed yet
        self._busy_lock = threading.Lock()
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        for number in range(workers):
            threading.Thread(target=self._worker, name=f"http-worker-{number}", daemon=True).start()

    # -- the reading loop (one thread) ------------------------------------------------
    def serve_until(self, stop: threading.Event) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        try:
            while not stop.is_set():
                for key, _ in selector.select(timeout=POLL_SECONDS):
                    if key.fileobj is self.listener:
                        self._accept(selector)
                    elif key.fd in self._partials:
                        self._read(selector, self._partials[key.fd])
                self._expire(selector)
        finally:
            for partial in list(self._partials.values()):
                self._drop(selector, partial)
            selector.close()

    def close(self) -> None:
        self.listener.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors, or the client gave up: make room, try at the next turn
                self._evict_oldest(selector)
                return
            if len(self._partials) + self._busy_count() >= self.max_connections and not self._evict_oldest(selector):
                sock.close()  # every connection is being answered: this one waits its turn at the client
                continue
            sock.setblocking(False)
            partial = _Partial(sock, address, time.monotonic() + self.head_timeout)
            self._partials[sock.fileno()] = partial
            selector.register(sock, selectors.EVENT_READ)
            self._read(selector, partial)  # a client that sent its request with the connect is served now

    def _read(self, selector: selectors.BaseSelector, partial: _Partial) -> None:
        try:
            data = partial.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(selector, partial)
            return
        partial.head += data
        if b"\r\n\r\n" in partial.head or b"\n\n" in partial.head:
            self._forget(selector, partial)
            with self._busy_lock:
                self._busy += 1
            self._work.put(partial)
        elif len(partial.head) > self.max_head_bytes:
            self._drop(selector, partial)

    def _expire(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        while self._partials:
            oldest = next(iter(self._partials.values()))
            if oldest.deadline > now:
                return
            self._drop(selector, oldest)

    def _evict_oldest(self, selector: selectors.BaseSelector) -> bool:
        if not self._partials:
            return False
        self._drop(selector, next(iter(self._partials.values())))
        return True

    def _forget(self, selector: selectors.BaseSelector, partial: _Partial) -> None:
        self._partials.pop(partial.sock.fileno(), None)
        selector.unregister(partial.sock)

    def _drop(self, selector: selectors.BaseSelector, partial: _Partial) -> None:
        self._forget(selector, partial)
        partial.sock.close()

    def _busy_count(self) -> int:
        with self._busy_lock:
            return self._busy

    # -- the workers ---------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            partial = self._work.get()
            try:
                partial.sock.setblocking(True)
                partial.sock.settimeout(self.write_timeout)
                self.handler_class(partial, partial.address, self)  # type: ignore[arg-type]  # kept as .server, nothing of BaseServer called
            except OSError:
                pass  # the client went away or stopped reading: its answer is lost, the worker is not
            except Exception:  # a bug costs one answer, never a worker: said on stderr
                traceback.print_exc(file=sys.stderr)
            finally:
                partial.sock.close()
                with self._busy_lock:
                    self._busy -= 1


def _answering_a_read_head(handler_class: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
    """``handler_class`` for a connection whose head was read already: its request is the
    ``_Partial``, its rfile that head, its wfile the socket (with its write timeout)."""

    class Handler(handler_class):  # type: ignore[valid-type, misc]  # a base given at run time
        def setup(self) -> None:
            partial: _Partial = self.request
            self.connection = partial.sock
            self.rfile = io.BytesIO(partial.head)
            self.wfile = partial.sock.makefile("wb", buffering=0)

    Handler.__name__ = Handler.__qualname__ = handler_class.__name__
    return Handler

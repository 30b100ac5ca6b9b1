"""`hermes-state serve`: the operators' view over HTTP, read-only: `/metrics`, `/`, `/profiles/NAME`.

A small server whose connections are bounded in number, time and bytes
(``bounded_http``): a flood of held connections costs no thread, and
`/metrics` is still answered. Every request opens the store read-only and
reads one snapshot, so a store that goes missing, locked or corrupt costs
that request a clear page (503), never the server, and one that comes back
is served again at once. `--once PATH` answers one request on stdout instead
(cron, a textfile collector, a quick look).
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import signal
import socket
import sys
import threading
import traceback
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from hermes_lifecycle.errors import BadInput, HermesError, InvalidName, NotFound, StoreUnavailable
from hermes_lifecycle.operators import read_fleet, read_timeline
from hermes_lifecycle.records import Record
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import PAGE, open_store
from hermes_lifecycle.vocabulary import format_time

from .. import daemon_output, operators_metrics, operators_page
from ..bounded_http import BoundedHTTPServer
from ..options import parse_when
from .common import settings as settings_from_env

DEFAULT_LISTEN = "127.0.0.1:9130"
REFRESH_SECONDS = 30
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
# What --once exits with, by the answer's status (docs/design.md section 7).
EXIT_FOR_STATUS = {200: 0, 400: 2, 404: 3, 500: 1, 503: 5}


class Answer(Record):
    status: int
    content_type: str
    body: bytes
    problem: str | None = None  # the one line that says what went wrong


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9130`` for IPv6); the port may be 0 (any free one)."""
    host, separator, port_text = text.rpartition(":")
    if not separator or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise BadInput(f"invalid --listen {text!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OperatorsView:
    """Answers a request path from the store: the same for the HTTP server and `--once`."""

    def __init__(self, settings: Settings, *, check_interval: float) -> None:
        self.settings = settings
        self.health = operators_metrics.StoreHealth(self.quick_check, check_interval)
        self.registry = operators_metrics.metrics_registry(
            operators_metrics.StoreCollector(self._fleet_with_totals, self.health)
        )

    def open(self):
        # A reader waits at most a second for a lock: a scrape must answer well inside Prometheus' timeout.
        return open_store(self.settings, readonly=True, purpose=PAGE)

    def quick_check(self) -> list[str] | None:
        with self.open() as store:
            return store.recorder.quick_check()

    def host(self) -> str | None:
        """In a fleet, the host whose profiles this server shows (each host serves its own); else None."""
        return self.settings.host_id(create=False) if self.settings.fleet else None

    def _fleet_with_totals(self, now: datetime):
        host = self.host()
        with self.open() as store:
            return read_fleet(store, now, recent_crashes=False, crash_totals=True, host=host)

    def answer(self, target: str) -> Answer:
        parts = urlsplit(target)
        path = parts.path
        try:
            if path == "/metrics":
                return Answer(200, operators_metrics.CONTENT_TYPE, operators_metrics.exposition(self.registry))
            if path == "/":
                return self._html(200, self._overview())
            if path.startswith("/profiles/"):
                return self._html(200, self._profile(unquote(path[len("/profiles/"):]), parts.query))
            return self._problem(404, "not found", f"nothing at {path}: try / or /metrics")
        except NotFound as error:
            return self._problem(404, "not found", str(error))
        except BadInput as error:
            return self._problem(400, "bad request", str(error))
        except StoreUnavailable as error:
            return self._problem(503, "event store unavailable", str(error))
        except HermesError as error:  # expected elsewhere, unexpected here: said, and answered 500
            return self._problem(500, "error", str(error))

    def _overview(self) -> str:
        now = datetime.now(timezone.utc)
        host = self.host()
        with self.open() as store:
            fleet = read_fleet(store, now, recent_crashes=True, crash_totals=False, host=host)
        return operators_page.render_overview(fleet, refresh_seconds=REFRESH_SECONDS)

    def _profile(self, name: str, query: str) -> str:
        values = parse_qs(query, keep_blank_values=True).get("since", [])
        if len(values) > 1:
            raise BadInput("since given more than once")
        since_text = values[0] if values and values[0].strip() else ""
        now = datetime.now(timezone.utc)
        since = None  # none asked for: chosen from the profile's runs (operators.window_from)
        if since_text:
            since = parse_when(since_text, "since", now)
            if since >= format_time(now):
                raise BadInput(f"invalid since {since_text!r}: it is not in the past")
        try:
            with self.open() as store:
                timeline = read_timeline(store, name, since=since, now=now)
        except InvalidName:
            raise NotFound(f"no profile named {name!r}") from None
        return operators_page.render_timeline(timeline, since_text=since_text, now=now)

    def _html(self, status: int, text: str) -> Answer:
        return Answer(status, HTML, text.encode("utf-8"))

    def _problem(self, status: int, heading: str, detail: str) -> Answer:
        body = operators_page.render_problem(status, heading, detail).encode("utf-8")
        return Answer(status, HTML, body, f"{status} {heading}: {detail}")


def _handler_class(view: OperatorsView):
    class Handler(BaseHTTPRequestHandler):
        def version_string(self) -> str:
            return "hermes-state"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._respond(with_body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._respond(with_body=False)

        def _respond(self, *, with_body: bool) -> None:
            try:
                answer = view.answer(self.path)
            except Exception:  # a bug must cost one request, not the server: said on stderr, answered 500
                traceback.print_exc(file=sys.stderr)
                answer = Answer(500, TEXT, b"internal error: see the server's stderr\n")
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
            self.end_headers()
            if with_body:
                self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # a scrape every few seconds is not news; failures are said where they happen

        def log_error(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write(f"hermes-state serve: {self.address_string()}: {format % args}\n")

    return Handler


def serve(args: argparse.Namespace) -> int:
    config = settings_from_env()
    if not math.isfinite(args.check_interval) or args.check_interval <= 0:
        raise BadInput(f"invalid --check-interval {args.check_interval}: expected seconds above 0")
    view = OperatorsView(config, check_interval=args.check_interval)
    health = view.health
    if args.once is not None:
        if urlsplit(args.once).path == "/metrics":
            health.check_now()  # hermes_state_store_ok reports it; the pages do not need it
        answer = view.answer(args.once)
        sys.stdout.buffer.write(answer.body)
        sys.stdout.flush()
        if answer.problem:
            print(f"hermes-state: {answer.problem}", file=sys.stderr)
        return EXIT_FOR_STATUS.get(answer.status, 1)

    daemon_output.install()  # its lines must never hold it (docs/reliability.md)
    host, port = parse_listen(args.listen)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = BoundedHTTPServer((host, port), _handler_class(view), family=family)
    except OSError as error:
        raise BadInput(f"cannot listen on {args.listen}: {error.strerror or error}") from None
    stop = threading.Event()
    def check() -> None:
        health.check_now()
        health.run(stop)

    checker = threading.Thread(target=check, name="quick-check", daemon=True)
    checker.start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    exposure = "" if is_loopback(host) else " (not loopback: reachable from other machines)"
    print(f"hermes-state serve: http://{shown}:{bound_port}/ read-only on {config.store_location}{exposure}",
          file=sys.stderr, flush=True)
    try:
        server.serve_until(stop)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a person stops a server in the foreground
    finally:
        stop.set()
        server.close()
    return 0

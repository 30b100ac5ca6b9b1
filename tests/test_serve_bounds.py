"""`hermes-state serve` under a flood of held connections: a real server subprocess as the unprivileged
user, thousands of real loopback connections that send half a request and then wait.

The container can listen on 0.0.0.0, so anyone who reaches the port can hold
connections open. Before the bound, each held one was a thread: 6,000 made
5,700 threads and over 1 GB, `/metrics` went unanswered for 20 s, and SIGTERM
did not stop the server within 5 s.
"""

from __future__ import annotations

import resource
import socket
from pathlib import Path

import pytest

from projector_support import stops_on_sigterm_within
from serve_support import start_server

pytestmark = pytest.mark.slow

HELD = 3000
PARTIAL = b"GET /metrics HTTP/1.1\r\nHost: flood\r\nX-Waiting: "  # no blank line: the head never ends


def status_field(pid: int, name: str) -> int:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith(name + ":"))
    return int(line.split()[1])


@pytest.fixture
def enough_descriptors():
    """The test holds HELD sockets itself; the server inherits the same limit (as it would in a container)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = HELD + 512
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard limit on open files is {hard}; the flood needs {needed}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def hold(port: int, count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(PARTIAL)
        except OSError:
            sock.close()  # the server closed it already, or its backlog was full: it holds nothing of ours
            continue
        held.append(sock)
    return held


def test_held_partial_requests_cost_no_thread_and_metrics_is_still_answered(migrated_home, world_tmp,
                                                                            enough_descriptors):
    assert migrated_home.hermes("create", "alice").returncode == 0
    server = start_server(migrated_home.env(), migrated_home.user, world_tmp / "serve.err")
    pid = server.process.pid
    held: list[socket.socket] = []
    try:
        threads_idle = status_field(pid, "Threads")
        held = hold(server.port, HELD)
        assert len(held) > HELD // 2, "the flood did not get through to the server"
        # The flood is all read by one thread: the server has as many threads as before it.
        assert status_field(pid, "Threads") <= threads_idle + 1
        assert status_field(pid, "VmRSS") < 200 * 1024  # kB

        reply = server.get("/metrics", timeout=5)
        assert reply.status == 200 and "hermes_gateway_desired_up" in reply.body

        # A connection that never finishes its head is closed by the server (head timeout, 5 s),
        # or earlier, when newer connections push it out at the bound.
        late = socket.create_connection(("127.0.0.1", server.port), timeout=2)
        late.sendall(PARTIAL)
        late.settimeout(15)
        assert late.recv(1024) == b""
        late.close()

        stops_on_sigterm_within(server.process)
    finally:
        for sock in held:
            sock.close()
        server.stop()
    assert "Traceback" not in server.stderr()


def test_a_log_that_stops_reading_never_stops_the_server(migrated_home):
    """In the container its lines go to the container's output; a full pipe there held its first line."""
    import urllib.request

    from conftest import HERMES
    from projector_support import daemon_with_a_full_log, wait_for
    from serve_support import free_port

    port = free_port()
    argv = [str(HERMES), "serve", "--listen", f"127.0.0.1:{port}"]
    with daemon_with_a_full_log(argv, migrated_home.env(), migrated_home.user) as process:
        def metrics():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
                    return reply.status
            except OSError:
                return None

        assert wait_for(metrics, 15, "/metrics answered with the server's log full") == 200
        stops_on_sigterm_within(process)

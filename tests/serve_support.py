"""A real `hermes-state serve` for the tests: a subprocess as the unprivileged user on a free loopback port."""

from __future__ import annotations

import signal
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from prometheus_client.parser import text_string_to_metric_families

from conftest import HERMES, User
from projector_support import wait_for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: str


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 10) -> Response:
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as reply:
                return Response(reply.status, dict(reply.headers), reply.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read().decode("utf-8"))

    def metrics(self) -> dict[str, list]:
        """``/metrics`` parsed by prometheus_client's own parser: family name -> its samples."""
        response = self.get("/metrics")
        assert response.status == 200, response.body
        assert response.headers["Content-Type"].startswith("text/plain; version=")  # the text exposition format
        return {family.name: family.samples for family in text_string_to_metric_families(response.body)}

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """SIGTERM, as s6 stops a longrun; the server's exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()  # by its pid: never leave it behind
            self.process.wait()
            raise AssertionError("hermes-state serve did not stop on SIGTERM") from None

    def stderr(self) -> str:
        return self.log.read_text()


def start_server(env: Mapping[str, str], user: User, log: Path, *args: str) -> Server:
    port = free_port()
    kwargs = {} if user.is_self else {"user": user.uid, "group": user.gid, "extra_groups": []}
    process = subprocess.Popen(
        [str(HERMES), "serve", "--listen", f"127.0.0.1:{port}", *args], env=dict(env),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log.open("wb"), **kwargs,
    )
    server = Server(process, port, log)

    def answering() -> bool:
        assert server.alive(), f"hermes-state serve exited {process.returncode}: {log.read_text()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    try:
        wait_for(answering, 15, "hermes-state serve to listen", interval=0.05)
    except BaseException:
        server.stop()
        raise
    return server


def samples_by_profile(families: dict[str, list], family: str, value_of=lambda s: s.value) -> dict[str, object]:
    return {sample.labels["profile"]: value_of(sample) for sample in families.get(family, [])}

"""The page in a real browser: Debian's chromium, headless, loads `/` and `/profiles/NAME` from a real
`hermes-state serve` while real gateways run and crash under s6, and screenshots both: into a
temporary directory, or with `pytest --record-screenshots` into docs/ (docs/operators.md shows them).
A hostile name's script never runs there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_as
from projector_support import rig_for, wait_for
from serve_support import start_server
from test_serve_hostile import _TAMPER, HOSTILE_NAME, HOSTILE_REASON

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
DOCS = Path(__file__).resolve().parent.parent / "docs"
OVERVIEW_SHOT = "operators-overview.png"
PROFILE_SHOT = "operators-profile.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (`make system-deps` installs it)"
)


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless chromium with a profile of its own; nothing reaches the network but the server."""
    profile = tmp / f"chromium-{time.monotonic_ns()}"
    argv = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--hide-scrollbars", *args,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp)})
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def screenshot(tmp: Path, url: str, path: Path, size: str) -> None:
    chromium(tmp, f"--screenshot={path}", f"--window-size={size}", url)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def dom(tmp: Path, url: str) -> str:
    return chromium(tmp, "--dump-dom", url).stdout


def started_last(rig, name: str) -> bool:
    """The newest event of ``name`` is a supervisor start: a run is going and recorded."""
    newest = rig.history(name)[-1]
    return newest["type"] == "started" and newest["actor"] == "supervisor"


@pytest.fixture
def screenshots(request, world_tmp) -> Path:
    """Where the screenshots go: docs/ only when asked (--record-screenshots), so a test run changes no tracked file."""
    if request.config.getoption("--record-screenshots"):
        return DOCS
    directory = world_tmp / "screenshots"
    directory.mkdir()
    return directory


@needs_chromium
def test_chromium_loads_both_pages_and_screenshots_them(world_tmp, home, screenshots):
    # Runs a few seconds long, so each shows as a bar in docs/'s picture; nothing asserted depends on
    # their length, so a run that records nothing does not wait for them (11 s).
    pause = time.sleep if screenshots == DOCS else (lambda seconds: None)
    with rig_for(world_tmp, home, booted=True, HERMES_WATCH_POLL_INTERVAL="0.5") as rig:
        watch = rig.start_watch()
        server = None
        try:
            rig.append("create", "alice", "crashy", "config", "bob", "carol")
            rig.append("start", "alice", "bob", "carol")
            first = wait_for(lambda: rig.running_pid("alice"), 10, "alice up")
            wait_for(lambda: started_last(rig, "alice"), 10, "alice's start recorded")
            rig.append("start", "crashy", "config")
            pause(3)
            os.kill(first, signal.SIGKILL)  # a crash by a signal; s6 starts alice again
            wait_for(lambda: (p := rig.running_pid("alice")) and p != first, 10, "alice up again")
            wait_for(lambda: started_last(rig, "alice"), 10, "alice's second start recorded")
            pause(3)
            rig.cli("restart", "alice")
            wait_for(lambda: [r["reason"] for r in rig.history("alice")].count("restart") == 2, 10, "alice restarted")
            wait_for(lambda: started_last(rig, "alice"), 10, "alice's third start recorded")
            pause(3)
            rig.append("stop", "alice", "bob")
            wait_for(lambda: rig.history("alice")[-1]["reason"] == "requested", 10, "alice stopped")
            pause(2)
            rig.append("start", "alice")
            wait_for(lambda: started_last(rig, "alice") and rig.running_pid("alice"), 10, "alice running again")
            wait_for(lambda: rig.history("crashy")[-1]["reason"] == "crash-loop", 15, "crashy's breaker")
            wait_for(lambda: rig.history("config")[-1]["reason"] == "fatal-config", 10, "config held down")

            server = start_server(rig.env(), rig.user, world_tmp / "serve.err")
            overview = dom(world_tmp, f"{server.base}/")
            for name in ("alice", "crashy", "config", "bob", "carol", "default"):
                assert f'<a href="/profiles/{name}">{name}</a>' in overview
            assert re.search(r"crash-loop</span>", overview) and "fatal-config" in overview
            timeline = dom(world_tmp, f"{server.base}/profiles/alice?since=1m")
            assert "<svg" in timeline and "crash, SIGKILL" in timeline and "stop requested" in timeline
            assert "restart" in timeline and "running" in timeline

            screenshot(world_tmp, f"{server.base}/", screenshots / OVERVIEW_SHOT, "1280,420")
            screenshot(world_tmp, f"{server.base}/profiles/alice?since=1m", screenshots / PROFILE_SHOT, "1280,560")
        finally:
            if server is not None:
                assert server.stop() == 0, server.stderr()
            rig.stop_watch(watch)


@needs_chromium
def test_a_hostile_names_script_never_runs_in_the_browser(migrated_home, world_tmp):
    assert migrated_home.hermes("create", "victim").returncode == 0
    from hermes_lifecycle.fold import STATE_FIELDS

    result = run_as([sys.executable, "-c", _TAMPER, str(migrated_home.db), HOSTILE_NAME, HOSTILE_REASON,
                     json.dumps(STATE_FIELDS)], migrated_home.user, env=migrated_home.env())
    assert result.returncode == 0, result.stderr
    server = start_server(migrated_home.env(), migrated_home.user, world_tmp / "serve.err")
    try:
        page = dom(world_tmp, f"{server.base}/")
    finally:
        assert server.stop() == 0, server.stderr()
    assert "<title>hermes-state: profiles</title>" in page  # the hostile script would have renamed it
    assert "pwned" in page and "<script>" not in page  # shown, as text

"""`history --limit 0 --json` streams: the whole stream read a page at a time is the stream read at
once (the same events, the same malformed rows reported), and memory stays one page."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import HERMES, give_to

from hermes_lifecycle.events import NewEvent
from hermes_lifecycle.history import HistoryFilter, read_history, stream_history
from hermes_lifecycle.settings import Settings
from hermes_lifecycle.store import open_store


def append(home, *specs: tuple[str, str, str]) -> None:
    with open_store(Settings.from_env(home.env())) as store:
        for profile, kind, desired in specs:
            store.append(NewEvent(profile, kind, "cli", desired))
    give_to(home.path, home.user)


LIFE = [("alice", "created", "down"), ("bob", "created", "down")] + [
    ("alice" if n % 3 else "bob", "started" if n % 2 else "stopped", "up" if n % 2 else "down") for n in range(1, 12)]


def both(home, window: HistoryFilter, page: int):
    """(events, malformed rows) read at once (as `--limit N`), and a page at a time."""
    results = []
    for read in (lambda store: read_history(store, "alice", window).events,
                 lambda store: list(stream_history(store, "alice", window, page=page))):
        with open_store(Settings.from_env(home.env()), readonly=True) as store:
            store.collect_bad_rows()
            results.append((read(store), [str(error) for error in store.bad_rows]))
    return results


def test_pages_of_any_size_give_the_stream_read_at_once(migrated_home):
    append(migrated_home, *LIFE)
    for window in (HistoryFilter(limit=None), HistoryFilter(limit=None, types=("started",))):
        whole = both(migrated_home, window, page=1000)[0]
        assert whole[0], window
        for page in (1, 2, 3, len(whole[0]), len(whole[0]) + 1):
            assert both(migrated_home, window, page) == [whole, whole], (window, page)


def test_a_page_that_ends_on_a_version_too_long_to_read_goes_on_past_it(migrated_home):
    """Versions written behind the store's back as text over the read bound (they sort after every
    number and come back unread): the page's end is no key, so the rest is read at once."""
    append(migrated_home, ("alice", "created", "down"), ("alice", "started", "up"), ("alice", "stopped", "down"))
    connection = sqlite3.connect(migrated_home.db, isolation_level=None)
    connection.execute("PRAGMA ignore_check_constraints = ON")
    for filler in "xyz":
        connection.execute(
            "INSERT INTO events (profile, version, type, actor, desired, occurred_at, host, data, hash) "
            "VALUES ('alice', ?, 'stopped', 'cli', 'down', '2026-01-01T00:00:00.000Z', 'h', '{}', ?)",
            [filler * 2000, "0" * 64])
    connection.close()
    (events, bad), paged = both(migrated_home, HistoryFilter(limit=None), page=4)
    assert [e.version for e in events] == [1, 2, 3] and len(bad) == 3
    assert all("version larger than a reader takes" in line for line in bad), bad
    # The same rows reported; read at once they come newest first (the read is), paged oldest first.
    assert paged == (events, bad[::-1])


def test_the_whole_stream_as_json_lines_in_the_memory_of_a_page(home):
    """30,000 events: the lines are those of the same stream read at once (`--limit 30000`), and
    the process grows by far less than holding them all (before: ~60 MB more)."""
    spec = importlib.util.spec_from_file_location("bulk_log", Path(__file__).resolve().parent.parent / "bench" / "bulk_log.py")
    bulk_log = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bulk_log)
    home.db.parent.mkdir(parents=True)
    bulk_log.load_log(home.db, profiles=5, events=32_000, heavy_events=30_000)
    give_to(home.path, home.user)
    peak = {}
    for limit in ("0", "30000", "1"):
        # The child's peak resident set, as its parent sees it when it has waited for it.
        measure = ("import resource, subprocess, sys; "
                   "done = subprocess.run(sys.argv[1:]); "
                   "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
                   "sys.exit(done.returncode)")
        result = subprocess.run([sys.executable, "-c", measure, str(HERMES), "history", "agent-00000", "--limit", limit,
                                 "--json"], capture_output=True, text=True, env=home.env(), timeout=120, user=home.user.uid)
        assert result.returncode == 0, result.stderr
        peak[limit] = int(result.stderr.strip().splitlines()[-1])  # KiB
        if limit == "0":
            streamed = result.stdout
        elif limit == "30000":
            assert result.stdout == streamed and len(streamed.splitlines()) == 30_000
            assert json.loads(streamed.splitlines()[0])["version"] == 1
    assert peak["0"] - peak["1"] < 16 * 1024, peak
    assert peak["30000"] - peak["1"] > 32 * 1024, peak  # what reading it all at once holds

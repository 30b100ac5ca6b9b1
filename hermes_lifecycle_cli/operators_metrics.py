"""`/metrics`: the store read at scrape time, as Prometheus metric families (prometheus_client renders them).

A custom collector, not metrics updated as things happen: the server holds no
state of its own, every scrape is a fresh read of the log, and the series are
exactly the live profiles of that read, so their number is bounded by them.
Label values come from the log and are untrusted: prometheus_client escapes
them, and a row whose name is not a profile name is not exported as a gateway
(``hermes_state_rows_skipped`` counts them). On SQLite the log holds one
host's events, so there is no ``host`` label; in a fleet every host serves
its own profiles, each series labelled with its ``host``, so a Prometheus
scraping every host gets each profile once (docs/operators.md).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from hermes_lifecycle.errors import StoreUnavailable
from hermes_lifecycle.operators import FleetReading
from hermes_lifecycle.reports import GATEWAY_STATES, OK

PROFILE = ["profile"]
HOST = ["host"]
CONTENT_TYPE = CONTENT_TYPE_LATEST


class StoreHealth:
    """The newest ``quick_check`` of the store, run at start and then every ``interval`` seconds in a
    background thread: it reads the whole file, far too slow for every scrape of a large store."""

    def __init__(self, check: Callable[[], list[str] | None], interval: float) -> None:
        self._check = check
        self.interval = interval
        self._lock = threading.Lock()
        self.ok = False
        self.checked_at: float | None = None
        self.detail = "not checked yet"

    def check_now(self) -> None:
        try:
            problems = self._check()
            if problems is None:  # the database has no such check (PostgreSQL): it answered, and that is all
                ok, detail = True, "reachable (the database checks its own pages)"
            else:
                ok, detail = not problems, "ok" if not problems else "; ".join(problems[:3])
        except StoreUnavailable as error:
            ok, detail = False, str(error)
        with self._lock:
            self.ok, self.detail, self.checked_at = ok, detail, time.time()

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.check_now()

    def snapshot(self) -> tuple[bool, float | None, str]:
        with self._lock:
            return self.ok, self.checked_at, self.detail


class StoreCollector:
    """Reads the fleet at every ``collect`` (prometheus_client calls it once per scrape)."""

    def __init__(self, read_fleet: Callable[[datetime], FleetReading], health: StoreHealth) -> None:
        self._read_fleet = read_fleet
        self._health = health

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(timezone.utc)
        try:
            fleet: FleetReading | None = self._read_fleet(now)
        except StoreUnavailable:
            # A scrape that fails would hide the store's state behind `up`: answer, with store_ok 0.
            fleet = None
        checked_ok, checked_at, _ = self._health.snapshot()

        readable = GaugeMetricFamily("hermes_state_store_readable", "1 when this scrape could read the store")
        readable.add_metric([], 1 if fleet is not None else 0)
        yield readable
        store_ok = GaugeMetricFamily(
            "hermes_state_store_ok", "1 when the store is readable now and its newest quick_check passed"
        )
        store_ok.add_metric([], 1 if fleet is not None and checked_ok else 0)
        yield store_ok
        checked = GaugeMetricFamily(
            "hermes_state_store_checked_timestamp_seconds", "when the newest quick_check ran (0: not yet)"
        )
        checked.add_metric([], checked_at or 0)
        yield checked
        if fleet is None:
            return

        events = CounterMetricFamily("hermes_state_events", "events in the log (its newest position)")
        events.add_metric([], fleet.events_total)
        yield events

        # A fleet host's series name their host too: the same profile is never exported by two hosts.
        labels = PROFILE + HOST if fleet.host is not None else PROFILE
        desired = GaugeMetricFamily("hermes_gateway_desired_up", "1 when the profile's desired state is up", labels=labels)
        running = GaugeMetricFamily(
            "hermes_gateway_running", "1 when the log's last supervisor event says a run is going", labels=labels
        )
        crashes = CounterMetricFamily("hermes_gateway_crashes", "crashed events of the profile, ever", labels=labels)
        held = GaugeMetricFamily(
            "hermes_gateway_held_down", "1 when the supervisor holds the gateway down (reason: why)",
            labels=labels + ["reason"],
        )
        exit_code = GaugeMetricFamily(
            "hermes_gateway_last_exit_code", "exit status of the most recent exit (absent when killed by a signal)",
            labels=labels,
        )
        exit_signal = GaugeMetricFamily(
            "hermes_gateway_last_exit_signal", "signal that ended the most recent exit, when one did", labels=labels
        )
        uptime = GaugeMetricFamily(
            "hermes_gateway_uptime_seconds", "age of the run the log believes is going (0: none)", labels=labels
        )
        reported = GaugeMetricFamily(
            "hermes_gateway_reported_state",
            "the state the gateway last reported of its latest run (1 for that state; absent: it said nothing)",
            labels=labels + ["state"],
        )
        ready = GaugeMetricFamily(
            "hermes_gateway_seconds_to_ready", "from the start of its latest run to the gateway reporting it ran",
            labels=labels,
        )
        failing = GaugeMetricFamily(
            "hermes_gateway_platforms_failing",
            "platforms the gateway last reported fatal or needing attention, in its latest run", labels=labels,
        )
        skipped = GaugeMetricFamily(
            "hermes_state_rows_skipped", "projection rows not exported: their name is not a profile name"
        )
        skipped.add_metric([], sum(1 for gateway in fleet.gateways if not gateway.named_as_a_profile))
        yield skipped
        for gateway in fleet.gateways:
            if not gateway.named_as_a_profile:
                continue
            name = [gateway.state.profile] + ([fleet.host] if fleet.host is not None else [])
            desired.add_metric(name, 1 if gateway.desired_up else 0)
            running.add_metric(name, 1 if gateway.running else 0)
            crashes.add_metric(name, gateway.crashes_total)  # type: ignore[arg-type]  # read with crash totals: never None
            reason = gateway.held_down_by
            held.add_metric(name + [reason or ""], 1 if reason else 0)
            if gateway.state.last_exit_code is not None:
                exit_code.add_metric(name, gateway.state.last_exit_code)
            if gateway.state.last_signal is not None:
                exit_signal.add_metric(name, gateway.state.last_signal)
            uptime.add_metric(name, gateway.uptime_seconds(now))
            account = gateway.account
            if account.gateway_state is not None:
                for state in GATEWAY_STATES:
                    reported.add_metric(name + [state], 1 if state == account.gateway_state else 0)
                failing.add_metric(name, sum(1 for level in account.platforms.values() if level != OK))
            if account.seconds_to_ready is not None:
                ready.add_metric(name, account.seconds_to_ready)
        yield from (desired, running, crashes, held, exit_code, exit_signal, uptime, reported, ready, failing)


def metrics_registry(collector: StoreCollector) -> CollectorRegistry:
    """A registry of its own, holding only the store's families (no process metrics of the server)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)

"""The pure half of a gateway's own account (hermes_lifecycle/reports.py): what the file says, what the log gains.

The shapes are hermes-agent 0.19.0's (gateway/status.py, write_runtime_status);
``needs_attention`` is a newer release's platform field, taken when present.
"""

from __future__ import annotations

import pytest

from hermes_lifecycle.reports import (
    NOTHING_YET,
    MAX_PLATFORMS,
    MAX_TEXT,
    BadAccount,
    Run,
    Summary,
    followed_file,
    read_account,
    summary_of,
    transitions,
)

RUN = Run(position=40, pid=4242, started_at="2026-12-05T10:00:00.000Z")
NOW = "2026-12-05T10:00:05.000Z"


def said(state="running", pid=4242, **extra):
    return {"pid": pid, "kind": "hermes-gateway", "argv": ["hermes", "gateway", "run"], "start_time": 1234,
            "gateway_state": state, "exit_reason": None, "restart_requested": False, "active_agents": 0,
            "platforms": {}, "updated_at": "2026-12-05T10:00:01.500000+00:00", **extra}


def reported(last, content, run=RUN):
    return [(e.reason, {k: v for k, v in e.data.items() if k not in ("run", "gateway_state", "platforms",
                                                                     "reported_at", "ready_seconds")})
            for e in transitions(last, read_account(content), run, "alice", now=NOW)]


def after(last, content, run=RUN):
    events = transitions(last, read_account(content), run, "alice", now=NOW)
    return summary_of(events[-1].data, run.position) if events else last


FRESH = NOTHING_YET


# -- reading the file ------------------------------------------------------------
@pytest.mark.parametrize("content, problem", [
    ([1, 2], "not a JSON object"),
    ({"gateway_state": "running"}, "no valid pid"),
    (said(pid=True), "no valid pid"),
    (said(pid=0), "no valid pid"),
    (said(pid=2**31), "no valid pid"),
    (said(state="exploded"), "not one hermes-agent writes"),
    (said(platforms=[]), "platforms is not an object"),
    (said(platforms={f"p{i}": {} for i in range(MAX_PLATFORMS + 1)}), f"more than {MAX_PLATFORMS} platforms"),
    (said(platforms={"../etc": {"state": "fatal"}}), "a platform named"),
    (said(platforms={"telegram": "fatal"}), "platform telegram is not an object"),
])
def test_what_no_gateway_writes_is_refused(content, problem):
    with pytest.raises(BadAccount, match=problem):
        read_account(content)


def test_a_file_only_the_s6_manager_wrote_is_no_account_yet():
    assert read_account({"desired_state": "running", "updated_at": 1796000000}) is None


def test_free_text_is_kept_short_and_printable():
    account = read_account(said(state="stopped", exit_reason="x" * 500 + "\x1b[2J",
                                platforms={"telegram": {"state": "fatal", "error_message": "bad\ntoken\x07",
                                                        "error_code": "unauthorized"}}))
    assert len(account.exit_reason) == MAX_TEXT + 1 and account.exit_reason.endswith("…")
    assert account.platforms["telegram"].error_message == "bad?token?"
    odd = read_account(said(platforms={"x": {"state": "fatal", "error_code": "no spaces allowed"}}))
    assert odd.platforms["x"].error_code is None


# -- transitions -------------------------------------------------------------------
def test_ready_says_how_long_the_start_took_by_the_gateways_own_clock():
    assert reported(FRESH, said()) == [("ready", {"seconds_to_ready": 1.5})]


def test_an_implausible_clock_falls_back_to_the_recorders():
    assert reported(FRESH, said(updated_at="2019-01-01T00:00:00+00:00")) == [("ready", {"seconds_to_ready": 5.0})]
    assert reported(FRESH, said(updated_at="not a time")) == [("ready", {"seconds_to_ready": 5.0})]


def test_starting_reports_nothing_and_running_after_it_is_ready():
    assert reported(FRESH, said(state="starting")) == []
    assert [r for r, _ in reported(Summary("starting"), said())] == ["ready"]


def test_degraded_and_back_draining_stopped():
    running = after(FRESH, said())
    degraded = after(running, said(state="degraded"))
    assert reported(running, said(state="degraded")) == [("degraded", {})]
    assert reported(degraded, said()) == [("recovered", {})]
    assert reported(running, said(state="draining")) == [("draining", {})]
    assert reported(running, said(state="stopped", exit_reason="sigterm")) == [("stopped", {"exit_reason": "sigterm"})]
    assert reported(FRESH, said(state="startup_failed", exit_reason="Port 8642 already in use")) == [
        ("startup-failed", {"exit_reason": "Port 8642 already in use"})]


def test_the_same_state_again_appends_nothing():
    running = after(FRESH, said())
    assert reported(running, said()) == []
    assert reported(running, said(updated_at="2026-12-05T10:09:00+00:00", active_agents=3)) == []


def test_a_file_of_another_pid_is_not_this_runs_account():
    assert reported(FRESH, said(pid=999)) == []


def test_platforms_turning_fatal_needing_attention_and_recovering():
    running = after(FRESH, said())
    fatal = said(platforms={"telegram": {"state": "fatal", "error_code": "unauthorized", "error_message": "bad token"}})
    assert reported(running, fatal) == [
        ("platform-fatal", {"platform": "telegram", "error_code": "unauthorized", "error_message": "bad token"})]
    now_fatal = after(running, fatal)
    assert dict(now_fatal.platforms) == {"telegram": "fatal"}
    assert reported(now_fatal, fatal) == []
    attention = said(platforms={"telegram": {"state": "retrying", "needs_attention": True}})
    assert reported(now_fatal, attention) == [("platform-attention", {"platform": "telegram"})]
    assert reported(now_fatal, said(platforms={"telegram": {"state": "connected"}})) == [
        ("platform-recovered", {"platform": "telegram"})]
    assert reported(now_fatal, said(platforms={})) == [("platform-recovered", {"platform": "telegram"})]
    assert reported(running, said(platforms={"discord": {"state": "retrying"}})) == []


def test_one_look_may_report_several_transitions_in_order_each_with_the_summary_after_it():
    events = transitions(FRESH, read_account(said(state="degraded", platforms={"slack": {"state": "fatal"}})),
                         RUN, "alice", now=NOW)
    assert [(e.reason, e.data["gateway_state"], e.data["platforms"]) for e in events] == [
        ("degraded", "degraded", {}), ("platform-fatal", "degraded", {"slack": "fatal"})]
    assert all((e.type, e.actor, e.desired, e.pid, e.data["run"]) == ("reported", "gateway", None, 4242, 40)
               for e in events)


def test_the_summary_of_another_run_is_a_fresh_start():
    events = transitions(FRESH, read_account(said()), RUN, "alice", now=NOW)
    assert summary_of(events[0].data, RUN.position) == Summary("running", {}, 1.5)
    assert summary_of(events[0].data, RUN.position + 1) == FRESH
    assert summary_of({"run": 40, "gateway_state": "weird", "platforms": {}}, 40) == FRESH


def test_the_runs_time_to_ready_stays_in_every_later_summary():
    ready = after(FRESH, said())
    degraded = transitions(ready, read_account(said(state="degraded")), RUN, "alice", now=NOW)
    assert summary_of(degraded[-1].data, RUN.position).seconds_to_ready == 1.5


# -- the file follows the log ------------------------------------------------------------
def test_desired_state_follows_the_log_and_every_other_key_stays():
    content = said()
    followed = followed_file(content, "down", dead=False, now=1796000000, ended_as=None)
    assert followed == {**content, "desired_state": "stopped", "updated_at": 1796000000}
    assert followed_file({**content, "desired_state": "running"}, "up", dead=False, now=1, ended_as=None) is None


def test_a_dead_pid_is_never_written_back_as_running():
    content = {**said(), "desired_state": "stopped"}
    followed = followed_file(content, "down", dead=True, now=1796000000, ended_as="ended by signal 9 (hermes-state)")
    assert (followed["gateway_state"], followed["exit_reason"], followed["pid"]) == (
        "stopped", "ended by signal 9 (hermes-state)", 4242)
    assert followed_file({**said(state="stopped"), "desired_state": "stopped"}, "down", dead=True, now=1,
                         ended_as=None) is None


def test_a_live_process_is_never_said_to_have_stopped():
    content = {**said(pid=1111), "desired_state": "running"}
    assert followed_file(content, "up", dead=False, now=1, ended_as=None) is None


def test_a_file_with_nothing_in_it_yet_gets_the_desired_state():
    assert followed_file({}, "up", dead=False, now=7, ended_as=None) == {"desired_state": "running", "updated_at": 7}

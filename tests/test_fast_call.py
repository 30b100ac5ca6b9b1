"""The hot commands' exact forms skip argparse (``main.fast_call``): they must mean what the parser
would make of them, and everything else must still reach the parser."""

from __future__ import annotations

import pytest

from hermes_cli.main import build_parser, fast_call

SAME = [
    ["gateway", "start"],
    ["gateway", "stop", "-p", "alice"],
    ["gateway", "restart", "--profile", "alice"],
    ["-p", "bob", "gateway", "start"],
    ["--profile", "bob", "gateway", "stop", "-p", "alice"],
    ["state", "record-start", "gateway-alice"],
    ["state", "record-exit", "gateway-alice", "256", "9"],
    ["state", "record-exit", "gateway-alice", "1", "0", "true"],
]


@pytest.mark.parametrize("argv", SAME, ids=" ".join)
def test_a_fast_call_means_what_the_parser_makes_of_it(argv):
    fast, parsed = vars(fast_call(argv)), vars(build_parser().parse_args(argv))
    assert {key: parsed[key] for key in fast} == fast


PARSER_ONLY = [
    ["gateway", "start", "--help"],
    ["gateway", "start", "-p"],
    ["gateway", "start", "-p", "-x"],
    ["gateway", "start", "--profile=alice"],
    ["gateway", "status", "-p", "alice"],
    ["gateway", "start", "alice"],
    ["state", "record-exit", "gateway-alice"],
    ["state", "record-exit", "gateway-alice", "1", "0", "true", "extra"],
    ["state", "record-start", "--help"],
    ["profile", "history", "alice"],
    [],
]


@pytest.mark.parametrize("argv", PARSER_ONLY, ids=lambda argv: " ".join(argv) or "nothing")
def test_anything_else_goes_to_the_parser(argv):
    assert fast_call(argv) is None

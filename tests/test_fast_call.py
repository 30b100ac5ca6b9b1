"""The hot commands' exact forms skip argparse (``main.fast_call``): they must mean what the parser
would make of them, and everything else must still reach the parser."""

from __future__ import annotations

import pytest

from hermes_lifecycle_cli.main import build_parser, fast_call

SAME = [
    ["start"],
    ["stop", "alice"],
    ["restart", "alice"],
    ["start", "bob"],
    ["record-start", "gateway-alice"],
    ["record-exit", "gateway-alice", "256", "9"],
    ["record-exit", "gateway-alice", "1", "0", "true"],
]


@pytest.mark.parametrize("argv", SAME, ids=" ".join)
def test_a_fast_call_means_what_the_parser_makes_of_it(argv):
    fast, parsed = vars(fast_call(argv)), vars(build_parser().parse_args(argv))
    assert {key: parsed[key] for key in fast} == fast


PARSER_ONLY = [
    ["start", "--help"],
    ["start", "-p"],
    ["start", "-x"],
    ["start", "--profile=alice"],
    ["status", "alice"],
    ["start", "alice", "bob"],
    ["record-exit", "gateway-alice"],
    ["record-exit", "gateway-alice", "1", "0", "true", "extra"],
    ["record-start", "--help"],
    ["history", "alice"],
    [],
]


@pytest.mark.parametrize("argv", PARSER_ONLY, ids=lambda argv: " ".join(argv) or "nothing")
def test_anything_else_goes_to_the_parser(argv):
    assert fast_call(argv) is None

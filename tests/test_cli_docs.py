"""docs/cli.md documents every command of the argparse tree, every option, and its examples run."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from hermes_lifecycle_cli.main import build_parser

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"

# Examples shown but not run here, and why.
NOT_RUN = {
    "claim": "root, s6 and a keeper process: tests/test_projector_claim.py",
    "boot": "root and s6: the projector's tests",
    "watch": "a daemon: the projector's tests",
    "up": "a daemon with its own s6-svscan: the projector's tests",
    "watch-gateways": "a daemon: tests/test_gateway_watch.py",
    "stand-in": "a gateway, until stopped: tests/test_cli_gateway.py runs it",
    "record-start": "refused outside a slot; tests/test_hooks.py runs these examples",
    "record-exit": "refused outside a slot; tests/test_hooks.py runs these examples",
    "import-legacy": "the hooks' tests import the legacy fixture",
}
NOT_RUN_FLAGS = {
    "--follow": "runs until Ctrl-C (tests/test_cli_history.py follows for real)",
    "--listen": "a server, until stopped (tests/test_serve.py serves for real)",
}


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every leaf command of the tree, by its words: ("create") -> its parser."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(commands(sub, path + (name,)))
    if not found and path:
        found[path] = parser
    return found


def sections() -> dict[tuple[str, ...], str]:
    """The text under each `### hermes-state COMMAND` heading."""
    parts = re.split(r"^### hermes-state ([a-z0-9 -]+)\n", DOCS.read_text(), flags=re.M)
    return {tuple(parts[i].split()): parts[i + 1] for i in range(1, len(parts), 2)}


def examples() -> list[str]:
    """Every command line of the ```sh blocks, in order."""
    blocks = re.findall(r"^```sh\n(.*?)^```", DOCS.read_text(), flags=re.M | re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_every_command_has_a_section_and_no_section_is_stale():
    tree = commands(build_parser())
    assert len(tree) == 22
    assert set(sections()) == set(tree)


@pytest.mark.parametrize("path", sorted(commands(build_parser())), ids=" ".join)
def test_every_option_and_an_example_are_documented(path):
    parser = commands(build_parser())[path]
    text = sections()[path]
    for action in parser._actions:
        if action.option_strings and "--help" not in action.option_strings:
            assert any(option in text for option in action.option_strings), (path, action.option_strings)
    assert re.search(r"^```sh\n(?:.*\n)*?.*hermes-state " + " ".join(path), text, re.M), path


def _words(line: str) -> tuple[str, ...]:
    """The words after `hermes-state` up to the end of that command in a shell line (none: no command)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    if "hermes-state" not in tokens:
        return ()  # a setting for the lines after it, e.g. a scratch home's `export`
    words = []
    for token in tokens[tokens.index("hermes-state") + 1:]:
        if token in (";", "|", "||", "&&", "&"):
            break
        words.append(token)
    return tuple(words)


def _skipped(words: tuple[str, ...]) -> bool:
    return not words or words[0] in NOT_RUN or any(flag in words for flag in NOT_RUN_FLAGS)


def test_the_examples_run_in_a_fresh_home(home):
    from conftest import BIN_DIR, run_as

    ran = set()
    for line in examples():
        words = _words(line)
        if _skipped(words):
            continue
        result = run_as(["/bin/sh", "-c", line], home.user, env={**home.env(), "PATH": f"{BIN_DIR}:/usr/bin:/bin"},
                        timeout=30)
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        ran.add(words[:1])
    # Every command but the ones named above ran at least once.
    assert ran == set(commands(build_parser())) - {(name,) for name in NOT_RUN}


def test_the_page_title_example_prints_the_pages_title_only(migrated_home):
    """The profile page holds a <title> per bar too (the tooltips): the example must print one line."""
    from datetime import datetime, timedelta, timezone

    from cli_support import LogWriter
    from conftest import BIN_DIR, run_as

    [line] = [line for line in examples() if "<title>" in line]
    assert migrated_home.hermes("create", "alice").returncode == 0
    writer = LogWriter(migrated_home, start=datetime.now(timezone.utc) - timedelta(minutes=30))
    writer.append("alice", "started", "cli", "up")
    for pid in (10, 11, 12):
        writer.run("alice", pid, seconds=60, exit_code=1)
        writer.after(seconds=5)
    writer.close()
    result = run_as(["/bin/sh", "-c", line], migrated_home.user,
                    env={**migrated_home.env(), "PATH": f"{BIN_DIR}:/usr/bin:/bin"}, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["<title>hermes-state: alice</title>"]

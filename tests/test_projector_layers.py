"""The layers hold: a pure planner, typed actions, a library that prints nothing, settings read once.

Checked on the source itself (with ``ast``) and on a real interpreter's
imports, so a later change that crosses a layer fails here, not in review.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from cli_support import one_stderr_line
from conftest import run_as

from hermes_lifecycle.errors import BadInput
from hermes_lifecycle.projector.plan import ActionKind
from hermes_lifecycle.settings import DEFAULT_WATCH_FULL_PASS_INTERVAL, DEFAULT_WATCH_POLL_INTERVAL, Settings

PACKAGE = Path(__import__("hermes_lifecycle").__file__).resolve().parent
PROJECTOR = PACKAGE / "projector"
PURE = ("plan.py", "observed.py")
# The library files this suite holds to "prints nothing, reads no environment" (the store
# layer's own files are checked by their owners; the fleet wing's are here: its spool returns
# the lines it has to say, and the CLI says them).
LIBRARY_FILES = sorted(PROJECTOR.glob("*.py")) + sorted((PACKAGE / "fleet").glob("*.py")) + [
    PACKAGE / "legacy.py", PACKAGE / "profiles.py", PACKAGE / "fold.py"]

# Modules that do I/O (or name the adapters that do): the pure core imports none of them.
IO_MODULES = {"os", "subprocess", "shutil", "socket", "fcntl", "sqlite3", "sqlalchemy", "pathlib", "time", "io"}
IO_SIBLINGS = {"s6", "slots", "reconcile", "boot", "watch", "up", "dropped"}
IO_PACKAGE_MODULES = {"store", "backends", "settings", "hooks", "history", "doctor", "legacy", "profiles", "fleet",
                      "volume", "durable", "gateway_watch", "gateway_files"}


def test_the_layer_lists_name_modules_that_exist():
    """A list of forbidden imports that names a module gone forbids nothing."""
    for name in IO_SIBLINGS:
        assert (PROJECTOR / f"{name}.py").is_file(), name
    for name in IO_PACKAGE_MODULES:
        assert (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file(), name


def imports_of(path: Path) -> set[tuple[int, str]]:
    """(relative level, module) for every import in the file, at any depth (a lazy import counts too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update((0, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and not base:  # `from . import s6`
                found.update((node.level, alias.name) for alias in node.names)
            else:
                found.add((node.level, base))
    return found


@pytest.mark.parametrize("name", PURE)
def test_the_planner_and_the_observed_state_import_no_io(name):
    for level, module in imports_of(PROJECTOR / name):
        top = module.split(".")[0]
        if level == 0:
            assert top not in IO_MODULES and top != "hermes_lifecycle", f"{name} imports {module}"
        elif level == 1:
            assert top not in IO_SIBLINGS, f"{name} imports .{module}"
        else:
            assert top not in IO_PACKAGE_MODULES, f"{name} imports ..{module}"


def test_importing_the_planner_loads_no_adapter_and_no_store():
    code = (
        "import json, sys\n"
        "import hermes_lifecycle.projector.plan\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = run_as([sys.executable, "-c", code], None, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "hermes_lifecycle.projector.observed" in loaded
    heavy = {"subprocess", "sqlite3", "sqlalchemy", "hermes_lifecycle.store", "hermes_lifecycle.settings",
             "hermes_lifecycle.projector.s6", "hermes_lifecycle.projector.slots", "hermes_lifecycle.projector.reconcile"}
    assert not heavy & loaded
    assert not [m for m in loaded if m.startswith(("hermes_lifecycle.backends", "hermes_lifecycle.store."))]


def test_action_kinds_are_the_log_words_in_apply_order():
    """The JSON line keeps its words; removals come before creations, the rescan last."""
    assert [kind.value for kind in ActionKind] == [
        "skip-invalid", "await", "remove", "purge", "create-up", "create-down", "repair-scripts",
        "mark-down", "mark-up", "down", "up", "restart", "restart-absorbed", "rescan",
    ]
    assert [kind.rank for kind in ActionKind] == list(range(len(ActionKind)))


def test_the_reconciler_applies_every_kind_of_action():
    """Its dispatch names every kind but skip-invalid and await (logged and retried, never applied)."""
    tree = ast.parse((PROJECTOR / "reconcile.py").read_text())
    [do] = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_do"]
    [match] = [n for n in ast.walk(do) if isinstance(n, ast.Match)]
    named = {
        n.attr for case in match.cases for n in ast.walk(case.pattern)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "ActionKind"
    }
    assert named == {kind.name for kind in ActionKind} - {"SKIP_INVALID", "AWAIT"}


def _child_protocol(path: Path, node: ast.AST, parents: dict) -> bool:
    """dropped.py's ``main`` is the child process's end of a pipe to boot (JSON out, one error line), not rendering."""
    while node in parents:
        node = parents[node]
        if path.name == "dropped.py" and isinstance(node, ast.FunctionDef) and node.name == "main":
            return True
    return False


def _printing(path: Path, *, exempt_child_protocol: bool = True) -> list[str]:
    """Every print(), sys.stdout / sys.stderr and CLI flag name (``--word``) in the file."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if exempt_child_protocol and _child_protocol(path, node, parents):
            continue
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append(f"{where}: print()")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "sys":
            if node.attr in ("stdout", "stderr"):
                found.append(f"{where}: sys.{node.attr}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            words = node.value.replace("`", " ").split()
            found.extend(f"{where}: {w}" for w in words if w.startswith("--") and len(w) > 2 and w[2].isalpha())
    return found


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: p.name)
def test_the_library_prints_nothing_and_names_no_cli_flag(path):
    assert _printing(path) == []


def test_the_printing_check_sees_a_print():
    """Not vacuous: without its one exemption, dropped.py's child end is caught."""
    assert any("print()" in line for line in _printing(PROJECTOR / "dropped.py", exempt_child_protocol=False))


def _environment_reads(path: Path) -> list[str]:
    """``os.environ[...]``, ``os.environ.get``, ``os.getenv`` and the like; ``dict(os.environ)`` (a child inherits it) is not a read."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv", "getenvb"):
            parent = parents.get(node)
            inherited = isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id == "dict"
            if not inherited:
                found.append(f"{path.name}:{node.lineno}")
    return found


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: p.name)
def test_only_settings_reads_the_environment(path):
    assert _environment_reads(path) == []


def test_the_environment_check_sees_a_read():
    """The check above is not vacuous: settings.py, which must read the environment, is caught by it."""
    assert _environment_reads(PACKAGE / "settings.py")


# -- the watch daemon's two clocks, in Settings --------------------------------------
def watch_settings(**env: str) -> Settings:
    return Settings.from_env({"HERMES_HOME": "/nonexistent/hermes", **env})


def test_the_watch_clocks_default_when_unset_or_empty():
    for env in ({}, {"HERMES_WATCH_POLL_INTERVAL": "", "HERMES_WATCH_FULL_PASS_INTERVAL": ""}):
        intervals = watch_settings(**env).watch_intervals()
        assert (intervals.poll, intervals.full_pass) == (DEFAULT_WATCH_POLL_INTERVAL, DEFAULT_WATCH_FULL_PASS_INTERVAL)


@pytest.mark.parametrize("text, seconds", [("0.5", 0.5), ("0.01", 0.01), ("86400", 86400.0), (" 3 ", 3.0), ("1e2", 100.0)])
def test_the_watch_clocks_read_seconds(text, seconds):
    intervals = watch_settings(HERMES_WATCH_POLL_INTERVAL=text, HERMES_WATCH_FULL_PASS_INTERVAL=text).watch_intervals()
    assert intervals.poll == seconds and intervals.full_pass == seconds


@pytest.mark.parametrize("variable", ["HERMES_WATCH_POLL_INTERVAL", "HERMES_WATCH_FULL_PASS_INTERVAL"])
@pytest.mark.parametrize("text", ["abc", "0", "0.009", "-1", "86401", "nan", "inf", "1s", "2\n3"])
def test_a_bad_watch_clock_is_one_line_of_bad_input(variable, text):
    settings = watch_settings(**{variable: text})  # read, not judged: other commands are not stopped by it
    with pytest.raises(BadInput) as caught:
        settings.watch_intervals()
    message = str(caught.value)
    assert caught.value.exit_status == 2
    assert message.startswith(f"invalid {variable} {text!r}: expected seconds between 0.01 and 86400")
    assert "\n" not in message


@pytest.mark.parametrize("command", [("watch",), ("watch", "--poll-only"), ("up",)])
def test_the_daemons_refuse_a_bad_clock_before_starting_anything(migrated_home, command):
    result = migrated_home.hermes(*command, env={"HERMES_WATCH_FULL_PASS_INTERVAL": "soon"}, timeout=30)
    assert result.returncode == 2
    assert one_stderr_line(result) == (
        "hermes-state: invalid HERMES_WATCH_FULL_PASS_INTERVAL 'soon': expected seconds between 0.01 and 86400"
    )
    assert not migrated_home.scandir.exists() or not any(migrated_home.scandir.iterdir())


def test_a_bad_clock_stops_only_the_daemons(migrated_home):
    result = migrated_home.hermes("list", "--json", env={"HERMES_WATCH_POLL_INTERVAL": "soon"})
    assert result.returncode == 0, result.stderr

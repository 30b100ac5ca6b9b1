"""The seam holds: SQLite lives in its backend, and the hot commands import no SQLAlchemy.

The hooks run at every start and exit of every gateway; `gateway start|stop|restart|status`
and `profile history|list` are what a person waits for. Each is run here for real, with
``python -X importtime``, and must not load SQLAlchemy (nor the hooks argparse).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from conftest import HERMES, HOOKS_UNSUPERVISED, run_as

PACKAGE = Path(__file__).resolve().parent.parent / "hermes_lifecycle"
CLI = PACKAGE.parent / "hermes_lifecycle_cli"

# What only a backend may name: a driver, an engine, a PRAGMA.
BACKEND_ONLY = re.compile(r"\bPRAGMA\b|\bpysqlite3\b|\bimport sqlite3\b|\bmake_engine\b|\bcreate_engine\b|driver_connection")


def _modules_outside_the_backends():
    for root in (PACKAGE, CLI):
        for path in sorted(root.rglob("*.py")):
            if "backends" not in path.relative_to(root).parts:
                yield path


@pytest.mark.parametrize("path", list(_modules_outside_the_backends()), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_outside_the_backends_touches_a_driver_an_engine_or_a_pragma(path):
    offending = [line.strip() for line in path.read_text().splitlines()
                 if BACKEND_ONLY.search(line) and not line.strip().startswith("#")]
    assert offending == []


HOT = [
    ("record-start", "gateway-alice"),
    ("record-exit", "gateway-alice", "1", "0", "true"),
    ("start", "alice"),
    ("stop", "alice"),
    ("restart", "alice"),
    ("status", "alice"),
    ("history", "alice"),
    ("list",),
]


def imported(result) -> set[str]:
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def _hot_command_imports(home, args, *, hooks_without: tuple[str, ...] = ("argparse", "dataclasses"),
                         **env) -> set[str]:
    created = home.hermes("create", "alice", env=env)
    assert created.returncode == 0, created.stderr
    python = Path(HERMES).with_name("python")
    result = run_as([str(python), "-X", "importtime", str(HERMES), *args], home.user,
                    env=home.env(HERMES_GATEWAY_COMMAND="/bin/true", **HOOKS_UNSUPERVISED, **env))
    assert result.returncode == 0, result.stderr[-2000:]
    modules = imported(result)
    assert "hermes_lifecycle.store" in modules  # the measurement saw the store open
    assert not {m for m in modules if m.split(".")[0] in ("sqlalchemy", "alembic", "rich")}
    if args[0] == "state":
        assert not modules & set(hooks_without)
    return modules


@pytest.mark.parametrize("args", HOT, ids=lambda args: " ".join(args[:2]))
def test_hot_commands_import_no_sqlalchemy(migrated_home, args):
    modules = _hot_command_imports(migrated_home, args)
    assert not {m for m in modules if m.split(".")[0] == "psycopg"}  # the file's commands pay for no server driver


@pytest.mark.parametrize("args", HOT, ids=lambda args: " ".join(args[:2]))
def test_hot_commands_import_no_sqlalchemy_on_postgresql(home, pg_database, args):
    from hermes_lifecycle.settings import Settings
    from hermes_lifecycle.store import migrate

    migrate(Settings.from_env({"HERMES_HOME": str(home.path), "HERMES_STATE_URL": pg_database.url}))
    # psycopg itself loads dataclasses (and asyncio): a fleet's hooks pay for the driver they need.
    modules = _hot_command_imports(home, args, hooks_without=("argparse",), HERMES_STATE_URL=pg_database.url)
    assert "hermes_lifecycle.backends.postgresql.recorder" in modules


# -- the direction of the imports: core <- store <- backends; the fleet wing above the store; the CLI on top --
# Read from the source (every import, a lazy one or one under TYPE_CHECKING too), module by module.
CORE = ("errors", "records", "names", "vocabulary", "events", "profile_state", "fold", "chain", "crash_loop",
        "exits", "projector.plan", "projector.observed")
ABOVE_THE_STORE = ("fleet", "hooks", "projector", "gateway_watch", "doctor", "settings")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    import ast

    files = {_module_name(path): path for root in (PACKAGE, CLI) for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
                # `from package import module` names the module; `from module import name`, the module
                wanted = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            else:
                continue
            for target in wanted:
                while target and target not in files:  # `from .x import name`: the module x
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    # The store imports its backends by name, from their one table (store.backend_for): edges too.
    from hermes_lifecycle.backends import BACKENDS

    graph["hermes_lifecycle.store"] |= {module for module, _ in BACKENDS.values()}
    return graph


GRAPH = _import_graph()


def _in(module: str, *areas: str) -> bool:
    return any(module == f"hermes_lifecycle.{area}" or module.startswith(f"hermes_lifecycle.{area}.")
               for area in areas)


def _crossings(importer, imported) -> list[str]:
    return sorted(f"{source} -> {target}" for source, targets in GRAPH.items() if importer(source)
                  for target in targets if imported(target))


def test_the_graph_sees_the_imports():
    """Not vacuous: the CLI's hook command imports the fleet wing, the wing the store, the store its backends."""
    assert "hermes_lifecycle.fleet" in GRAPH["hermes_lifecycle_cli.commands.hooks"]
    assert "hermes_lifecycle.store" in GRAPH["hermes_lifecycle.fleet"]
    assert "hermes_lifecycle.backends.sqlite.backend" in GRAPH["hermes_lifecycle.store"]


def test_the_core_imports_no_store_no_settings_and_nothing_above():
    """The crash-loop policy is the core's (crash_loop.py); settings builds it from the environment."""
    assert _crossings(lambda m: any(m == f"hermes_lifecycle.{c}" for c in CORE),
                      lambda m: _in(m, "store", "backends", *ABOVE_THE_STORE) and not
                      any(m == f"hermes_lifecycle.{c}" for c in CORE)) == []


# Below the store: the core, and the helpers it reads its configuration and files with.
STORE_MAY_IMPORT = (*CORE, "settings", "volume", "checks", "digest")


def test_the_store_and_its_backends_know_nothing_above_them():
    """No spool replay hidden in the store: a fleet writer replays through ``fleet.open_writer``."""
    assert _crossings(lambda m: _in(m, "store", "backends"),
                      lambda m: m != "hermes_lifecycle" and not _in(m, "store", "backends", *STORE_MAY_IMPORT)) == []


def test_the_fleet_wing_sits_above_the_store_and_below_the_projector_and_the_cli():
    assert _crossings(lambda m: _in(m, "fleet"),
                      lambda m: m.startswith("hermes_lifecycle_cli") or (
                          _in(m, "projector", "gateway_watch", "doctor") and m != "hermes_lifecycle.projector.plan")) == []


def test_the_library_never_imports_the_cli():
    assert _crossings(lambda m: m.startswith("hermes_lifecycle."), lambda m: m.startswith("hermes_lifecycle_cli")) == []


def test_no_import_runs_in_a_circle():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[set[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in GRAPH[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = set()
            while True:
                top = stack.pop()
                component.add(top)
                if top == module:
                    break
            if len(component) > 1:
                circles.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in GRAPH:
        if module not in index:
            visit(module)
    assert circles == []

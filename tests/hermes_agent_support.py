"""hermes-agent, the real program this store serves, as the tests meet it.

`make test` installs hermes-agent (HERMES_AGENT_VERSION in the Makefile,
0.19.0) from the package index into ``.venv-agent`` and this package beside
it; ``HERMES_AGENT_VENV`` names that environment. Nothing here imitates
hermes-agent: its own ``hermes``, its gateway and its files are used as they
install.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from conftest import Home, run_as

VERSION = "0.19.0"
REPOSITORY = Path(__file__).resolve().parent.parent


def agent_venv() -> Path:
    """The environment holding hermes-agent and this package; the suite stops if it is missing."""
    venv = Path(os.environ.get("HERMES_AGENT_VENV") or REPOSITORY / ".venv-agent")
    if not (venv / "bin" / "hermes").exists() or not (venv / "bin" / "hermes-state").exists():
        pytest.exit(f"no hermes-agent environment at {venv}: run `make test` (it installs hermes-agent "
                    f"{VERSION} and this package there)", 2)
    return venv


def agent_env(home: Home, **extra: str) -> dict[str, str]:
    """The home's environment with hermes-agent's environment first on PATH: `hermes` is hermes-agent's."""
    return home.env(PATH=f"{agent_venv() / 'bin'}:/usr/bin:/bin", **extra)


def agent_hermes(home: Home, *args: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
    """hermes-agent's own `hermes`, as the unprivileged user."""
    return run_as([str(agent_venv() / "bin" / "hermes"), *args], home.user, env=agent_env(home, **extra),
                  timeout=timeout)


def enable_plugin(home: Home) -> None:
    """`hermes plugins enable hermes-state` in the home, as a person would (hermes-agent's plugins are opt-in)."""
    result = agent_hermes(home, "plugins", "enable", "hermes-state")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hermes-state" in (home.path / "config.yaml").read_text()


def site_packages(venv: Path) -> Path:
    [found] = (venv / "lib").glob("python3*/site-packages")
    return found


def record_mismatches(venv: Path, distribution: str) -> list[str]:
    """Every file a distribution's RECORD lists whose bytes are missing or differ from the digest it recorded."""
    site = site_packages(venv)
    [info] = site.glob(f"{distribution}-*.dist-info")
    wrong = []
    for line in (info / "RECORD").read_text().splitlines():
        path, digest, _size = line.rsplit(",", 2)
        if not digest:
            continue  # RECORD itself, and .pyc files pip wrote
        algorithm, _, expected = digest.partition("=")
        target = (site / path).resolve()
        try:
            actual = base64.urlsafe_b64encode(hashlib.new(algorithm, target.read_bytes()).digest()).rstrip(b"=")
        except FileNotFoundError:
            wrong.append(f"{path}: missing")
            continue
        if actual.decode() != expected:
            wrong.append(f"{path}: changed")
    return wrong

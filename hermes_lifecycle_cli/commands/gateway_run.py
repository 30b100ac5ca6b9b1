"""`hermes-state run`: the built-in stand-in for a profile's messaging gateway.

A slot runs ``hermes -p {profile} gateway run`` (with HERMES_PROFILE set)
unless HERMES_GATEWAY_COMMAND names the real gateway of a full Hermes
install. This stand-in behaves as a well-behaved gateway must: it holds an
exclusive lock on its profile (a second instance exits 4), stays in the
foreground, exits 0 on SIGTERM, and exits 78 (EX_CONFIG) when its profile
does not exist or this user cannot use its directory (unreadable, or no
lock can be made there), which `finish` records as fatal-config and does
not restart: no restart fixes either.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import signal

from hermes_lifecycle.errors import Conflict, HermesError
from hermes_lifecycle.exits import EX_CONFIG
from hermes_lifecycle.names import DEFAULT_PROFILE, validate_name
from hermes_lifecycle.settings import SOUL_FILE

from ..output import say
from .common import settings

LOCK_FILE = ".gateway.lock"


def run(args: argparse.Namespace) -> int:
    name = validate_name(getattr(args, "name", None) or os.environ.get("HERMES_PROFILE") or DEFAULT_PROFILE)
    directory = settings().profile_dir(name)
    # The root profile is the home itself; any other is a directory with its marker.
    marker = directory if name == DEFAULT_PROFILE else directory / SOUL_FILE
    try:
        os.stat(marker)
    except FileNotFoundError:
        say(f"hermes-state: gateway {name}: no such profile ({marker} does not exist): exit {EX_CONFIG}, not restarted")
        return EX_CONFIG
    except OSError as error:
        # Unreadable (EACCES), not a directory on the way, a loop: no restart fixes it either.
        say(f"hermes-state: gateway {name}: cannot use its profile ({marker}: {error.strerror}): exit {EX_CONFIG}, not restarted")
        return EX_CONFIG
    try:
        lock = _lock(directory / LOCK_FILE, name)
    except Unusable as error:
        say(f"hermes-state: {error}: exit {EX_CONFIG}, not restarted")
        return EX_CONFIG
    try:
        watched = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, watched)
        say(f"hermes-state: gateway {name}: running as pid {os.getpid()} (built-in stand-in gateway)")
        received = signal.sigwait(watched)
        say(f"hermes-state: gateway {name}: {signal.Signals(received).name}, exiting")
        return 0
    finally:
        os.close(lock)


class Unusable(HermesError):
    """The profile directory is there but this user cannot use it: a configuration error (EX_CONFIG)."""


def _lock(path, name: str) -> int:
    """Hold an exclusive flock on ``path`` for the life of the process; a holder already there is a conflict."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        raise Unusable(f"gateway {name}: cannot open its lock {path}: {error.strerror}") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        holder = os.read(descriptor, 32).decode(errors="replace").strip()
        os.close(descriptor)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise Conflict(
                f"gateway {name} is already running" + (f" (pid {holder})" if holder.isdigit() else "")
                + f": it holds {path}"
            ) from None
        raise HermesError(f"gateway {name}: cannot lock {path}: {error.strerror}") from None
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    return descriptor

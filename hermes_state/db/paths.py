"""Where the store is and whether its path may be opened, without SQLAlchemy or pathlib:
short-lived readers (the CLI's history) import it cheaply."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pathlib costs a few ms at import: annotations only
    from pathlib import Path
    from typing import Mapping

from ..errors import BadInput, StoreMissing, StoreUnavailable


def check_store_path(path: "Path | str", *, must_exist: bool) -> None:
    """Refuse a path that is a symbolic link or not a regular file.

    The projector runs as root and reads a file a less privileged user owns:
    following a link there would let that user point it anywhere.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if must_exist:
            raise StoreMissing(
                f"no event store at {path}: run `hermes state migrate` to create it"
            ) from None
        return
    except OSError as error:
        raise StoreUnavailable(f"cannot reach event store {path}: {error.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise StoreUnavailable(f"event store {path} is a symbolic link: refused")
    if not stat.S_ISREG(info.st_mode):
        raise StoreUnavailable(f"event store {path} is not a regular file: refused")


def home_from_env(environ: "Mapping[str, str]") -> str:
    """``HERMES_HOME``, else ``~/.hermes``."""
    return environ.get("HERMES_HOME") or os.path.join(os.path.expanduser("~"), ".hermes")


def store_path_from_env(environ: "Mapping[str, str] | None" = None) -> str:
    """``HERMES_STATE_DB``, else ``$HERMES_HOME/state/profiles.db`` (docs/design.md section 1).

    ``HERMES_STATE_URL`` (a fleet's PostgreSQL, docs/design.md section 8) is refused
    rather than ignored: someone who set it must not be writing to a local
    file without knowing.
    """
    env = os.environ if environ is None else environ
    if env.get("HERMES_STATE_URL"):
        raise BadInput(
            "HERMES_STATE_URL is set, but this version stores events only in a SQLite file "
            "(PostgreSQL is not supported yet): unset it, or use HERMES_STATE_DB for the file's path"
        )
    return env.get("HERMES_STATE_DB") or os.path.join(home_from_env(env), "state", "profiles.db")

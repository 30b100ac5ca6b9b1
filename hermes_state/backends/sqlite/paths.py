"""Whether the store's path may be opened, without pathlib: every short-lived reader imports it."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pathlib costs a few ms at import: annotations only
    from pathlib import Path

from ...errors import StoreMissing, StoreUnavailable


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

"""What every command shares: settings, which profile is meant, opening the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hermes_lifecycle.names import DEFAULT_PROFILE, validate_name

if TYPE_CHECKING:
    import argparse

    from hermes_lifecycle.settings import Settings


def settings() -> "Settings":
    # Imported here, not at the top: `profile history` uses profile_of and
    # must not pay for settings' imports (dataclasses, pathlib, uuid).
    from hermes_lifecycle.settings import Settings

    return Settings.from_env()


def profile_of(args: "argparse.Namespace") -> str:
    """The command's NAME, else the root profile."""
    return validate_name(getattr(args, "name", None) or DEFAULT_PROFILE)

"""What every command shares: settings, which profile is meant, opening the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hermes_state.names import DEFAULT_PROFILE, validate_name

if TYPE_CHECKING:
    import argparse

    from hermes_state.settings import Settings


def settings() -> "Settings":
    # Imported here, not at the top: `profile history` uses profile_of and
    # must not pay for settings' imports (dataclasses, pathlib, uuid).
    from hermes_state.settings import Settings

    return Settings.from_env()


def profile_of(args: "argparse.Namespace") -> str:
    """NAME, else the command's -p, else hermes -p, else the root profile."""
    name = getattr(args, "name", None) or getattr(args, "profile", None) or getattr(args, "global_profile", None)
    return validate_name(name or DEFAULT_PROFILE)

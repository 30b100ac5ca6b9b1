"""`hermes-state create | delete | list`: a profile's directory and stream, together."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone

from hermes_lifecycle.errors import BadInput, Conflict
from hermes_lifecycle.names import DEFAULT_PROFILE, validate_name, validate_new_name

from .. import grid, humane
from ..output import say
from .common import settings


def create(args: argparse.Namespace) -> int:
    name = validate_new_name(args.name)
    config = settings()
    _refuse_root(config, f"create {name}")
    from hermes_lifecycle.profiles import create_profile

    with _store_for_create(config) as store:
        create_profile(store, config, name)
    print(f"created profile {name} at {config.profile_dir(name)}; desired down: "
          f"`hermes-state start {name}` runs its gateway")
    return 0


# Tests only (tests/test_profile_faults.py): a path this command creates between the commit of
# `deleted` and the move of the directory, then waits while it exists, so a test can SIGKILL it
# exactly there. Unset in production: one dictionary lookup per delete.
PAUSE_AFTER_DELETE_COMMIT = "HERMES_TEST_PAUSE_AFTER_DELETE_COMMIT"


def _test_pause():
    marker = os.environ.get(PAUSE_AFTER_DELETE_COMMIT)
    if not marker:
        return None

    def pause() -> None:
        import time

        with open(marker, "x"):
            pass
        while os.path.exists(marker):
            time.sleep(0.01)

    return pause


def _refuse_root(config, command: str) -> None:
    """Profile directories belong to the gateway user: made by root they would be root's, mode 0700,
    and its gateway could not read them. So root is refused, with the command to run instead
    (the container's `hermes` drops to that user by itself; docs/reliability.md, "The commands")."""
    if os.geteuid() != 0:
        return
    user = config.gateway_user
    if user == "root" or user == "0":
        raise BadInput(f"refusing to write profiles in {config.profiles_dir} as root, and HERMES_USER names root: "
                       "gateways never run as root; set HERMES_USER to an unprivileged account")
    import shlex

    # The very program and home this was run with: the hint must work when pasted as it is.
    beside = os.path.join(os.path.dirname(sys.executable), "hermes-state")
    program = beside if os.access(beside, os.X_OK) else "hermes-state"
    raise BadInput(
        f"refusing to write profiles in {config.profiles_dir} as root: they would be root's and the gateway "
        f"user {user} could not use them; run it as that user: runuser -u {shlex.quote(user)} -- env "
        f"HERMES_HOME={shlex.quote(config.home_dir)} {shlex.quote(program)} {command}"
    )


def _store_for_create(config):
    """The store, made on first use: a person's first `hermes-state create` on a fresh home
    should work, as boot would have made the file anyway. Only this path imports Alembic.
    Nothing else is made here: `default` and the legacy import stay boot's job, so an old
    home's profiles are still imported the first time boot runs."""
    from hermes_lifecycle.fleet import open_writer
    from hermes_lifecycle.store import backend_for, migrate

    if not backend_for(config).exists(config):
        migrate(config)
        print(f"hermes-state: created the event store {config.store_location}", file=sys.stderr)
    return open_writer(config, say=say)


def delete(args: argparse.Namespace) -> int:
    name = validate_name(args.name)
    if name == DEFAULT_PROFILE:
        raise Conflict("the default profile cannot be deleted")
    if not args.yes:
        raise BadInput(f"deleting profile {name} stops its gateway and moves its directory: confirm with --yes")
    config = settings()
    _refuse_root(config, f"delete {name} --yes")
    from hermes_lifecycle.fleet import open_writer
    from hermes_lifecycle.profiles import delete_profile

    with open_writer(config, say=say) as store:
        deletion = delete_profile(store, config, name, purge=args.purge, after_commit=_test_pause())
    if deletion.removed:
        print(f"profile {name} was deleted already (event {deletion.position}); removed what "
              f"{config.profiles_dir / '.deleted'} kept of it: {', '.join(p.name for p in deletion.removed)}")
        return 0
    if deletion.moved_to is None:
        where = f"it had no directory at {config.profile_dir(name)}"
    elif deletion.purged:
        where = "its directory is removed"
    else:
        where = f"its directory is now {deletion.moved_to}"
    if deletion.event is None:
        print(f"profile {name} was deleted already (event {deletion.position}) by a delete that did not finish; "
              f"{where}")
        return 0
    print(f"deleted profile {name}; {where}; its history stays (`hermes-state history {name}`)")
    return 0


def list_profiles(args: argparse.Namespace) -> int:
    from hermes_lifecycle.status import an_hour_ago, status_row
    from hermes_lifecycle.store import open_store

    config = settings()
    with open_store(config, readonly=True) as store, store.reading() as tx:
        overview = tx.overview(an_hour_ago(), include_deleted=args.all)
    if config.fleet and not args.all_hosts:
        # A fleet's database holds every host's profiles: by default, the ones this host runs.
        here = config.host_id(create=False)
        overview = [row for row in overview if row.state.host == here]
    rows = [status_row(state, crashes) for state, crashes in overview]
    if args.json:
        from .. import output

        output.json_lines(rows)
        return 0
    if not rows:
        if config.fleet and not args.all_hosts:
            print("no profiles on this host yet (`hermes-state list --all-hosts` lists the fleet's)")
        else:
            print("no profiles yet (`hermes-state create NAME`)")
        return 0
    now = datetime.now(timezone.utc)
    columns = [grid.Column("profile", "profile")]
    if args.all:
        columns.append(grid.Column("status", "status"))
    columns += [
        grid.Column("desired", "desired"),
        grid.Column("last", "last event"),
        grid.Column("when", f"when ({humane.local_zone(now)})"),
        grid.Column("crashes", "crashes/1h", right=True),
        grid.Column("pid", "pid", right=True),
    ]
    if args.all_hosts:
        columns.append(grid.Column("host", "host"))
    shown = [_list_row(row, now) for row in rows]
    table = grid.Grid(columns, style=_list_style)
    grid.print_lines(table.fit(shown).lines(shown))
    return 0


def _list_row(row: dict, now: datetime) -> dict:
    desired = row["desired"] + (f" (held: {row['held_down_by']})" if row["held_down_by"] else "")
    last = f"{row['last_event']} by {row['last_actor']}"
    how = humane.exit_text(row["last_exit_code"], row["last_signal"]) if row["last_event"] == "crashed" else ""
    if how or row["last_reason"]:
        last += f" ({how or row['last_reason']})"
    return {
        "profile": row["profile"],
        "status": row["status"],
        "desired": desired,
        "last": last,
        "when": humane.when(row["last_event_at"], now),
        "crashes": row["crashes_last_hour"],
        "pid": row["pid"],
        "host": row["host"],
    }


def _list_style(key: str, value: str) -> str | None:
    if key == "desired" and "held" in value:
        return grid.RED
    if key == "last" and value.startswith("crashed"):
        return grid.RED
    if key == "status" and value == "deleted":
        return grid.DIM
    return None

"""A fleet's database made as docs/fleet.md's "Roles" says: its SQL run through the real `psql`.

The SQL is read from the page itself, so the page and the tests cannot drift: the superuser's
block (roles, database), `hermes-state migrate` as the owner, the owner's grants, then the
superuser's block for each host (its own role, bound to its host id): hosts "a" and "b".
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from psycopg import sql

from conftest import Home
from pg_cluster import Database, PostgresCluster

FLEET_PAGE = Path(__file__).resolve().parent.parent / "docs" / "fleet.md"


def roles_blocks() -> tuple[str, str, str]:
    """The "Roles" section's three SQL blocks: the superuser's (roles, database), the owner's
    (grants), and the superuser's for each host (its role, bound to its host id)."""
    section = FLEET_PAGE.read_text().split("\n## Roles\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sql\n(.*?)^```$", section, re.S | re.M)
    assert len(blocks) == 3, "docs/fleet.md's Roles section must hold the superuser's, the owner's and a host's block"
    return blocks[0], blocks[1], blocks[2]


# Each test fleet's hosts: a name, the host id its role is bound to.
HOST_IDS = {"a": "00000000-0000-4000-8000-0000000000a1", "b": "00000000-0000-4000-8000-0000000000b2"}
HOST_CONNECTION_LIMIT = 12


@dataclass(frozen=True)
class Fleet:
    database: Database  # connects as the owner
    writer: str  # the hosts' group (no login)
    projector: str
    hosts: dict[str, str]  # host name -> its login role

    def url(self, role: str) -> str:
        return self.database.cluster.url(self.database.name, role)

    def env(self, role: str, **extra: str) -> dict[str, str]:
        return {"HERMES_STATE_URL": self.url(role), **extra}

    def projector_env(self, host: str = "a", **extra: str) -> dict[str, str]:
        """What host ``host``'s projector (root's) reads with: the projector's role, the host's id."""
        return {"HERMES_STATE_URL": self.url(self.projector), "HERMES_HOST_ID": HOST_IDS[host], **extra}

    def host_env(self, host: str = "a", **extra: str) -> dict[str, str]:
        """What host ``host``'s hermes side runs with: its own role, its own host id."""
        return {"HERMES_STATE_URL": self.url(self.hosts[host]), "HERMES_HOST_ID": HOST_IDS[host], **extra}

    def fingerprint(self) -> str:
        """Every row of the log, the projection and the revision, read as the superuser."""
        with self.database.connect(user="postgres") as conn:
            rows = [conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                    for table in ("events", "profile_projection", "alembic_version")]
        return hashlib.sha256(repr(rows).encode()).hexdigest()


def make_fleet(cluster: PostgresCluster, home: Home, names: dict[str, str]) -> Fleet:
    """What docs/fleet.md says to do: the superuser's block, `hermes-state migrate` as the owner, the
    grants, then each host's block (as the superuser, connected to the database)."""
    superuser_block, owner_block, host_block = roles_blocks()
    variables = [arg for name, value in names.items() if not name.startswith("host_")
                 for arg in ("-v", f"{name}={value}")]
    cluster.psql(variables, input=superuser_block, check=True)
    database = Database(cluster, names["dbname"], names["owner"])
    migrated = home.hermes("migrate", env={"HERMES_STATE_URL": database.url})
    assert migrated.returncode == 0, migrated.stderr
    database.psql(variables, input=owner_block, check=True)
    hosts = {host: names[f"host_{host}"] for host in HOST_IDS}
    for host, role in hosts.items():
        database.psql([*variables, "-v", f"role={role}", "-v", f"host={HOST_IDS[host]}",
                       "-v", f"limit={HOST_CONNECTION_LIMIT}"], input=host_block, user="postgres", check=True)
    return Fleet(database, names["writer"], names["projector"], hosts)


@contextlib.contextmanager
def removed_after(cluster: PostgresCluster, names: dict[str, str]) -> Iterator[None]:
    try:
        yield
    finally:
        if not cluster.running:
            cluster.start_server()
        cluster.drop_database(names["dbname"])  # its grants and default privileges go with it
        roles = [names[role] for role in ("writer", "projector", "owner", *(f"host_{h}" for h in HOST_IDS))
                 if role in names]
        with cluster.connect(autocommit=True) as conn:  # what they hold on shared objects (a parameter, say)
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.SQL(", ").join(map(sql.Identifier, roles))))
        for role in roles:
            cluster.drop_role(role)


@pytest.fixture
def fleet(pg_cluster: PostgresCluster, home: Home) -> Iterator[Fleet]:
    suffix = uuid.uuid4().hex[:10]
    names = {"owner": f"hermes_owner_{suffix}", "writer": f"hermes_writer_{suffix}",
             "projector": f"hermes_projector_{suffix}", "dbname": f"hermes_{suffix}",
             **{f"host_{host}": f"hermes_host_{host}_{suffix}" for host in HOST_IDS}}
    with removed_after(pg_cluster, names):
        yield make_fleet(pg_cluster, home, names)

"""A migrated store made once per test module and copied for each test.

Same result as conftest's ``migrated_home`` (a HERMES_HOME owned by the
unprivileged user, holding a store at the code's schema), without paying
for an Alembic run in every test: the hook tests run dozens of homes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import Home, give_to
from hermes_state.migrate import migrate


@pytest.fixture(scope="module")
def template_store() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="hermes-template-"))
    path = directory / "profiles.db"
    migrate(path)
    # The last connection closed checkpointed the WAL: the main file is the whole store.
    assert not Path(f"{path}-wal").exists()
    yield path
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def migrated_home(home: Home, template_store: Path) -> Home:
    """Overrides conftest's: a copy of the module's migrated store, owned by the user."""
    home.db.parent.mkdir(parents=True)
    shutil.copyfile(template_store, home.db)
    give_to(home.path, home.user)
    return home

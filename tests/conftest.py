"""Test databases: a SQLite file always, PostgreSQL when ``TW_TEST_POSTGRES_URL`` is set.

``TW_TEST_POSTGRES_URL`` points at a server (any database on it, e.g.
``postgresql://postgres@127.0.0.1:5432/postgres``). Each test run creates its
own fresh database there and drops it at the end. With ``CI=true`` the
PostgreSQL tests are required: a missing URL or an unreachable server fails
the run instead of skipping.

Fixtures:
- ``db``: a migrated, empty ``Database``, once per backend (``sqlite``, ``postgres``).
- ``sqlite_db``: SQLite only.  ``pg_db``: PostgreSQL only.
- ``new_database_url(backend)``: factory of fresh, empty (unmigrated) databases.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from transfer_wallet import migrations
from transfer_wallet.models import metadata
from transfer_wallet.db import Database, open_database

PG_ENV = "TW_TEST_POSTGRES_URL"


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    from transfer_wallet.db import normalise_url

    return make_url(normalise_url(url)).set(database=name).render_as_string(hide_password=False)


def _admin_execute(statement: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(_pg_admin_url() or "")
    with psycopg.connect(
        host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username or "postgres",
        password=url.password, dbname=url.database or "postgres", autocommit=True, connect_timeout=5,
    ) as connection:
        connection.execute(statement)


def pytest_configure(config: pytest.Config) -> None:
    if _ci() and not _pg_admin_url():
        raise pytest.UsageError(f"CI=true but {PG_ENV} is not set: the PostgreSQL tests are required under CI")


class _PgServer:
    """Fresh databases on the test server, all dropped when the run ends."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def create(self) -> str:
        name = f"tw_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        _admin_execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return _with_database(_pg_admin_url() or "", name)

    def drop_all(self) -> None:
        for name in self.created:
            try:
                _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:  # pragma: no cover - best effort clean-up
                pass


@pytest.fixture(scope="session")
def pg_server() -> Iterator[_PgServer]:
    if not _pg_admin_url():
        pytest.skip(f"{PG_ENV} not set")
    server = _PgServer()
    try:
        server.create()  # prove reachability now: under CI an unreachable server is a failure
    except Exception as exc:
        if _ci():
            pytest.fail(f"PostgreSQL at {PG_ENV} is unreachable under CI: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def _pg_migrated_url(pg_server: _PgServer) -> str:
    url = pg_server.create()
    database = open_database(url)
    migrations.upgrade(database)
    database.dispose()
    return url


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    database = open_database(f"sqlite:///{path}")
    migrations.upgrade(database)
    database.dispose()  # the last connection to close checkpoints and removes the WAL
    assert not path.with_name(path.name + "-wal").exists()
    return path


def _sqlite_database(template: Path, tmp_path: Path) -> Database:
    path = tmp_path / "ledger.db"
    shutil.copyfile(template, path)
    return open_database(f"sqlite:///{path}")


def _pg_database(url: str) -> Database:
    database = open_database(url)
    with database.engine.begin() as connection:
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    return database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty ledger database on each backend."""
    if request.param == "sqlite":
        database = _sqlite_database(request.getfixturevalue("_sqlite_template"), tmp_path)
    else:
        database = _pg_database(request.getfixturevalue("_pg_migrated_url"))
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(_sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    database = _sqlite_database(_sqlite_template, tmp_path)
    yield database
    database.dispose()


@pytest.fixture
def pg_db(_pg_migrated_url: str) -> Iterator[Database]:
    database = _pg_database(_pg_migrated_url)
    yield database
    database.dispose()


@pytest.fixture
def new_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """``new_database_url("sqlite"|"postgres")``: a fresh, empty, unmigrated database."""

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'empty-{uuid.uuid4().hex[:6]}.db'}"
        return request.getfixturevalue("pg_server").create()

    return make

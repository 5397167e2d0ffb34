"""The session switch as a fixture parameter: on PostgreSQL every session test runs with the
server-side steps (``postgres``) and with the Python steps (``postgres-python``,
``SessionManager.server_steps`` off, and ``TW_SESSION_SERVER_STEPS=0`` for spawned processes).

A session test module imports the one fixture it overrides (not both: ``db`` reads conftest's ``pg_db``)::

    from session_switch import db  # noqa: F401  (sqlite, postgres, postgres-python)
    from session_switch import pg_db  # noqa: F401  (postgres, postgres-python)
"""

from __future__ import annotations

from typing import Iterator

import pytest

from transfer_wallet.db import Database
from transfer_wallet.sessions.state import SessionCore

_PG = pytest.mark.postgres


def _python_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SessionCore, "server_steps", False)
    monkeypatch.setenv("TW_SESSION_SERVER_STEPS", "0")  # processes started by the test import it afresh


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=_PG), pytest.param("postgres-python", marks=_PG)])
def db(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """A migrated, empty database: SQLite, PostgreSQL with the server steps, PostgreSQL with the Python steps."""
    if request.param == "postgres-python":
        _python_steps(monkeypatch)
    yield request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db")


@pytest.fixture(params=[pytest.param("server", marks=_PG), pytest.param("python", marks=_PG)])
def pg_db(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, pg_db: Database) -> Iterator[Database]:
    """Conftest's PostgreSQL database with the server steps, then with the Python steps."""
    if request.param == "python":
        _python_steps(monkeypatch)
    yield pg_db

"""SQLite's write lock taken at BEGIN IMMEDIATE: a busy database is a transient error, retried, then ConcurrencyError."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

import transfer_wallet.db as db_module
from transfer_wallet.errors import ConcurrencyError


@pytest.fixture
def busy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 50)  # give up waiting for the lock quickly
    path = tmp_path / "busy.db"
    database = db_module.open_database(f"sqlite:///{path}")
    database.transaction(lambda c: c.execute(text("CREATE TABLE t (x integer)")))
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    yield database, holder
    holder.close()
    database.dispose()


def _insert(connection) -> int:  # type: ignore[no-untyped-def]
    connection.execute(text("INSERT INTO t VALUES (1)"))
    return 1


def test_a_database_locked_at_begin_is_retried_until_the_other_writer_commits(busy) -> None:  # type: ignore[no-untyped-def]
    database, holder = busy
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    assert database.transaction(_insert) == 1
    assert database.transaction(lambda c: c.execute(text("SELECT count(*) FROM t")).scalar(), readonly=True) == 1


def test_a_database_locked_for_every_attempt_is_a_concurrency_error_and_nothing_is_written(busy) -> None:  # type: ignore[no-untyped-def]
    database, holder = busy
    with pytest.raises(ConcurrencyError, match="after 2 attempts"):
        database.transaction(_insert, attempts=2)
    holder.execute("COMMIT")
    assert database.transaction(lambda c: c.execute(text("SELECT count(*) FROM t")).scalar(), readonly=True) == 0

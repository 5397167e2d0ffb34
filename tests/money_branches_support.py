"""Interleave two workers deterministically on one database, for race-only branches.

``interleave(db, hold, contender)``: ``hold(connection)`` runs in an open, uncommitted
transaction; ``contender()`` then runs in a thread. On PostgreSQL we wait until the
contender is blocked on a lock the holder took (``pg_stat_activity``, this database only), then commit, so the
contender resumes against the winner's committed rows: the state a real race leaves.
On SQLite the contender waits in ``BEGIN IMMEDIATE`` (busy timeout) until the commit.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from transfer_wallet.db import PENDING_CACHE, Database

BLOCK_WAIT_S = 10.0


def _wait_until_blocked(db: Database, thread: threading.Thread) -> None:
    if db.engine.dialect.name != "postgresql":
        time.sleep(0.3)  # the contender sits in SQLite's busy handler; nothing to observe
        return
    deadline = time.monotonic() + BLOCK_WAIT_S
    with db.engine.connect() as probe:
        while time.monotonic() < deadline and thread.is_alive():
            waiting = probe.execute(text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )).scalar()
            probe.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the contender never blocked on the holder's lock")


def interleave(db: Database, hold: Callable[[Connection], Any], contender: Callable[[], Any]) -> Any:
    """What ``contender()`` returned or raised after the holder's transaction committed."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(contender())
        except Exception as error:  # the test asserts on it
            outcome.append(error)

    with db.engine.connect() as connection:
        transaction = connection.begin()
        connection.info[PENDING_CACHE] = {}
        hold(connection)
        thread = threading.Thread(target=run)
        thread.start()
        _wait_until_blocked(db, thread)
        transaction.commit()
        connection.info.pop(PENDING_CACHE, None)
    thread.join(BLOCK_WAIT_S)
    assert not thread.is_alive(), "the contender did not finish"
    return outcome[0]

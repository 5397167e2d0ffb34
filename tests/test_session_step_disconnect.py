"""A session step on PostgreSQL whose connection drops after the server committed it is not run again.

``Database.on_driver`` runs a ledger posting once more after a lost connection (its key makes a
committed posting a replay). A session step is not always safe to repeat: a second
``tw_transfer_in_doubt`` would count a second attempt (and could mark the transfer stuck), so the
server steps, like the Python steps, hand the error to the caller with the outcome unknown.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from transfer_wallet.errors import OutcomeUnknownError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def _drop_after(monkeypatch: pytest.MonkeyPatch, function: str) -> list[int]:
    """The first call of ``function`` commits on the server, then the client loses the connection."""
    real = psycopg.Cursor.execute
    dropped: list[int] = []

    def execute(self: psycopg.Cursor[Any], query: Any, params: Any = None, **kwargs: Any) -> Any:
        result = real(self, query, params, **kwargs)
        if isinstance(query, str) and function in query and not dropped:
            dropped.append(1)
            result.fetchone()  # autocommit: the function ran and committed
            self.connection.pgconn.finish()
            raise psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")
        return result

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return dropped


@pytest.mark.postgres
def test_an_in_doubt_step_lost_after_commit_counts_one_attempt(pg_db, monkeypatch):
    wallet = Wallet(pg_db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="seed")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(pg_db, {"acme": acme}, {"acme": SessionPolicy("EUR", stuck_after_attempts=2)},
                             clock=lambda: T0)
    dropped = _drop_after(monkeypatch, "tw_transfer_in_doubt")
    acme.fail_next(OutcomeUnknownError("read timeout"), apply=True)

    with pytest.raises(DBAPIError):
        manager.open_session("P1", "acme", "10.00", key="k")

    assert dropped == [1]
    monkeypatch.undo()
    with pg_db.engine.connect() as connection:
        status, attempts, stuck = connection.execute(text(
            "SELECT t.status, t.attempts, s.stuck FROM transfers t JOIN game_sessions s ON s.id = t.session_id "
            "WHERE t.direction = 'IN'")).one()
    assert (status, attempts, stuck) == ("in_doubt", 1, False)  # run once, not twice (2 would be stuck)
    # the pool was replaced: the next step works, and the in-doubt sweep books what the provider applied
    report = manager.resolve_in_doubt(T0 + dt.timedelta(hours=1))
    assert report.completed == 1
    assert wallet.balance("P1").locked.amount_minor == 1000
    assert check_ledger(pg_db).clean

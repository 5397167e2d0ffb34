"""What callers see of sessions: ``SessionView``, ``TransferView``, ``SweepReport``, and the read queries.

The views and the read of one session live in ``transfer_wallet.session_views`` (light, so that
``tw session show`` starts without SQLAlchemy); this module reads them in a unit of work and
pages through many sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Select

from transfer_wallet import session_views
from transfer_wallet.dbapi import run_on
from transfer_wallet.models import IN_DOUBT, PENDING
from transfer_wallet.session_views import SessionView as SessionView
from transfer_wallet.session_views import TransferView as TransferView
from transfer_wallet.sessions.state import SessionCore, sessions_table, transfers_table

#: The most sessions one ``list`` call returns; page with ``offset`` for more.
MAX_PAGE = 10_000


@dataclass
class SweepReport:
    """What a timeout or in-doubt pass did."""

    examined: int = 0
    closed: int = 0
    completed: int = 0
    refunded: int = 0
    still_in_doubt: int = 0
    stuck: int = 0
    errors: list[str] = field(default_factory=list)
    #: True when ``keep_going`` said stop before the batch was done (the job's lease was lost).
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The counters, the errors and ``stopped_early`` as a plain dict."""
        return {k: v for k, v in self.__dict__.items()}


def read_view(connection: Connection, session_id: str) -> SessionView:
    """The session with its transfers, read in the caller's transaction (``session_views.read_view``)."""
    return run_on(connection, lambda cursor: session_views.read_view(cursor, session_id))


class SessionQueries(SessionCore):
    """The read side of the manager: one session, or a filtered page of them."""

    def get(self, session_id: str) -> SessionView:
        """The session with its transfers; ``NotFoundError`` if unknown."""
        return self.db.transaction(lambda c: read_view(c, session_id), readonly=True)

    def list(
        self, *, status: str | None = None, player_id: str | None = None, provider: str | None = None,
        stuck: bool | None = None, in_doubt: bool | None = None, limit: int = 100, offset: int = 0,
    ) -> list[SessionView]:
        """Sessions, newest first, filtered; at most ``limit`` (capped at 10,000) after skipping ``offset``.

        Page through everything by raising ``offset`` by the page size until a page
        comes back shorter than ``limit``.
        """
        limit = max(1, min(limit, MAX_PAGE))
        offset = max(0, offset)

        def work(connection: Connection) -> list[SessionView]:
            query = _filtered(select(sessions_table), status, player_id, provider, stuck, in_doubt)
            query = query.order_by(sessions_table.c.opened_at.desc(), sessions_table.c.id).limit(limit).offset(offset)
            rows = connection.execute(query).all()
            return _with_transfers(connection, list(rows))

        return self.db.transaction(work, readonly=True)

    def count(
        self, *, status: str | None = None, player_id: str | None = None, provider: str | None = None,
        stuck: bool | None = None, in_doubt: bool | None = None,
    ) -> int:
        """How many sessions ``list`` with the same filters would page through (one COUNT query)."""
        query = _filtered(select(func.count()).select_from(sessions_table), status, player_id, provider, stuck,
                          in_doubt)
        return int(self.db.transaction(lambda connection: connection.execute(query).scalar_one(), readonly=True))


def _filtered(query: Select[Any], status: str | None, player_id: str | None, provider: str | None,
              stuck: bool | None, in_doubt: bool | None) -> Select[Any]:
    """``query`` restricted by the filters of ``list`` and ``count``."""
    if status:
        query = query.where(sessions_table.c.status == status)
    if player_id:
        query = query.where(sessions_table.c.player_id == player_id)
    if provider:
        query = query.where(sessions_table.c.provider == provider)
    if stuck is not None:
        query = query.where(sessions_table.c.stuck == stuck)
    if in_doubt:
        doubtful = select(transfers_table.c.session_id).where(transfers_table.c.status.in_((PENDING, IN_DOUBT)))
        query = query.where(sessions_table.c.id.in_(doubtful))
    return query


def _with_transfers(connection: Connection, rows: list[Row]) -> list[SessionView]:
    """Views of ``rows`` with their transfers, fetched in one query."""
    ids = [r.id for r in rows]
    transfers = connection.execute(
        select(transfers_table).where(transfers_table.c.session_id.in_(ids))
    ).all() if ids else []
    by_session: dict[str, list[Row]] = {}
    for t in transfers:
        by_session.setdefault(t.session_id, []).append(t)

    def transfers_of(session_id: str) -> list[Any]:
        return [t._mapping for t in sorted(by_session.get(session_id, []), key=lambda t: (t.created_at, t.id))]

    return [session_views.to_view(r._mapping, transfers_of(r.id)) for r in rows]

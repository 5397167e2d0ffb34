"""What callers see of sessions: ``SessionView``, ``TransferView``, ``SweepReport``, and the read queries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Select

from transfer_wallet.models import CLOSING, IN_DOUBT, OPENING, PENDING
from transfer_wallet.money import Money, currency
from transfer_wallet.sessions.state import SessionCore, session_row, sessions_table, transfers_table

#: The most sessions one ``list`` call returns; page with ``offset`` for more.
MAX_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class TransferView:
    """One provider transfer of a session, as stored."""

    id: str
    direction: str
    status: str
    amount: Money | None
    game_amount: Money | None
    fx_rate: str | None
    attempts: int
    last_error: str | None
    provider_tx_id: str | None

    def as_dict(self) -> dict[str, Any]:
        """The transfer as JSON-ready values (amounts as exact decimal strings)."""
        return {
            "id": self.id, "direction": self.direction, "status": self.status,
            "amount": self.amount.format() if self.amount else None,
            "game_amount": self.game_amount.format() if self.game_amount else None,
            "fx_rate": self.fx_rate, "attempts": self.attempts, "last_error": self.last_error,
            "provider_tx_id": self.provider_tx_id,
        }


@dataclass(frozen=True, slots=True)
class SessionView:
    """A session as operators see it: state, money, deadlines, transfers."""

    id: str
    player_id: str
    provider: str
    status: str
    in_doubt: bool
    stuck: bool
    amount_in: Money
    game_amount_in: Money
    game_balance: Money
    amount_out: Money | None
    game_amount_out: Money | None
    opened_at: dt.datetime
    last_activity_at: dt.datetime
    deadline_at: dt.datetime
    closed_at: dt.datetime | None
    close_reason: str | None
    failure_reason: str | None
    transfers: tuple[TransferView, ...] = field(default=())

    @property
    def display_status(self) -> str:
        """``opening (in doubt)``, ``closing (stuck)`` ... as shown to operators."""
        notes = [n for n, on in (("in doubt", self.in_doubt), ("stuck", self.stuck)) if on]
        return f"{self.status} ({', '.join(notes)})" if notes else self.status

    def as_dict(self) -> dict[str, Any]:
        """The session as JSON-ready values (amounts as exact decimal strings, times ISO 8601)."""
        def fmt(value: Money | None) -> str | None:
            return value.format() if value is not None else None

        return {
            "session_id": self.id, "player_id": self.player_id, "provider": self.provider,
            "status": self.status, "in_doubt": self.in_doubt, "stuck": self.stuck,
            "currency": self.amount_in.currency.code, "amount_in": fmt(self.amount_in),
            "game_currency": self.game_amount_in.currency.code, "game_amount_in": fmt(self.game_amount_in),
            "game_balance": fmt(self.game_balance), "amount_out": fmt(self.amount_out),
            "game_amount_out": fmt(self.game_amount_out), "opened_at": self.opened_at.isoformat(),
            "last_activity_at": self.last_activity_at.isoformat(), "deadline_at": self.deadline_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "close_reason": self.close_reason, "failure_reason": self.failure_reason,
            "transfers": [t.as_dict() for t in self.transfers],
        }


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


def to_view(row: Row, transfers: list[Row]) -> SessionView:
    """A session row and its transfer rows (oldest first) as a ``SessionView``."""
    wallet, game = currency(row.wallet_currency), currency(row.game_currency)
    views = tuple(
        TransferView(
            id=t.id, direction=t.direction, status=t.status,
            amount=Money(t.amount_minor, wallet) if t.amount_minor is not None else None,
            game_amount=Money(t.game_amount_minor, game) if t.game_amount_minor is not None else None,
            fx_rate=t.fx_rate, attempts=t.attempts, last_error=t.last_error, provider_tx_id=t.provider_tx_id,
        )
        for t in transfers
    )
    return SessionView(
        id=row.id, player_id=row.player_id, provider=row.provider, status=row.status,
        in_doubt=any(t.status in (PENDING, IN_DOUBT) for t in views) and row.status in (OPENING, CLOSING),
        stuck=bool(row.stuck), amount_in=Money(row.amount_in_minor, wallet),
        game_amount_in=Money(row.game_amount_in_minor, game), game_balance=Money(row.game_balance_minor, game),
        amount_out=Money(row.amount_out_minor, wallet) if row.amount_out_minor is not None else None,
        game_amount_out=Money(row.game_amount_out_minor, game) if row.game_amount_out_minor is not None else None,
        opened_at=row.opened_at, last_activity_at=row.last_activity_at, deadline_at=row.deadline_at,
        closed_at=row.closed_at, close_reason=row.close_reason, failure_reason=row.failure_reason, transfers=views,
    )


def read_view(connection: Connection, session_id: str) -> SessionView:
    """The session with its transfers, read in the caller's transaction."""
    row = session_row(connection, session_id)
    transfers = connection.execute(
        select(transfers_table).where(transfers_table.c.session_id == session_id)
        .order_by(transfers_table.c.created_at, transfers_table.c.id)
    ).all()
    return to_view(row, list(transfers))


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
    return [to_view(r, sorted(by_session.get(r.id, []), key=lambda t: (t.created_at, t.id))) for r in rows]

"""What callers see of one session: ``SessionView``, ``TransferView``, its rounds, and the reads behind them.

Light on purpose (no SQLAlchemy): ``tw session show`` runs :func:`read_session_and_rounds`
on a plain driver cursor (``transfer_wallet.dbapi``), and the library runs
:func:`read_view` and :func:`read_rounds` on the driver connection under its unit of
work (``sessions.views.read_view``, ``play.rounds_of``): one SQL text and one builder
for each read. The session and transfer state names live here too, so that this module
needs nothing from ``transfer_wallet.models`` (which re-exports them).

Values come back as the driver stores them: on SQLite a time is naive UTC text and a
boolean 0 or 1. :func:`utc_time` reads a time exactly as ``models.UtcDateTime`` does
through SQLAlchemy (``datetime.fromisoformat``, then aware UTC).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from transfer_wallet.dbapi import execute
from transfer_wallet.errors import NotFoundError
from transfer_wallet.money import Currency, Money, currency

#: Session states. OPENING/CLOSING may be in doubt (see their transfer) or stuck.
OPENING, ACTIVE, CLOSING, CLOSED, FAILED = "opening", "active", "closing", "closed", "failed"
SESSION_STATES = (OPENING, ACTIVE, CLOSING, CLOSED, FAILED)
OPEN_STATES = (OPENING, ACTIVE, CLOSING)

#: Transfer states: a pending (or in-doubt) transfer ends completed or refused (funds back), once.
PENDING, IN_DOUBT, COMPLETED, REFUSED = "pending", "in_doubt", "completed", "refused"
TRANSFER_STATES = (PENDING, IN_DOUBT, COMPLETED, REFUSED)

#: A row by column name: a dict built from a driver's tuple, or SQLAlchemy's ``Row._mapping``.
RowMapping = Mapping[Any, Any]

#: Every session id the library gives out (:func:`new_session_id`): ``s`` and 20 hex digits.
SESSION_ID_PATTERN = re.compile(r"s[0-9a-f]{20}")

#: The columns of a session that its view shows.
SESSION_COLUMNS = (
    "id", "player_id", "provider", "status", "wallet_currency", "game_currency", "amount_in_minor",
    "game_amount_in_minor", "game_balance_minor", "amount_out_minor", "game_amount_out_minor", "opened_at",
    "last_activity_at", "deadline_at", "closed_at", "close_reason", "failure_reason", "stuck",
)
TRANSFER_COLUMNS = (
    "id", "direction", "status", "amount_minor", "game_amount_minor", "fx_rate", "attempts", "last_error",
    "provider_tx_id",
)
ROUND_COLUMNS = ("round_id", "game_id", "status", "bet_minor", "win_minor", "refund_minor", "started_at", "updated_at")

SESSION_SQL = f"SELECT {', '.join(SESSION_COLUMNS)} FROM game_sessions WHERE id = ?"
#: A session's transfers, oldest first.
TRANSFERS_SQL = f"SELECT {', '.join(TRANSFER_COLUMNS)} FROM transfers WHERE session_id = ? ORDER BY created_at, id"
#: A session's rounds (game history), oldest first.
ROUNDS_SQL = f"SELECT {', '.join(ROUND_COLUMNS)} FROM game_rounds WHERE session_id = ? ORDER BY started_at, id"


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


def new_session_id() -> str:
    """A fresh session id (``SESSION_ID_PATTERN``); its transfers' ids start with it."""
    return f"s{uuid.uuid4().hex[:20]}"


def utc_time(value: dt.datetime | str | None) -> dt.datetime | None:
    """A stored time as aware UTC, as ``models.UtcDateTime`` returns it (SQLite gives naive UTC text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _utc(value: dt.datetime | str) -> dt.datetime:
    time = utc_time(value)
    assert time is not None, "a NOT NULL time column was NULL"
    return time


def _money(amount_minor: int | None, unit: Currency) -> Money | None:
    return Money(amount_minor, unit) if amount_minor is not None else None


def to_view(session: RowMapping, transfers: Sequence[RowMapping]) -> SessionView:
    """A session row and its transfer rows (oldest first) as a ``SessionView`` (rows by column name)."""
    wallet, game = currency(session["wallet_currency"]), currency(session["game_currency"])
    views = tuple(
        TransferView(
            id=t["id"], direction=t["direction"], status=t["status"], amount=_money(t["amount_minor"], wallet),
            game_amount=_money(t["game_amount_minor"], game), fx_rate=t["fx_rate"], attempts=t["attempts"],
            last_error=t["last_error"], provider_tx_id=t["provider_tx_id"],
        )
        for t in transfers
    )
    status = session["status"]
    return SessionView(
        id=session["id"], player_id=session["player_id"], provider=session["provider"], status=status,
        in_doubt=any(t.status in (PENDING, IN_DOUBT) for t in views) and status in (OPENING, CLOSING),
        stuck=bool(session["stuck"]), amount_in=Money(session["amount_in_minor"], wallet),
        game_amount_in=Money(session["game_amount_in_minor"], game),
        game_balance=Money(session["game_balance_minor"], game),
        amount_out=_money(session["amount_out_minor"], wallet),
        game_amount_out=_money(session["game_amount_out_minor"], game),
        opened_at=_utc(session["opened_at"]), last_activity_at=_utc(session["last_activity_at"]),
        deadline_at=_utc(session["deadline_at"]), closed_at=utc_time(session["closed_at"]),
        close_reason=session["close_reason"], failure_reason=session["failure_reason"], transfers=views,
    )


def to_rounds(game: Currency, rounds: Sequence[RowMapping]) -> list[dict[str, Any]]:
    """A session's round rows (oldest first) as game history, amounts in the session's game currency."""
    return [
        {"round_id": r["round_id"], "game_id": r["game_id"], "status": r["status"],
         "bet": Money(r["bet_minor"], game).format(), "win": Money(r["win_minor"], game).format(),
         "refund": Money(r["refund_minor"], game).format(), "started_at": _utc(r["started_at"]).isoformat(),
         "updated_at": _utc(r["updated_at"]).isoformat()}
        for r in rounds
    ]


def _rows(cursor: Any, sql: str, columns: Sequence[str], session_id: str) -> list[dict[str, Any]]:
    return [dict(zip(columns, row)) for row in execute(cursor, sql, (session_id,)).fetchall()]


def _session(cursor: Any, session_id: str) -> dict[str, Any]:
    """The session's row; ``NotFoundError`` if unknown (an id the library never gives out is not looked up)."""
    if isinstance(session_id, str) and SESSION_ID_PATTERN.fullmatch(session_id):
        rows = _rows(cursor, SESSION_SQL, SESSION_COLUMNS, session_id)
        if rows:
            return rows[0]
    raise NotFoundError(f"unknown session '{session_id}'")


def read_view(cursor: Any, session_id: str) -> SessionView:
    """The session with its transfers, read on a DBAPI ``cursor`` in the caller's transaction."""
    session = _session(cursor, session_id)
    return to_view(session, _rows(cursor, TRANSFERS_SQL, TRANSFER_COLUMNS, session_id))


def read_rounds(cursor: Any, session_id: str) -> list[dict[str, Any]]:
    """The session's rounds as game history, oldest first; ``NotFoundError`` if the session is unknown."""
    game = currency(_session(cursor, session_id)["game_currency"])
    return to_rounds(game, _rows(cursor, ROUNDS_SQL, ROUND_COLUMNS, session_id))


def read_session_and_rounds(cursor: Any, session_id: str) -> tuple[SessionView, list[dict[str, Any]]]:
    """What ``tw session show`` prints: the session with its transfers, and its rounds, in one read."""
    view = read_view(cursor, session_id)
    return view, to_rounds(view.game_amount_in.currency, _rows(cursor, ROUNDS_SQL, ROUND_COLUMNS, session_id))

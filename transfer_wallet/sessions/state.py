"""Session states and the rules that move a session between them.

``TRANSITIONS`` is the whole state table; ``move`` applies one allowed transition,
guarded by the state it read, and ``guard_transfer`` finishes a transfer at most
once. ``SessionPolicy`` holds a provider's session rules (game currency, timeouts,
retries, review thresholds). ``SessionCore`` is what every part of the manager
shares: the database, the providers and their policies.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable, Mapping

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection, Row

from transfer_wallet.config import (
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_OPEN_SESSIONS,
    DEFAULT_MAX_SESSION_S,
    DEFAULT_REVIEW_OUT_MULTIPLE,
    DEFAULT_STUCK_AFTER_ATTEMPTS,
    ProviderConfig,
)
from transfer_wallet.errors import ConcurrencyError, InvalidStateError, NotFoundError
from transfer_wallet.models import (
    ACTIVE,
    CLOSED,
    CLOSING,
    FAILED,
    IN_DOUBT,
    OPENING,
    PENDING,
    Account,
    GameSession,
    Transfer,
    table_of,
)
from transfer_wallet.money import Money

if TYPE_CHECKING:
    from transfer_wallet.db import Database
    from transfer_wallet.providers.protocol import Provider

sessions_table = table_of(GameSession)
transfers_table = table_of(Transfer)
accounts_table = table_of(Account)

# The steps' statements, built once (item 3 of issue 11: nothing built per call on the hot path); the
# WHERE parameters are named ``where_*`` so that the columns an UPDATE sets come from the call's values.
_LOCK_ACCOUNTS = (select(accounts_table.c.id).where(accounts_table.c.id.in_(bindparam("ids", expanding=True)))
                  .order_by(accounts_table.c.id).with_for_update())
_SESSION = select(sessions_table).where(sessions_table.c.id == bindparam("where_id"))
_SESSION_LOCKED = _SESSION.with_for_update()
_TRANSFER = select(transfers_table).where(transfers_table.c.id == bindparam("where_id"))
_SESSION_OF_TRANSFER = (select(sessions_table)
                        .join(transfers_table, transfers_table.c.session_id == sessions_table.c.id)
                        .where(transfers_table.c.id == bindparam("where_id")))
_SESSION_OF_TRANSFER_LOCKED = _SESSION_OF_TRANSFER.with_for_update(of=sessions_table)
_MOVE = update(sessions_table).where(sessions_table.c.id == bindparam("where_id"),
                                     sessions_table.c.status == bindparam("where_status"))
_UPDATE_SESSION = update(sessions_table).where(sessions_table.c.id == bindparam("where_id"))
_GUARD_TRANSFER = update(transfers_table).where(transfers_table.c.id == bindparam("where_id"),
                                                transfers_table.c.status.in_((PENDING, IN_DOUBT)))

#: The allowed session transitions; ``move`` refuses anything else.
TRANSITIONS: dict[str, frozenset[str]] = {
    OPENING: frozenset({ACTIVE, FAILED}),
    ACTIVE: frozenset({CLOSING}),
    CLOSING: frozenset({CLOSED}),
    CLOSED: frozenset(),
    FAILED: frozenset(),
}
#: ``provider_tx_id`` of a transfer-out of 0.00 settled here without calling the provider (the
#: session lost everything at the provider): it never reached the provider and is not in its report.
SETTLED_LOCALLY = "none"
#: How long a PENDING transfer may wait for its own step 3 before the in-doubt job takes it over.
PENDING_GRACE_S = 60
MAX_BATCH = 200
#: Close reasons of the timeout sweep (re-checked against the deadline under the session lock).
TIMEOUT_REASONS = frozenset({"idle_timeout", "max_length", "player_limit"})


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Per-provider session rules: game currency, timeouts, retries, review thresholds.

    ``stuck_after_attempts`` counts close attempts (not HTTP attempts): a session still
    closing after that many is shown as stuck. A transfer-out above
    ``review_out_multiple`` times the session's transfer-in, or above
    ``review_out_amounts[currency]`` (minor units), is booked and flagged for review.
    """

    currency: str
    idle_timeout_s: int = DEFAULT_IDLE_TIMEOUT_S
    max_session_s: int = DEFAULT_MAX_SESSION_S
    max_open_sessions: int = DEFAULT_MAX_OPEN_SESSIONS
    stuck_after_attempts: int = DEFAULT_STUCK_AFTER_ATTEMPTS
    retry_base_s: int = 30
    retry_max_s: int = 3600
    review_out_multiple: Decimal | None = DEFAULT_REVIEW_OUT_MULTIPLE
    review_out_amounts: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: ProviderConfig) -> "SessionPolicy":
        """The policy a provider's configuration entry asks for."""
        return cls(
            currency=config.currency,
            idle_timeout_s=config.idle_timeout_s,
            max_session_s=config.max_session_s,
            max_open_sessions=config.max_open_sessions,
            stuck_after_attempts=config.stuck_after_attempts,
            review_out_multiple=config.review_out_multiple,
            review_out_amounts={code: money.amount_minor for code, money in config.review_out_amount.items()},
        )

    def next_attempt(self, attempts: int, now: dt.datetime) -> dt.datetime:
        """Exponential backoff: base * 2^(attempts-1), capped."""
        delay = min(self.retry_base_s * 2 ** max(attempts - 1, 0), self.retry_max_s)
        return now + dt.timedelta(seconds=delay)


def policies_from_config(configs: Mapping[str, ProviderConfig]) -> dict[str, SessionPolicy]:
    """A ``SessionPolicy`` per configured provider."""
    return {name: SessionPolicy.from_config(config) for name, config in configs.items()}


class SessionCore:
    """What every part of the session manager shares: database, providers, policies, clock."""

    db: Database
    providers: Mapping[str, Provider]
    policies: Mapping[str, SessionPolicy]
    clock: Callable[[], dt.datetime]
    #: PostgreSQL: each durable step is one call of its server-side function (``server_steps``, migration
    #: 0008). False (or ``TW_SESSION_SERVER_STEPS=0`` in the environment) runs the Python steps there too:
    #: the switch back, and the tests' and the benchmark's comparison.
    server_steps: bool = os.environ.get("TW_SESSION_SERVER_STEPS", "1") != "0"

    def _on_server(self) -> bool:
        """Whether the durable steps run as server-side functions (PostgreSQL, switch on)."""
        return self.server_steps and self.db.dialect == "postgresql"

    def _now(self, now: dt.datetime | None) -> dt.datetime:
        """``now`` (else the clock's) in UTC, checked as ``limits`` checks it before any step runs: a naive
        time is a ``ValueError`` on every path (a server step would read it in the database's TimeZone)."""
        from transfer_wallet.limits import _now as aware_utc  # limits -> wallet -> sessions: imported late

        return aware_utc(self.clock() if now is None else now)

    def _provider(self, name: str) -> tuple[Provider, SessionPolicy]:
        if name not in self.providers or name not in self.policies:
            known = ", ".join(sorted(self.providers)) or "none configured"
            raise NotFoundError(f"unknown provider '{name}' (known: {known})")
        return self.providers[name], self.policies[name]


def session_deadline(session: Row, now: dt.datetime) -> dt.datetime:
    """When an active session times out after activity at ``now``: idle or maximum length, first."""
    return min(now + dt.timedelta(seconds=session.idle_timeout_s),
               session.opened_at + dt.timedelta(seconds=session.max_session_s))


def canonical_amount(amount: Money | str) -> str:
    """The amount as a request hash sees it: "20", "20.00" and Money(2000, EUR) are one request."""
    if isinstance(amount, Money):
        return format(amount.to_decimal().normalize(), "f")
    try:
        return format(Decimal(str(amount).strip()).normalize(), "f")
    except (InvalidOperation, ValueError):
        return str(amount)


def short(error: BaseException) -> str:
    """An error as stored on a transfer or session: type and message, at most 500 characters."""
    return f"{type(error).__name__}: {error}"[:500]


def lock_rows(connection: Connection, ids: list[int]) -> None:
    """Row locks in id order (PostgreSQL); SQLite's BEGIN IMMEDIATE already serialises writers."""
    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK_ACCOUNTS, {"ids": ids})


def session_row(connection: Connection, session_id: str, *, lock: bool = False) -> Row:
    """The session's row (locked for update on PostgreSQL if ``lock``); ``NotFoundError`` if unknown."""
    query = _SESSION_LOCKED if lock and connection.dialect.name == "postgresql" else _SESSION
    row = connection.execute(query, {"where_id": session_id}).first()
    if row is None:
        raise NotFoundError(f"unknown session '{session_id}'")
    return row


def move(connection: Connection, row: Row, target: str, **values: Any) -> None:
    """Apply an allowed transition, guarded by the state we read (no lost transition).

    ``InvalidStateError`` for a transition the table does not allow; ``ConcurrencyError``
    if the session left the state we read meanwhile (the caller's transaction rolls back).
    """
    if target not in TRANSITIONS[row.status]:
        raise InvalidStateError(f"session {row.id} cannot go from {row.status} to {target}")
    result = connection.execute(_MOVE, {"where_id": row.id, "where_status": row.status, "status": target, **values})
    if result.rowcount != 1:
        raise ConcurrencyError(f"session {row.id} changed state concurrently; try again")


def guard_transfer(connection: Connection, transfer_id: str, target: str, now: dt.datetime, **values: Any) -> bool:
    """Finish a transfer once: True if this call moved it out of pending/in-doubt."""
    result = connection.execute(_GUARD_TRANSFER, {"where_id": transfer_id, "status": target, "updated_at": now, **values})
    return result.rowcount == 1


def transfer_row(connection: Connection, transfer_id: str) -> Row:
    """The transfer's row; ``NotFoundError`` if unknown."""
    row = connection.execute(_TRANSFER, {"where_id": transfer_id}).first()
    if row is None:
        raise NotFoundError(f"unknown transfer '{transfer_id}'")
    return row


def locked_transfer(connection: Connection, transfer_id: str) -> tuple[Row, Row]:
    """(transfer, session): the session row locked first (found through the transfer, one
    statement), then the transfer read fresh.

    Every finisher of a transfer takes the session lock before reading the transfer's
    state, so the worker that loses a race sees the winner's result, not a stale one.
    """
    query = _SESSION_OF_TRANSFER_LOCKED if connection.dialect.name == "postgresql" else _SESSION_OF_TRANSFER
    session = connection.execute(query, {"where_id": transfer_id}).first()
    if session is None:
        raise NotFoundError(f"unknown transfer '{transfer_id}'")
    return transfer_row(connection, transfer_id), session


def update_session(connection: Connection, session_id: str, **values: Any) -> None:
    """Set ``values`` on the session (no state change: the caller holds its lock)."""
    connection.execute(_UPDATE_SESSION, {"where_id": session_id, **values})

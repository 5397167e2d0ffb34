"""SQLModel tables of the ledger, players and FX rates.

Money columns are BigInteger minor units with the ISO 4217 code beside them.
Times are stored in UTC (``UtcDateTime``: timezone-aware in Python on every
database). Constraint names follow ``NAMING_CONVENTION`` so migrations are
stable. Alembic owns the schema: these models and the migrations must agree
(a test runs ``alembic check``).

Database-level guarantees (see the initial migration):
- ``ck_accounts_balance_floor``: a cached balance never goes below zero.
- ``ck_accounts_uncached_zero``: accounts without a cached balance keep 0 there.
- ``uq_entries_idempotency_key``: one entry per idempotency key.
- triggers: entries and postings are append-only (no UPDATE, no DELETE);
  on PostgreSQL a deferred constraint trigger checks that every entry's
  postings sum to zero per currency at commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Integer, MetaData, Table, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel

from transfer_wallet.session_views import (
    ACTIVE as ACTIVE,
    CLOSED as CLOSED,
    CLOSING as CLOSING,
    COMPLETED as COMPLETED,
    FAILED as FAILED,
    IN_DOUBT as IN_DOUBT,
    OPEN_STATES as OPEN_STATES,
    OPENING as OPENING,
    PENDING as PENDING,
    REFUSED as REFUSED,
    SESSION_STATES as SESSION_STATES,
    TRANSFER_STATES as TRANSFER_STATES,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata = MetaData(naming_convention=NAMING_CONVENTION)
metadata = SQLModel.metadata


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy ``Table`` behind a table model, typed (SQLModel does not declare ``__table__``).

    The one place that reaches ``Model.__table__``: Core statements elsewhere use
    ``table_of(Account).c.id`` and stay checked by mypy. A model declared without
    ``table=True`` has no table; asking for one is a programmer error (``TypeError``).
    """
    found = getattr(model, "__table__", None)
    if not isinstance(found, Table):
        raise TypeError(f"{model.__name__} is not a table model (declare it with table=True)")
    return found


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


#: 64-bit ids; on SQLite an INTEGER PRIMARY KEY (the rowid) so that it autoincrements.
Id64 = BigInteger().with_variant(Integer(), "sqlite")


def utc_now() -> dt.datetime:
    """Now, timezone-aware UTC (freezegun-friendly)."""
    return dt.datetime.now(dt.timezone.utc)


#: Account kinds. Player accounts carry a cached balance with a floor of zero;
#: the others (touched by every player) are append-only and derive their balance.
PLAYER_MAIN = "player_main"
PLAYER_LOCKED = "player_locked"
CASHIER = "cashier"
HOUSE = "house"
FX = "fx"
FX_ROUNDING = "fx_rounding"
ACCOUNT_KINDS = (PLAYER_MAIN, PLAYER_LOCKED, CASHIER, HOUSE, FX, FX_ROUNDING)
CACHED_KINDS = frozenset({PLAYER_MAIN, PLAYER_LOCKED})


class Player(SQLModel, table=True):
    """A player of the operator, with the currency of their main wallet."""

    __tablename__ = "players"

    id: str = Field(primary_key=True, max_length=64)
    currency: str = Field(max_length=3)
    created_at: dt.datetime = Field(sa_type=UtcDateTime, default_factory=utc_now)


class Account(SQLModel, table=True):
    """A ledger account. ``balance_minor`` is cached only where ``cached`` is true."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("balance_minor >= 0", name="balance_floor"),
        CheckConstraint("cached OR balance_minor = 0", name="uncached_zero"),
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in ACCOUNT_KINDS)})", name="kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=160, sa_column_kwargs={"unique": True})
    kind: str = Field(max_length=16)
    currency: str = Field(max_length=3)
    player_id: str | None = Field(default=None, foreign_key="players.id", index=True, max_length=64)
    provider: str | None = Field(default=None, max_length=32)
    cached: bool = Field(default=False)
    balance_minor: int = Field(default=0, sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=UtcDateTime, default_factory=utc_now)


class Entry(SQLModel, table=True):
    """A journal entry: one business event, idempotent by ``idempotency_key``."""

    __tablename__ = "entries"

    id: int | None = Field(default=None, primary_key=True, sa_type=Id64)
    kind: str = Field(max_length=32)
    idempotency_key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    request_hash: str = Field(max_length=64)
    memo: str | None = Field(default=None, max_length=500)
    reverses_entry_id: int | None = Field(default=None, foreign_key="entries.id", sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=UtcDateTime, default_factory=utc_now)


class Posting(SQLModel, table=True):
    """One leg of an entry: a signed amount on one account (credit +, debit -)."""

    __tablename__ = "postings"
    __table_args__ = (CheckConstraint("amount_minor <> 0", name="nonzero"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=Id64)
    entry_id: int = Field(foreign_key="entries.id", index=True, sa_type=BigInteger)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    currency: str = Field(max_length=3)
    amount_minor: int = Field(sa_type=BigInteger)
    balance_after_minor: int | None = Field(default=None, sa_type=BigInteger)


class FxRate(SQLModel, table=True):
    """An FX rate ``quote`` per 1 ``base`` (major units), effective from ``effective_at``.

    The rate is kept as decimal text: exact on every database (no float, no
    driver-dependent NUMERIC).
    """

    __tablename__ = "fx_rates"
    __table_args__ = (
        UniqueConstraint("base", "quote", "effective_at", name="uq_fx_rates_pair_effective_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    base: str = Field(max_length=3)
    quote: str = Field(max_length=3)
    rate: str = Field(max_length=40)
    effective_at: dt.datetime = Field(sa_type=UtcDateTime)
    created_at: dt.datetime = Field(sa_type=UtcDateTime, default_factory=utc_now)




# -- sessions (transfer-in, play, transfer-out) ------------------------------------------------

# Session and transfer states (OPENING ... FAILED, PENDING ... REFUSED): ``transfer_wallet.session_views``,
# light so that ``tw session show`` needs no SQLAlchemy; imported above and used here.

#: What the ``ck_transfers_status`` constraint of migration 0002 allows: the states, and a
#: "void" that no code writes any more (dropping it from the constraint needs a migration).
_TRANSFER_STATUS_CHECK = (*TRANSFER_STATES, "void")


class GameSession(SQLModel, table=True):
    """A player's session at a provider: money locked in, play mirrored, the rest back out.

    Wallet-currency amounts (``amount_in_minor``, ``amount_out_minor``) are what
    the ledger moved; game-currency amounts are what the provider holds. The
    ``*_s`` limits are snapshotted at open so later config changes do not move
    deadlines of running sessions.
    """

    __tablename__ = "game_sessions"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in SESSION_STATES)})", name="status"),
        CheckConstraint("amount_in_minor > 0", name="amount_in_positive"),
        CheckConstraint("game_balance_minor >= 0", name="game_balance_floor"),
        Index("ix_game_sessions_player_provider_status", "player_id", "provider", "status"),
        Index("ix_game_sessions_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_game_sessions_status_deadline", "status", "deadline_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    player_id: str = Field(foreign_key="players.id", max_length=64)
    provider: str = Field(max_length=32)
    status: str = Field(max_length=12)
    wallet_currency: str = Field(max_length=3)
    game_currency: str = Field(max_length=3)
    amount_in_minor: int = Field(sa_type=BigInteger)
    game_amount_in_minor: int = Field(sa_type=BigInteger)
    game_balance_minor: int = Field(default=0, sa_type=BigInteger)
    mirrored: bool = Field(default=False)
    game_amount_out_minor: int | None = Field(default=None, sa_type=BigInteger)
    amount_out_minor: int | None = Field(default=None, sa_type=BigInteger)
    open_key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    open_request_hash: str = Field(max_length=64)
    close_key: str | None = Field(default=None, max_length=200, sa_column_kwargs={"unique": True})
    close_reason: str | None = Field(default=None, max_length=32)
    failure_reason: str | None = Field(default=None, max_length=500)
    idle_timeout_s: int
    max_session_s: int
    opened_at: dt.datetime = Field(sa_type=UtcDateTime)
    last_activity_at: dt.datetime = Field(sa_type=UtcDateTime)
    deadline_at: dt.datetime = Field(sa_type=UtcDateTime)
    """When the session times out: min(last activity + idle timeout, opened + max length)."""
    closing_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    closed_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    close_attempts: int = Field(default=0)
    next_attempt_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    stuck: bool = Field(default=False)


class Transfer(SQLModel, table=True):
    """One money movement to or from a provider; ``id`` is our transfer id and idempotency key."""

    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint("direction IN ('IN', 'OUT')", name="direction"),
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in _TRANSFER_STATUS_CHECK)})", name="status"),
        Index("ix_transfers_status_next_attempt", "status", "next_attempt_at"),
    )

    id: str = Field(primary_key=True, max_length=64)
    session_id: str = Field(foreign_key="game_sessions.id", index=True, max_length=40)
    player_id: str = Field(max_length=64)
    provider: str = Field(max_length=32)
    direction: str = Field(max_length=3)
    status: str = Field(max_length=10)
    wallet_currency: str = Field(max_length=3)
    amount_minor: int | None = Field(default=None, sa_type=BigInteger)
    game_currency: str = Field(max_length=3)
    game_amount_minor: int | None = Field(default=None, sa_type=BigInteger)
    fx_rate: str | None = Field(default=None, max_length=40)
    fx_residue_minor: int = Field(default=0, sa_type=BigInteger)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=500)
    provider_tx_id: str | None = Field(default=None, max_length=64)
    entry_id: int | None = Field(default=None, foreign_key="entries.id", sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    updated_at: dt.datetime = Field(sa_type=UtcDateTime)
    completed_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    next_attempt_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)


class PlayTransaction(SQLModel, table=True):
    """A mirrored bet, win or refund, idempotent by the provider's transaction id.

    A refund of a bet we never saw is stored as a *tombstone* (``kind='refund'``,
    ``tombstone`` true) so that the late bet is refused.
    """

    __tablename__ = "play_transactions"
    __table_args__ = (
        UniqueConstraint("provider", "provider_tx_id", name="uq_play_transactions_provider_tx"),
        CheckConstraint("kind IN ('bet', 'win', 'refund')", name="kind"),
        CheckConstraint("amount_minor >= 0", name="amount_nonnegative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="game_sessions.id", index=True, max_length=40)
    provider: str = Field(max_length=32)
    provider_tx_id: str = Field(max_length=64)
    round_id: str = Field(max_length=64)
    kind: str = Field(max_length=8)
    amount_minor: int = Field(sa_type=BigInteger)
    refund_of: str | None = Field(default=None, max_length=64)
    tombstone: bool = Field(default=False)
    request_hash: str = Field(max_length=64)
    balance_after_minor: int = Field(sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)


class GameRound(SQLModel, table=True):
    """Game history of a session: one row per provider round."""

    __tablename__ = "game_rounds"
    __table_args__ = (UniqueConstraint("provider", "round_id", name="uq_game_rounds_provider_round"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="game_sessions.id", index=True, max_length=40)
    provider: str = Field(max_length=32)
    round_id: str = Field(max_length=64)
    game_id: str | None = Field(default=None, max_length=64)
    bet_minor: int = Field(default=0, sa_type=BigInteger)
    win_minor: int = Field(default=0, sa_type=BigInteger)
    refund_minor: int = Field(default=0, sa_type=BigInteger)
    status: str = Field(max_length=10)  # open, settled, refunded
    started_at: dt.datetime = Field(sa_type=UtcDateTime)
    updated_at: dt.datetime = Field(sa_type=UtcDateTime)


DISCREPANCY_STATUSES = ("open", "investigating", "resolved", "written_off", "cleared")
#: Statuses in which a discrepancy still needs someone; the others are closed.
OPEN_DISCREPANCY_STATUSES = ("open", "investigating")


class Discrepancy(SQLModel, table=True):
    """Something finance must look at; never silently absorbed.

    Raised by sessions (conservation, transfer conflicts, suspicious transfer-outs)
    and by reconciliation. ``fingerprint`` is its stable identity: recording the
    same finding again bumps ``last_seen_at`` and ``times_seen`` instead of adding
    a row (``created_at`` is when it was first seen). Finance moves it through
    open -> investigating -> resolved / written_off; a reconciliation break that no
    longer appears closes as ``cleared``. Every change is in ``discrepancy_events``.
    Amounts are minor units of ``currency``; ``difference_minor`` is provider
    minus ledger; ``fields`` is JSON naming every field that differs with both values.
    """

    __tablename__ = "discrepancies"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open', 'investigating', 'resolved', 'written_off', 'cleared')", name="status"
        ),
        CheckConstraint("source IN ('session', 'reconcile')", name="source"),
        UniqueConstraint("fingerprint"),
        Index("ix_discrepancies_kind_status", "kind", "status"),
        Index("ix_discrepancies_provider_business_date", "provider", "business_date"),
    )

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(max_length=200)
    source: str = Field(default="session", max_length=16)
    kind: str = Field(max_length=32)
    provider: str | None = Field(default=None, max_length=32)
    business_date: dt.date | None = Field(default=None)
    run_id: int | None = Field(default=None)
    session_id: str | None = Field(default=None, foreign_key="game_sessions.id", max_length=40)
    transfer_id: str | None = Field(default=None, max_length=64)
    provider_tx_id: str | None = Field(default=None, max_length=64)
    player_id: str | None = Field(default=None, max_length=64)
    currency: str | None = Field(default=None, max_length=3)
    expected_minor: int | None = Field(default=None, sa_type=BigInteger)
    actual_minor: int | None = Field(default=None, sa_type=BigInteger)
    difference_minor: int | None = Field(default=None, sa_type=BigInteger)
    fields: str | None = Field(default=None, max_length=4000)
    detail: str = Field(max_length=1000)
    status: str = Field(default="open", max_length=16)
    note: str | None = Field(default=None, max_length=2000)
    changed_by: str | None = Field(default=None, max_length=64)
    times_seen: int = Field(default=1)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)
    last_seen_at: dt.datetime = Field(sa_type=UtcDateTime)
    updated_at: dt.datetime = Field(sa_type=UtcDateTime)
    closed_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)


class DiscrepancyEvent(SQLModel, table=True):
    """Append-only history of a discrepancy: who changed what, when (database triggers refuse edits)."""

    __tablename__ = "discrepancy_events"
    __table_args__ = (Index("ix_discrepancy_events_discrepancy_id", "discrepancy_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    discrepancy_id: int = Field(foreign_key="discrepancies.id")
    at: dt.datetime = Field(sa_type=UtcDateTime)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=16)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    note: str | None = Field(default=None, max_length=2000)


# -- responsible gaming and jobs ---------------------------------------------------------------

LIMIT_KINDS = (
    "transfer_in_day", "transfer_in_week", "transfer_in_month",
    "loss_day", "loss_week", "loss_month",
    "session_length", "self_exclusion",
)


class PlayerLimit(SQLModel, table=True):
    """One change of a responsible-gaming limit; the row in force is the latest effective one.

    ``value`` is minor units of the player's currency for transfer-in and loss
    limits, seconds for ``session_length``; ``until`` is the end of a
    self-exclusion. A NULL value (and until) removes the limit. Lowering takes
    effect at once; raising or removing only after the 24 h cooling-off
    (``effective_from`` in the future).
    """

    __tablename__ = "player_limits"
    __table_args__ = (
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in LIMIT_KINDS)})", name="kind"),
        CheckConstraint("value IS NULL OR value >= 0", name="value_nonnegative"),
        Index("ix_player_limits_player_kind_effective", "player_id", "kind", "effective_from"),
    )

    id: int | None = Field(default=None, primary_key=True)
    player_id: str = Field(foreign_key="players.id", max_length=64)
    kind: str = Field(max_length=24)
    value: int | None = Field(default=None, sa_type=BigInteger)
    until: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    effective_from: dt.datetime = Field(sa_type=UtcDateTime)
    created_at: dt.datetime = Field(sa_type=UtcDateTime)


class JobLease(SQLModel, table=True):
    """A job run's claim on its window: two schedulers never run the same window twice."""

    __tablename__ = "job_leases"

    name: str = Field(primary_key=True, max_length=120)
    holder: str = Field(max_length=120)
    acquired_at: dt.datetime = Field(sa_type=UtcDateTime)
    expires_at: dt.datetime = Field(sa_type=UtcDateTime)
    finished_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)



# -- reconciliation runs -----------------------------------------------------------------------

from sqlalchemy import Text  # noqa: E402 - kept with the reconciliation tables it serves

RUN_OUTCOMES = ("succeeded", "failed")

#: The ledger side of a reconciliation reads one provider's transfers in a time window.
Index("ix_transfers_provider_created_at", table_of(Transfer).c.provider, table_of(Transfer).c.created_at)


class ReconciliationRun(SQLModel, table=True):
    """One reconciliation of a provider's report for one business date (re-runs add rows).

    Records what was compared (file name, size, SHA-256, the profile as JSON and
    its digest), how much each stage saw (``counts``, JSON), how long each took
    (``timings``, JSON, seconds) and how it ended. ``across_cutoff`` (JSON list)
    holds the transfer ids this run matched to a report row of the neighbouring
    business day, so that day's run does not report them again.
    """

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        CheckConstraint("outcome IN ('succeeded', 'failed')", name="outcome"),
        Index("ix_reconciliation_runs_provider_business_date", "provider", "business_date"),
        Index("ix_reconciliation_runs_file_sha256", "file_sha256"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=32)
    business_date: dt.date
    file_name: str = Field(max_length=255)
    file_size_bytes: int = Field(sa_type=BigInteger)
    file_sha256: str = Field(max_length=64)
    profile_digest: str = Field(max_length=64)
    profile: str = Field(sa_type=Text)
    counts: str = Field(sa_type=Text)
    timings: str = Field(sa_type=Text)
    across_cutoff: str | None = Field(default=None, sa_type=Text)
    outcome: str = Field(max_length=16)
    error: str | None = Field(default=None, max_length=1000)
    open_count: int = Field(default=0)
    started_at: dt.datetime = Field(sa_type=UtcDateTime)
    finished_at: dt.datetime = Field(sa_type=UtcDateTime)


__all__ = [
    "ACCOUNT_KINDS",
    "Discrepancy",
    "GameRound",
    "GameSession",
    "JobLease",
    "PlayTransaction",
    "PlayerLimit",
    "ReconciliationRun",
    "Transfer",
    "CACHED_KINDS",
    "Account",
    "Entry",
    "FxRate",
    "Player",
    "Posting",
    "metadata",
    "utc_now",
]


# -- job history -------------------------------------------------------------------------------

JOB_RUN_OUTCOMES = ("running", "succeeded", "failed", "file_missing", "lease_lost")


class JobRunRecord(SQLModel, table=True):
    """One run of a scheduled job: which window, who ran it, when, how it ended (``tw jobs list``).

    Inserted ``running`` when the run starts (under its lease) and finished with
    its outcome; a row left ``running`` with no ``finished_at`` is a run that
    crashed. ``window_key`` is ``PROVIDER:DATE`` for reconcile, the date for
    key-age and empty for the sweeps; ``holder`` is ``host:pid:starttime``.
    """

    __tablename__ = "job_runs"
    __table_args__ = (
        CheckConstraint("outcome IN ('running', 'succeeded', 'failed', 'file_missing', 'lease_lost')",
                        name="outcome"),
        Index("ix_job_runs_job_window_key", "job", "window_key"),
        Index("ix_job_runs_started_at", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=32)
    window_key: str = Field(default="", max_length=120)
    provider: str | None = Field(default=None, max_length=32)
    business_date: dt.date | None = Field(default=None)
    holder: str = Field(max_length=120)
    started_at: dt.datetime = Field(sa_type=UtcDateTime)
    finished_at: dt.datetime | None = Field(default=None, sa_type=UtcDateTime)
    outcome: str = Field(default="running", max_length=16)
    summary: str | None = Field(default=None, max_length=500)
    error: str | None = Field(default=None, max_length=1000)


__all__ += ["JOB_RUN_OUTCOMES", "JobRunRecord"]

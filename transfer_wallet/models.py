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

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Integer, MetaData, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata = MetaData(naming_convention=NAMING_CONVENTION)
metadata = SQLModel.metadata


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


__all__ = [
    "ACCOUNT_KINDS",
    "CACHED_KINDS",
    "Account",
    "Entry",
    "FxRate",
    "Player",
    "Posting",
    "metadata",
    "utc_now",
]

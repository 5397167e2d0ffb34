"""The double-entry journal: accounts and idempotent entries (the check is in ``ledger_check``).

An entry is one business event (a deposit, a lock of session funds, an FX
conversion ...). Its postings sum to zero per currency; checked here before
anything is written, and again by the database on PostgreSQL (per INSERT statement
on postings; an entry a statement leaves unbalanced is checked at commit: migration
0009). Entries and postings are append-only: a correction is a new entry that references the old.

Posting an entry (the statements are in ``ledger_post``, run on the driver's cursor):

- PostgreSQL: one call of ``tw_post_entry`` (migrations 0006, 0007, 0009), one round trip,
  prepared once per connection: replay/conflict by the key, the cached accounts
  locked in id order, the floor checked, entry + postings inserted, balances returned.
- SQLite: the entry (``ON CONFLICT DO NOTHING``: a replay or a conflict is found
  before any balance moves), one conditional ``UPDATE ... WHERE balance + d >= 0
  RETURNING`` per cached account in ascending id order, one ``INSERT`` of the postings.

``post`` runs in the caller's unit of work: a SQLAlchemy connection, or a driver
cursor in ``Database.on_driver`` (a wallet transfer), where the posting is a unit
of work of its own, in autocommit on PostgreSQL (no BEGIN, no COMMIT), under
``BEGIN IMMEDIATE`` on SQLite, without SQLAlchemy's per-call machinery. Both paths run the same tests (worked stories,
property and concurrency tests).

Accounts without a floor (cashier, house, FX) are never updated: their
postings are appended and their balance is derived, so they are not a hot row
that serialises every player.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from transfer_wallet.db import Database
from transfer_wallet.dbapi import run_on
from transfer_wallet.errors import NotFoundError
from transfer_wallet.ledger_post import post_on_cursor
from transfer_wallet.models import (
    CACHED_KINDS,
    CASHIER,
    FX,
    FX_ROUNDING,
    HOUSE,
    Account,
    Entry,
    Posting,
    table_of,
    utc_now,
)

_accounts = table_of(Account)
_entries = table_of(Entry)
_postings = table_of(Posting)

#: Upper bound on legs per entry (a limit on everything).
MAX_LEGS = 16
MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class AccountRef:
    """An account as the ledger needs it: id, code, currency, and whether its balance is cached."""

    id: int
    code: str
    currency: str
    cached: bool


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of an entry before it is written: ``amount_minor`` > 0 credits, < 0 debits."""

    account: AccountRef
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Posted:
    """The result of posting an entry (or replaying it)."""

    entry_id: int
    replayed: bool
    balances_after: dict[int, int] = field(default_factory=dict)


# -- accounts ---------------------------------------------------------------------------------


def player_account_code(player_id: str, kind: str) -> str:
    return f"player:{player_id}:{'main' if kind == 'player_main' else 'locked'}"


def system_account_code(kind: str, currency_code: str, provider: str | None = None) -> str:
    """``cashier:EUR``, ``fx:USD``, ``fx_rounding:JPY``, ``house:acme:EUR``."""
    return f"{kind}:{provider}:{currency_code}" if provider else f"{kind}:{currency_code}"


def _insert_ignore(connection: Connection, table: Any, index_elements: list[str]) -> Any:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table).on_conflict_do_nothing(index_elements=index_elements)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=index_elements)


def _ref(row: Any) -> AccountRef:
    return AccountRef(id=row.id, code=row.code, currency=row.currency, cached=row.cached)


def account_by_code(connection: Connection, code: str) -> AccountRef | None:
    row = connection.execute(
        select(_accounts.c.id, _accounts.c.code, _accounts.c.currency, _accounts.c.cached).where(
            _accounts.c.code == code
        )
    ).first()
    return None if row is None else _ref(row)


def system_account(
    db: Database, connection: Connection, kind: str, currency_code: str, provider: str | None = None
) -> AccountRef:
    """Get or create a cashier/house/FX account (no cached balance, no floor)."""
    if kind not in (CASHIER, HOUSE, FX, FX_ROUNDING):
        raise ValueError(f"not a system account kind: {kind}")
    code = system_account_code(kind, currency_code, provider)
    cached_id = db.account_ids.get(code)
    if cached_id is not None:
        return AccountRef(cached_id, code, currency_code, False)
    connection.execute(
        _insert_ignore(connection, _accounts, ["code"]).values(
            code=code, kind=kind, currency=currency_code, provider=provider, cached=False,
            balance_minor=0, created_at=utc_now(),
        )
    )
    ref = account_by_code(connection, code)
    assert ref is not None, code
    db.remember(connection, "account_ids", code, ref.id)
    return ref


def player_accounts(db: Database, connection: Connection, player_id: str) -> tuple[str, AccountRef, AccountRef]:
    """(currency, main, locked) of a player; ``NotFoundError`` if there is no such player.

    Cached per database: a player's accounts never change once created.
    """
    cached = db.player_accounts.get(player_id)
    if cached is not None:
        return cached
    rows = connection.execute(
        select(_accounts.c.id, _accounts.c.code, _accounts.c.currency, _accounts.c.cached, _accounts.c.kind)
        .where(_accounts.c.player_id == player_id)
        .order_by(_accounts.c.id)
    ).all()
    by_kind = {row.kind: _ref(row) for row in rows}
    if "player_main" not in by_kind or "player_locked" not in by_kind:
        raise NotFoundError(f"unknown player '{player_id}'")
    main = by_kind["player_main"]
    result = (main.currency, main, by_kind["player_locked"])
    db.remember(connection, "player_accounts", player_id, result)
    return result


def cached_player_accounts(db: Database, player_id: str) -> tuple[str, AccountRef, AccountRef]:
    """``player_accounts`` from the cache, else read in a read-only unit of work of its own (then cached)."""
    cached = db.player_accounts.get(player_id)
    if cached is not None:
        return cached
    return db.transaction(lambda connection: player_accounts(db, connection, player_id), readonly=True)


def create_player_accounts(connection: Connection, player_id: str, currency_code: str) -> None:
    """Insert the player's main (available) and locked (in-game) accounts."""
    now = utc_now()
    connection.execute(
        insert(_accounts),
        [
            dict(code=player_account_code(player_id, kind), kind=kind, currency=currency_code,
                 player_id=player_id, provider=None, cached=True, balance_minor=0, created_at=now)
            for kind in sorted(CACHED_KINDS)
        ],
    )


# -- posting ----------------------------------------------------------------------------------


def request_digest(document: Mapping[str, Any], *, compact: bool = False) -> str:
    """SHA-256 of a request's canonical JSON (sorted keys): what a replay under the same key must match.

    The one digest of every idempotent request (entries, session opens, play). Each
    stored hash column keeps the spacing it has always been written with, so that a
    replay of a key stored before still matches: ledger entries are ``compact``
    (``,`` and ``:``), session opens and play transactions use JSON's default
    spacing (``, `` and ``: ``). ``tests/test_session_digest.py`` pins both with literal digests.
    """
    separators = (",", ":") if compact else (", ", ": ")
    encoded = json.dumps(document, sort_keys=True, separators=separators, default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def request_hash(kind: str, legs: Sequence[Leg], request: dict[str, Any] | None) -> str:
    """The digest of an entry's canonical request (kind, legs, caller's request): what a replay must match."""
    canonical = {
        "kind": kind,
        "legs": sorted((leg.account.code, leg.account.currency, leg.amount_minor) for leg in legs),
        "request": request or {},
    }
    return request_digest(canonical, compact=True)


def validate_legs(legs: Sequence[Leg]) -> None:
    """Programmer errors in an entry: too few/many legs, zero legs, unbalanced currency."""
    if not 2 <= len(legs) <= MAX_LEGS:
        raise ValueError(f"an entry has 2..{MAX_LEGS} legs, got {len(legs)}")
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        if not isinstance(leg.amount_minor, int) or isinstance(leg.amount_minor, bool) or leg.amount_minor == 0:
            raise ValueError(f"leg on {leg.account.code} has amount {leg.amount_minor!r}")
        totals[leg.account.currency] += leg.amount_minor
    unbalanced = {ccy: total for ccy, total in totals.items() if total != 0}
    if unbalanced:
        raise ValueError(f"entry does not balance per currency: {unbalanced}")
    if len({leg.account.id for leg in legs}) != len(legs):
        raise ValueError("an entry has at most one leg per account")


def post(
    unit_of_work: Connection | Any,
    *,
    kind: str,
    idempotency_key: str,
    legs: Sequence[Leg],
    request: dict[str, Any] | None = None,
    memo: str | None = None,
    reverses_entry_id: int | None = None,
    report: Sequence[AccountRef] = (),
) -> Posted:
    """Write one balanced entry in the caller's unit of work, or replay the entry already written under this key.

    ``unit_of_work``: a SQLAlchemy ``Connection`` in ``Database.transaction``, or the
    driver cursor (``sqlite3`` or ``psycopg``) of ``Database.on_driver``, where the
    posting is a unit of work of its own without SQLAlchemy's per-call machinery: on
    PostgreSQL the ``tw_post_entry`` call alone, in autocommit (one round trip).

    Same key + same request: returns the first result (``replayed=True``) and
    moves nothing. Same key + another request: ``IdempotencyConflictError``.
    A debit below zero on a cached account: ``InsufficientFundsError``, and
    nothing is written. ``report``: accounts outside the legs whose balance the
    caller wants back in ``balances_after`` (read in the same round trip on
    PostgreSQL), so that it needs no read of its own.
    """
    if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH:
        raise ValueError(f"idempotency key must be 1..{MAX_KEY_LENGTH} characters")
    validate_legs(legs)
    entry = (kind, idempotency_key, request_hash(kind, legs, request), memo, reverses_entry_id, utc_now())
    if isinstance(unit_of_work, Connection):
        return Posted(*run_on(unit_of_work, lambda cursor: post_on_cursor(cursor, entry, legs, report)))
    return Posted(*post_on_cursor(unit_of_work, entry, legs, report))


# The ledger check lives in ``ledger_check`` (re-exported: ``ledger.check_ledger`` keeps working).
from transfer_wallet.ledger_check import Finding, LedgerReport, check_ledger, derived_balance  # noqa: E402

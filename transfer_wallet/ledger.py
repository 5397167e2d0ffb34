"""The double-entry journal: accounts and idempotent entries (the check is in ``ledger_check``).

An entry is one business event (a deposit, a lock of session funds, an FX
conversion ...). Its postings sum to zero per currency; checked here before
anything is written, and again by the database on PostgreSQL. Entries and
postings are append-only: a correction is a new entry that references the old.

Posting an entry costs, inside the caller's transaction:

- PostgreSQL: one call of ``tw_post_entry`` (migrations 0006, 0007), one round trip:
  replay/conflict by the key, the cached accounts locked in id order, the floor
  checked, entry + postings inserted, balances returned. Alone in its unit of
  work it runs in autocommit: no BEGIN, no COMMIT.
- SQLite, on the driver's cursor with statements built once:
  1. ``INSERT entries ... ON CONFLICT (idempotency_key) DO NOTHING RETURNING id``
     (a replay or a conflict is found here, before any balance moves);
  2. one conditional ``UPDATE accounts SET balance = balance + d WHERE id = ? AND
     balance + d >= 0 RETURNING balance`` per *cached* account, in ascending id
     order (no read-then-write gap);
  3. one ``INSERT`` of the postings.

Both paths run the same tests (worked stories, property and concurrency tests).

Accounts without a floor (cashier, house, FX) are never updated: their
postings are appended and their balance is derived, so they are not a hot row
that serialises every player.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NoReturn, Sequence

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from transfer_wallet.db import Database
from transfer_wallet.dbapi import bound_time
from transfer_wallet.errors import IdempotencyConflictError, InsufficientFundsError, NotFoundError
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
from transfer_wallet.money import Money, currency

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


#: SQLite's posting statements, built once and run on the driver connection (qmark parameters).
_SQLITE_INSERT_ENTRY = (
    "INSERT INTO entries (kind, idempotency_key, request_hash, memo, reverses_entry_id, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)
_SQLITE_DEBIT_OR_CREDIT = (
    "UPDATE accounts SET balance_minor = balance_minor + ? WHERE id = ? AND balance_minor + ? >= 0 "
    "RETURNING balance_minor"
)
_SQLITE_INSERT_POSTING = (
    "INSERT INTO postings (entry_id, account_id, currency, amount_minor, balance_after_minor) VALUES (?, ?, ?, ?, ?)"
)
_SQLITE_BALANCE = "SELECT balance_minor FROM accounts WHERE id = ?"
_SQLITE_STORED_ENTRY = "SELECT id, request_hash FROM entries WHERE idempotency_key = ?"
_SQLITE_REPLAYED_BALANCES = (
    "SELECT account_id, balance_after_minor FROM postings WHERE entry_id = ? AND balance_after_minor IS NOT NULL"
)
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
#: PostgreSQL's whole posting: one call of the function that migrations 0006/0007 install.
_POSTGRESQL_POST = (
    "SELECT outcome, posted_entry_id, balance_account_ids, balances_minor FROM tw_post_entry("
    "%(kind)s, %(key)s, %(hash)s, %(memo)s, %(reverses)s, %(created_at)s, %(accounts)s::integer[], "
    "%(currencies)s::varchar[], %(deltas)s::bigint[], %(cached)s::boolean[], %(report)s::integer[])"
)


def post(
    connection: Connection,
    *,
    kind: str,
    idempotency_key: str,
    legs: Sequence[Leg],
    request: dict[str, Any] | None = None,
    memo: str | None = None,
    reverses_entry_id: int | None = None,
    report: Sequence[AccountRef] = (),
) -> Posted:
    """Write one balanced entry, or replay the entry already written under this key.

    Same key + same request: returns the first result (``replayed=True``) and
    moves nothing. Same key + another request: ``IdempotencyConflictError``.
    A debit below zero on a cached account: ``InsufficientFundsError``, and
    nothing is written. ``report``: accounts outside the legs whose balance the
    caller wants back in ``balances_after`` (read in the same round trip on
    PostgreSQL), so that it needs no read of its own.

    On PostgreSQL the posting is one statement (the ``tw_post_entry`` function),
    so a unit of work that posts one entry and nothing else can run it in
    autocommit: one round trip (``Database.transaction(..., single_statement=True)``).
    """
    if not idempotency_key or len(idempotency_key) > MAX_KEY_LENGTH:
        raise ValueError(f"idempotency key must be 1..{MAX_KEY_LENGTH} characters")
    validate_legs(legs)
    digest = request_hash(kind, legs, request)
    entry = (kind, idempotency_key, digest, memo, reverses_entry_id, utc_now())
    if connection.dialect.name == "postgresql":
        return _post_postgresql(connection, entry, legs, report)
    return _post_sqlite(connection, entry, legs, report)


def _post_postgresql(
    connection: Connection, entry: tuple[Any, ...], legs: Sequence[Leg], report: Sequence[AccountRef]
) -> Posted:
    """One call of ``tw_post_entry``: replay, conflict, overdraft or the posted balances."""
    kind, key, digest, memo, reverses, created_at = entry
    params = dict(
        kind=kind, key=key, hash=digest, memo=memo, reverses=reverses, created_at=created_at,
        accounts=_pg_array(leg.account.id for leg in legs), currencies=_pg_array(leg.account.currency for leg in legs),
        deltas=_pg_array(leg.amount_minor for leg in legs), cached=_pg_array(leg.account.cached for leg in legs),
        report=_pg_array(account.id for account in report),
    )
    outcome, entry_id, account_ids, balances = connection.exec_driver_sql(_POSTGRESQL_POST, params).one()
    if outcome == "conflict":
        _raise_conflict(key)
    after = dict(zip(account_ids or (), balances or ()))
    if outcome == "insufficient":
        short = next(leg for leg in legs if leg.account.id in after)
        _raise_insufficient(short, after[short.account.id])
    return Posted(entry_id=entry_id, replayed=outcome == "replayed", balances_after=after)


def _pg_array(values: Iterable[int | str | bool]) -> str:
    """A PostgreSQL array literal of ints, booleans or currency codes (cast in the statement).

    Text is about eight times cheaper for the driver to send than a Python list it
    must inspect and adapt, and these values need no quoting: ids and amounts are
    ints, booleans ``t``/``f``, currencies three capital letters (checked here).
    """
    items = []
    for value in values:
        if isinstance(value, bool):
            items.append("t" if value else "f")
        elif isinstance(value, int):
            items.append(str(value))
        elif isinstance(value, str) and _CURRENCY_CODE.fullmatch(value):
            items.append(value)
        else:
            raise ValueError(f"not an array value of a posting: {value!r}")
    return "{" + ",".join(items) + "}"


def _post_sqlite(
    connection: Connection, entry: tuple[Any, ...], legs: Sequence[Leg], report: Sequence[AccountRef]
) -> Posted:
    """Entry, conditional updates in id order, postings: one statement each, on the driver's cursor.

    The statements are built once (module level); the unit of work already holds
    SQLite's write lock (``BEGIN IMMEDIATE``), so each is a plain cursor call.
    """
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    entry = (*entry[:5], bound_time(cursor, entry[5]))  # SQLite keeps naive UTC text, as SQLAlchemy writes it
    try:
        entry_id = _sqlite_one(cursor, _SQLITE_INSERT_ENTRY, entry)
        if entry_id is None:
            return _replay_sqlite(cursor, entry[1], entry[2])
        balances: dict[int, int] = {}
        for leg in sorted((leg for leg in legs if leg.account.cached), key=lambda leg: leg.account.id):
            after = _sqlite_one(cursor, _SQLITE_DEBIT_OR_CREDIT, (leg.amount_minor, leg.account.id, leg.amount_minor))
            if after is None:
                _raise_insufficient(leg, _sqlite_one(cursor, _SQLITE_BALANCE, (leg.account.id,)))
            balances[leg.account.id] = after
        postings = [(entry_id, leg.account.id, leg.account.currency, leg.amount_minor, balances.get(leg.account.id))
                    for leg in legs]
        _sqlite_run(cursor, _SQLITE_INSERT_POSTING, postings, many=True)
        for account in report:
            if account.id not in balances:
                balances[account.id] = _sqlite_one(cursor, _SQLITE_BALANCE, (account.id,))
        return Posted(entry_id=entry_id, replayed=False, balances_after=balances)
    finally:
        cursor.close()


def _sqlite_run(cursor: Any, statement: str, params: Any, *, many: bool = False) -> Any:
    """Run one statement on the sqlite3 cursor; driver errors become SQLAlchemy's, as everywhere else."""
    import sqlite3

    try:
        return cursor.executemany(statement, params) if many else cursor.execute(statement, params)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, params, exc, sqlite3.Error) from exc


def _sqlite_one(cursor: Any, statement: str, params: Any) -> Any:
    """The first column of the first row (``None`` if there is no row)."""
    row = _sqlite_run(cursor, statement, params).fetchone()
    return None if row is None else row[0]


def _replay_sqlite(cursor: Any, idempotency_key: str, digest: str) -> Posted:
    stored = _sqlite_run(cursor, _SQLITE_STORED_ENTRY, (idempotency_key,)).fetchone()
    assert stored is not None, idempotency_key  # the insert just conflicted on this key
    entry_id, stored_digest = stored
    if stored_digest != digest:
        _raise_conflict(idempotency_key)
    balances = dict(_sqlite_run(cursor, _SQLITE_REPLAYED_BALANCES, (entry_id,)).fetchall())
    return Posted(entry_id=entry_id, replayed=True, balances_after=balances)


def _raise_conflict(idempotency_key: str) -> NoReturn:
    raise IdempotencyConflictError(f"idempotency key '{idempotency_key}' was already used for a different request")


def _raise_insufficient(leg: Leg, available: int) -> NoReturn:
    ccy = currency(leg.account.currency)
    raise InsufficientFundsError(
        f"insufficient funds in {leg.account.code}: {Money(available, ccy).format()} {ccy.code} available, "
        f"{Money(-leg.amount_minor, ccy).format()} {ccy.code} needed"
    )


# The ledger check lives in ``ledger_check`` (re-exported: ``ledger.check_ledger`` keeps working).
from transfer_wallet.ledger_check import Finding, LedgerReport, check_ledger, derived_balance  # noqa: E402

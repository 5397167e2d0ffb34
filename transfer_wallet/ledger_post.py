"""The statements of a ledger posting, run on a DBAPI cursor (``sqlite3`` or ``psycopg``).

``ledger.post`` lands here, in a SQLAlchemy unit of work (on the cursor of its driver
connection) or in ``Database.on_driver`` (a unit of work of its own on a pooled driver
connection); the rules of an entry (legs, balance per currency, request hash) are
checked in ``ledger`` first.

- PostgreSQL: one call of ``tw_post_entry`` (migrations 0006, 0007, 0009), prepared once per
  connection (``prepare=True``): replay/conflict by the key, the cached accounts locked
  in id order, the floor checked, entry + postings inserted, balances returned.
- SQLite, statements built once: the entry (``ON CONFLICT DO NOTHING``: a replay or a
  conflict is found before any balance moves), one conditional ``UPDATE ... WHERE
  balance + d >= 0 RETURNING`` per cached account in ascending id order, the postings.

Driver errors leave as SQLAlchemy's ``DBAPIError`` (``db.as_dbapi_error``), so a
serialization failure, a deadlock or a busy SQLite is retried like any other.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from typing import TYPE_CHECKING, Any, Iterable, NoReturn, Sequence

from transfer_wallet.db import as_dbapi_error
from transfer_wallet.dbapi import bound_time
from transfer_wallet.errors import IdempotencyConflictError, InsufficientFundsError
from transfer_wallet.money import Money, currency

if TYPE_CHECKING:  # pragma: no cover
    from transfer_wallet.ledger import AccountRef, Leg

#: (entry id, replayed, balances after by account id): what ``ledger.Posted`` is made of.
Outcome = tuple[int, bool, dict[int, int]]

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
#: PostgreSQL's whole posting: one call of the function that migrations 0006/0007/0009 install.
POSTGRESQL_POST = (
    "SELECT outcome, posted_entry_id, balance_account_ids, balances_minor FROM tw_post_entry("
    "%s, %s, %s, %s, %s, %s, %s::integer[], %s::varchar[], %s::bigint[], %s::boolean[], %s::integer[])"
)
#: The same call as ``_call_prepared`` prepares it on a connection (numbered parameters, libpq's own).
_PREPARED_NAME = b"tw_post_entry_call"
_PREPARED_POST = (
    "SELECT outcome, posted_entry_id, balance_account_ids, balances_minor FROM tw_post_entry("
    "$1, $2, $3, $4, $5::bigint, $6::timestamptz, $7::integer[], $8::varchar[], $9::bigint[], $10::boolean[], $11::integer[])"
).encode()
_PREPARED_STATEMENT_MISSING = "26000"  # invalid_sql_statement_name: the server no longer has it
_PREPARED_STATEMENT_EXISTS = "42P05"  # duplicate_prepared_statement


def post_on_cursor(cursor: Any, entry: tuple[Any, ...], legs: Sequence["Leg"], report: Sequence["AccountRef"]) -> Outcome:
    """Write the checked ``entry`` (kind, key, hash, memo, reverses, created_at) and its ``legs``, or replay it."""
    if isinstance(cursor, sqlite3.Cursor):
        return _post_sqlite(cursor, entry, legs, report)
    return _post_postgresql(cursor, entry, legs, report)


def _post_postgresql(cursor: Any, entry: tuple[Any, ...], legs: Sequence["Leg"], report: Sequence["AccountRef"]) -> Outcome:
    """One call of ``tw_post_entry``: replay, conflict, overdraft or the posted balances."""
    params = (
        *entry,
        pg_array(leg.account.id for leg in legs), pg_array(leg.account.currency for leg in legs),
        pg_array(leg.amount_minor for leg in legs), pg_array(leg.account.cached for leg in legs),
        pg_array(account.id for account in report),
    )
    if _lean_call_allowed(cursor.connection, params):
        outcome, entry_id, account_ids, balances = _call_prepared(cursor.connection, params)
    else:
        outcome, entry_id, account_ids, balances = _run(cursor, POSTGRESQL_POST, params, prepare=True).fetchone()
    if outcome == "conflict":
        raise_conflict(entry[1])
    after = dict(zip(account_ids or (), balances or ()))
    if outcome == "insufficient":
        short = next(leg for leg in legs if leg.account.id in after)
        raise_insufficient(short, after[short.account.id])
    assert entry_id is not None, outcome  # posted or replayed
    return entry_id, outcome == "replayed", after


def _lean_call_allowed(connection: Any, params: tuple[Any, ...]) -> bool:
    """Whether ``_call_prepared`` may run the call: in autocommit only (a driver cursor of
    ``Database.on_driver``: in a transaction psycopg opens it, and a statement the server lost
    could not be prepared again after the failed call), and only with the parameter types it
    writes as text itself (no NUL, which libpq would cut the text at)."""
    if not connection.autocommit:
        return False
    return all(value is None or type(value) in (int, dt.datetime) or (type(value) is str and "\x00" not in value)
               for value in params)


def _call_prepared(connection: Any, params: tuple[Any, ...]) -> tuple[str, int | None, list[int], list[int]]:
    """``tw_post_entry`` through libpq as psycopg runs a prepared statement, without the cursor.

    The call's parameters are text the server parses (ints, the arrays of ``pg_array``,
    ISO time) and its row is four text values: psycopg's adapters, cursor and row
    making were about a third of a transfer's client time. Waiting goes through the
    connection's ``wait``, so a signal cancels the statement as with a cursor. The
    statement is prepared once per connection, and again if the server lost it (psycopg's
    rollback of a transaction in which it prepared statements of its own deallocates all).
    """
    from psycopg import errors, generators, pq

    encoding = connection.info.encoding
    values = [None if value is None else (value.isoformat() if type(value) is dt.datetime else str(value)).encode(encoding)
              for value in params]
    try:
        with connection.lock:
            for attempt in (1, 2):
                if getattr(connection, "_tw_post_prepared", None) is not connection.pgconn:
                    _prepare(connection, generators)
                connection.pgconn.send_query_prepared(_PREPARED_NAME, values)
                # execute = flush what libpq still holds (a large call), then read: as psycopg's cursor does
                result = connection.wait(generators.execute(connection.pgconn))[-1]
                if result.status == pq.ExecStatus.TUPLES_OK:
                    break
                error = errors.error_from_result(result, encoding=encoding)
                if attempt == 2 or error.sqlstate != _PREPARED_STATEMENT_MISSING:
                    raise error
                connection._tw_post_prepared = None
    except Exception as exc:
        _raise_mapped(exc, POSTGRESQL_POST, params)
    outcome, entry_id, account_ids, balances = (result.get_value(0, column) for column in range(4))
    return (outcome.decode(), None if entry_id is None else int(entry_id), _int_array(account_ids), _int_array(balances))


def _prepare(connection: Any, generators: Any) -> None:
    from psycopg import errors, pq

    connection.pgconn.send_prepare(_PREPARED_NAME, _PREPARED_POST)
    result = connection.wait(generators.execute(connection.pgconn))[-1]
    if result.status != pq.ExecStatus.COMMAND_OK:
        error = errors.error_from_result(result, encoding=connection.info.encoding)
        # Already there: an earlier prepare finished on the server but was interrupted (a signal) before
        # it was noted here. The name is this module's alone, so it is this statement.
        if error.sqlstate != _PREPARED_STATEMENT_EXISTS:
            raise error
    connection._tw_post_prepared = connection.pgconn


def _int_array(text: bytes | None) -> list[int]:
    """A PostgreSQL array of integers as text (``{2,5,1}``, ``{}`` or NULL) as a list."""
    return [int(item) for item in text[1:-1].split(b",")] if text and text != b"{}" else []


def pg_array(values: Iterable[int | str | bool]) -> str:
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


def _post_sqlite(cursor: Any, entry: tuple[Any, ...], legs: Sequence["Leg"], report: Sequence["AccountRef"]) -> Outcome:
    """Entry, conditional updates in id order, postings: one statement each.

    The unit of work already holds SQLite's write lock (``BEGIN IMMEDIATE``).
    """
    entry = (*entry[:5], bound_time(cursor, entry[5]))  # SQLite keeps naive UTC text, as SQLAlchemy writes it
    entry_id = _one(cursor, _SQLITE_INSERT_ENTRY, entry)
    if entry_id is None:
        return _replay_sqlite(cursor, entry[1], entry[2])
    balances: dict[int, int] = {}
    for leg in sorted((leg for leg in legs if leg.account.cached), key=lambda leg: leg.account.id):
        after = _one(cursor, _SQLITE_DEBIT_OR_CREDIT, (leg.amount_minor, leg.account.id, leg.amount_minor))
        if after is None:
            raise_insufficient(leg, _one(cursor, _SQLITE_BALANCE, (leg.account.id,)))
        balances[leg.account.id] = after
    postings = [(entry_id, leg.account.id, leg.account.currency, leg.amount_minor, balances.get(leg.account.id))
                for leg in legs]
    _run(cursor, _SQLITE_INSERT_POSTING, postings, many=True)
    for account in report:
        if account.id not in balances:
            balances[account.id] = _one(cursor, _SQLITE_BALANCE, (account.id,))
    return entry_id, False, balances


def _replay_sqlite(cursor: Any, idempotency_key: str, digest: str) -> Outcome:
    stored = _run(cursor, _SQLITE_STORED_ENTRY, (idempotency_key,)).fetchone()
    assert stored is not None, idempotency_key  # the insert just conflicted on this key
    entry_id, stored_digest = stored
    if stored_digest != digest:
        raise_conflict(idempotency_key)
    return entry_id, True, dict(_run(cursor, _SQLITE_REPLAYED_BALANCES, (entry_id,)).fetchall())


def _run(cursor: Any, statement: str, params: Any, *, many: bool = False, prepare: bool = False) -> Any:
    """Run one statement on the driver's cursor; its errors become SQLAlchemy's, as everywhere else."""
    try:
        if many:
            return cursor.executemany(statement, params)
        if prepare:  # psycopg: parsed and planned once per connection, then only bound and executed
            return cursor.execute(statement, params, prepare=True)
        return cursor.execute(statement, params)
    except Exception as exc:
        _raise_mapped(exc, statement, params)


def _raise_mapped(exc: Exception, statement: str, params: Any) -> NoReturn:
    """A driver's error as SQLAlchemy's (``DBAPIError``), as everywhere else; any other exception as it is."""
    wrapped = as_dbapi_error(exc, statement, params)
    if wrapped is None:
        raise exc
    raise wrapped from exc


def _one(cursor: Any, statement: str, params: Any) -> Any:
    """The first column of the first row (``None`` if there is no row)."""
    row = _run(cursor, statement, params).fetchone()
    return None if row is None else row[0]


def raise_conflict(idempotency_key: str) -> NoReturn:
    raise IdempotencyConflictError(f"idempotency key '{idempotency_key}' was already used for a different request")


def raise_insufficient(leg: "Leg", available: int) -> NoReturn:
    ccy = currency(leg.account.currency)
    raise InsufficientFundsError(
        f"insufficient funds in {leg.account.code}: {Money(available, ccy).format()} {ccy.code} available, "
        f"{Money(-leg.amount_minor, ccy).format()} {ccy.code} needed"
    )

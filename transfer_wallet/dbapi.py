"""Plain DBAPI reads (``sqlite3`` / ``psycopg``), without SQLAlchemy.

A simple read command (``tw wallet balance``) must start fast, and importing
SQLAlchemy alone costs about 0.2 s. Queries that such commands need are SQL text
constants run on a DBAPI cursor (:func:`execute`), by both the library (on the
driver connection under its SQLAlchemy connection, :func:`cursor_of`) and the
light path here (:class:`LightReader`): one implementation of each query.

The light path takes only the URLs it reads exactly as SQLAlchemy does
(:func:`light_target`): ``sqlite:///FILE`` without a query, percent sign or
in-memory name, and ``postgres[ql][+psycopg|+psycopg2]://...``. Any other URL
goes through the full database layer, unchanged.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import sys
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from transfer_wallet.db import Database

T = TypeVar("T")

#: The same busy wait as the full layer (``transfer_wallet.db.SQLITE_BUSY_TIMEOUT_MS``).
SQLITE_BUSY_TIMEOUT_S = 15.0

_SQLITE_URL = re.compile(r"sqlite:///(?P<path>[^?#%]+)")
_POSTGRES_URL = re.compile(r"postgres(?:ql)?(?:\+psycopg2?)?://(?P<rest>.+)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a light read connects: ``sqlite`` and a file name, or ``postgresql`` and a libpq URI."""

    backend: str
    address: str


def light_target(url: str) -> Target | None:
    """The database ``url`` names, if the light path reads it exactly as SQLAlchemy would; else None."""
    sqlite = _SQLITE_URL.fullmatch(url)
    if sqlite is not None:
        path = sqlite["path"]
        if path == ":memory:" or path.startswith("file:"):
            return None
        return Target("sqlite", path)
    postgres = _POSTGRES_URL.fullmatch(url)
    if postgres is not None:
        return Target("postgresql", f"postgresql://{postgres['rest']}")
    return None


def execute(cursor: Any, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run ``sql`` (``?`` placeholders) on a DBAPI cursor: as is on sqlite3, with ``%s`` on psycopg."""
    cursor.execute(_driver_sql(cursor, sql), tuple(params))
    return cursor


def batches(cursor: Any, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """The rows of ``sql`` (``?`` placeholders, as :func:`execute`), ``size`` row tuples at a time, in order.

    For results too big to hold twice: neither we nor, on psycopg, the driver hold every
    row at once. On psycopg with libpq 17+ the server sends the rows in chunks of ``size``
    (``cursor.stream``; ``fetchall`` would first hold the whole result in libpq, 200 MB for
    a million ledger rows); elsewhere ``execute`` then ``fetchmany``. Exhaust the iterator
    before the next statement on ``cursor``.
    """
    assert size >= 1, size
    if _streams_in_chunks(cursor):
        rows = cursor.stream(_driver_sql(cursor, sql), tuple(params), size=size)
        while batch := list(islice(rows, size)):
            yield batch
        return
    execute(cursor, sql, params)
    while batch := cursor.fetchmany(size):
        yield batch


def _driver_sql(cursor: Any, sql: str) -> str:
    """``sql`` with ``?`` placeholders as the driver of ``cursor`` takes it."""
    if isinstance(cursor, sqlite3.Cursor):
        return sql
    assert "%" not in sql, sql
    return sql.replace("?", "%s")


def _streams_in_chunks(cursor: Any) -> bool:
    """Whether ``cursor`` is a psycopg 3 cursor whose libpq can stream a result in chunks (17+)."""
    if isinstance(cursor, sqlite3.Cursor) or not hasattr(cursor, "stream"):
        return False
    import psycopg

    return bool(psycopg.capabilities.has_stream_chunked())


def placeholders(count: int) -> str:
    """``?, ?, ?`` for ``count`` parameters (an ``IN (...)`` list); ``count`` must be at least 1."""
    assert count >= 1, count
    return ", ".join("?" * count)


#: How a ``UtcDateTime`` is stored on SQLite: naive UTC text as SQLAlchemy writes it, microseconds always
#: written (``2026-12-01 05:00:00.000000``), so that text order is time order.
SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def bound_time(cursor: Any, moment: dt.datetime) -> Any:
    """``moment`` (aware) as the parameter to compare with, or write into, a ``UtcDateTime`` column on ``cursor``.

    SQLite: that exact ``SQLITE_TIME_FORMAT`` text (the year padded to four digits), so that
    ``>=`` and ``<`` compare as the SQLAlchemy query would. PostgreSQL (``timestamptz``) takes
    the aware datetime.
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime given; use an aware UTC datetime")
    if not isinstance(cursor, sqlite3.Cursor):
        return moment
    utc = moment.astimezone(dt.timezone.utc)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond)


def cursor_of(connection: Any) -> Any:
    """A cursor of the DBAPI connection under a SQLAlchemy ``Connection`` (in its transaction)."""
    return connection.connection.driver_connection.cursor()


def run_on(connection: Any, work: Callable[[Any], T]) -> T:
    """``work(cursor)`` on a cursor of the SQLAlchemy ``connection``; the cursor is closed after."""
    with closing(cursor_of(connection)) as cursor:
        return work(cursor)


class Reader(Protocol):
    """Runs ``work(cursor)`` in one read-only transaction and returns what it returns."""

    def run(self, work: Callable[[Any], T]) -> T: ...


@dataclass(frozen=True, slots=True)
class FullReader:
    """``Reader`` over the full database layer: a read-only unit of work, on the driver's cursor."""

    db: "Database"

    def run(self, work: Callable[[Any], T]) -> T:
        """``work(cursor)`` in ``db.transaction(..., readonly=True)`` (transient errors retried)."""
        return self.db.transaction(lambda connection: run_on(connection, work), readonly=True)


class LightReader:
    """One read-only transaction on a plain driver connection to ``target``."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def run(self, work: Callable[[Any], T]) -> T:
        """``work(cursor)`` in one read transaction; the connection is closed after."""
        if self.target.backend == "sqlite":
            return self._run_sqlite(work)
        import psycopg

        with closing(psycopg.connect(self.target.address)) as connection:
            with closing(connection.cursor()) as cursor:
                return work(cursor)

    def _run_sqlite(self, work: Callable[[Any], T]) -> T:
        connection = sqlite3.connect(self.target.address, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            connection.execute("BEGIN")  # one snapshot for every statement of the read
            with closing(connection.cursor()) as cursor:
                return work(cursor)
        finally:
            connection.close()


def error_line(error: BaseException, *, schema_kind: bool) -> str:
    """One operator line for a database driver's ``error`` (its first line, never SQL or parameters).

    ``schema_kind``: an operational or programming error, where a missing table means
    the schema was never created.
    """
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    if schema_kind and ("no such table" in text or "does not exist" in text and "relation" in text):
        return f"database schema missing ({text}); run `tw db upgrade` first"
    return f"database error: {text}"


def driver_error_line(exc: BaseException) -> str | None:
    """The line for an error raised by sqlite3 or psycopg themselves (the light path), else None."""
    drivers: list[Any] = [sqlite3]
    if "psycopg" in sys.modules:
        drivers.append(sys.modules["psycopg"])
    for driver in drivers:
        if isinstance(exc, driver.Error):
            return error_line(exc, schema_kind=isinstance(exc, (driver.OperationalError, driver.ProgrammingError)))
    return None

"""Engines, the unit of work and bounded retry of transient database errors.

- SQLite (the embedded default): WAL, ``busy_timeout``, foreign keys on,
  ``synchronous=FULL`` (money wants durability) and ``BEGIN IMMEDIATE`` for every
  write transaction, so a writer takes the write lock up front instead of failing
  with ``SQLITE_BUSY`` when a deferred transaction upgrades.
- PostgreSQL (production): psycopg 3, a connection pool, READ COMMITTED.
  Invariants are checked on rows locked in the transaction (conditional
  ``UPDATE ... WHERE balance + delta >= 0``, taken in account-id order).

The unit of work is the only place that commits. ``Database.transaction(work)``
runs ``work(connection)`` in one and retries serialization failures, deadlocks
and busy errors a bounded number of times (tenacity), then raises
``ConcurrencyError``.
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import threading
import time
import weakref
from collections import OrderedDict
from contextlib import closing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, NoReturn, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from transfer_wallet.config import database_url
from transfer_wallet.errors import ConcurrencyError, ConfigError

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

#: Attempts for one unit of work before contention surfaces as ConcurrencyError.
TRANSACTION_ATTEMPTS = 8
#: SQLite waits this long for the write lock before reporting busy.
SQLITE_BUSY_TIMEOUT_MS = 15_000
#: PostgreSQL SQLSTATEs that mean "run the whole transaction again".
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
#: Key in ``Connection.info`` of the cache entries a unit of work may publish once it commits.
PENDING_CACHE = "tw_pending_cache"
#: SQLite primary result codes SQLITE_BUSY and SQLITE_LOCKED.
_RETRYABLE_SQLITE_CODES = frozenset({5, 6})
#: Entries each account cache keeps (least recently used go first): a scheduler runs for months.
ACCOUNT_CACHE_MAX_ENTRIES = 100_000
#: libpq's PQTRANS_IDLE (``psycopg.pq.TransactionStatus.IDLE``): no statement running, no transaction open.
_PG_IDLE = 0
#: The engines of live ``Database`` objects, whose pools a forked child must not share (weak: no leak).
_FORK_ENGINES: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def normalise_url(url: str) -> str:
    """Map ``postgres://`` and ``postgresql://`` onto the psycopg 3 driver; check the scheme."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise ConfigError(f"invalid database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgresql+psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError(f"unsupported database '{backend}': use sqlite:/// or postgresql://")
    return parsed.render_as_string(hide_password=False)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite: we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        readonly = connection.get_execution_options().get("tw_readonly", False)
        # On the driver itself (a sixth of a small write's cost through exec_driver_sql), its
        # errors wrapped as SQLAlchemy wraps them, so "database is locked" is still retried.
        _sqlite_statement(connection.connection.driver_connection, "BEGIN" if readonly else "BEGIN IMMEDIATE")


def _sqlite_statement(driver_connection: Any, statement: str) -> None:
    """``statement`` on a sqlite3 connection; its errors raised as SQLAlchemy's (``DBAPIError``)."""
    try:
        driver_connection.execute(statement)
    except sqlite3.Error as exc:
        mapped = as_dbapi_error(exc, statement)
        assert mapped is not None  # a sqlite3.Error always maps
        raise mapped from exc


def create_engine_for(url: str | None = None, *, pool_size: int = 5) -> Engine:
    """An engine for ``url`` (else ``TW_DATABASE_URL``, else the SQLite default)."""
    resolved = normalise_url(database_url(url))
    if resolved.startswith("sqlite"):
        engine = create_engine(resolved, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    return create_engine(
        resolved,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        # No pre-ping: it costs a round trip per checkout. A connection found dead
        # fails that one unit of work (before commit, so nothing is half-written)
        # and SQLAlchemy then discards the pool's stale connections.
        pool_recycle=1800,
        isolation_level="READ COMMITTED",
    )


def is_transient(exc: BaseException) -> bool:
    """True for errors that a fresh attempt of the whole transaction can cure."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in _RETRYABLE_SQLITE_CODES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(orig)


def as_dbapi_error(exc: BaseException, statement: str | None = None, params: Any = None) -> StatementError | None:
    """A ``sqlite3`` or ``psycopg`` error as SQLAlchemy would raise it (``DBAPIError``), else None.

    For statements run on the driver itself: their errors must look like every other
    database error, so that ``is_transient`` (the retry) and callers see the same types.
    """
    if isinstance(exc, sqlite3.Error):
        return DBAPIError.instance(statement, params, exc, sqlite3.Error)
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        return DBAPIError.instance(statement, params, exc, psycopg.Error)
    return None


class LruCache(Mapping[K, V], Generic[K, V]):
    """A thread-safe mapping of at most ``max_entries``; the least recently used entry goes first.

    Threads of one process share a ``Database`` (the benchmarks, the scheduler's
    jobs), so every read and write takes the lock: a lookup moves its entry to the
    recent end, which is a write to the order.
    """

    def __init__(self, max_entries: int = ACCOUNT_CACHE_MAX_ENTRIES) -> None:
        assert max_entries > 0, max_entries
        self.max_entries = max_entries
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __getitem__(self, key: K) -> V:
        with self._lock:
            value = self._entries[key]
            self._entries.move_to_end(key)
            return value

    def get(self, key: K, default: Any = None) -> Any:
        """The value of ``key`` (now the most recently used), else ``default``."""
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key]

    def update(self, entries: Mapping[K, V]) -> None:
        """Add or replace ``entries``, then drop the least recently used beyond the bound."""
        with self._lock:
            for key, value in entries.items():
                self._entries[key] = value
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            return iter(list(self._entries))

    def __repr__(self) -> str:
        return f"LruCache({len(self)}/{self.max_entries})"


class UnitOfWork:
    """One database transaction; rolls back unless :meth:`commit` was called.

    >>> with UnitOfWork(engine) as uow:          # doctest: +SKIP
    ...     uow.connection.execute(...)
    ...     uow.commit()
    """

    def __init__(self, engine: Engine, *, readonly: bool = False, single_statement: bool = False) -> None:
        self._engine = engine
        self._readonly = readonly
        self._autocommit = single_statement and engine.dialect.name == "postgresql"
        self._committed = False

    def __enter__(self) -> "UnitOfWork":
        connection = self._engine.connect()
        if self._readonly:
            connection = connection.execution_options(tw_readonly=True)
        if self._autocommit:
            # One writing statement is atomic by itself: no BEGIN or COMMIT round trips.
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        self.connection: Connection = connection
        self._transaction = connection.begin()
        return self

    def commit(self) -> None:
        self._transaction.commit()
        self._committed = True

    def __exit__(self, *exc_info: object) -> None:
        try:
            if not self._committed and self._transaction.is_active:
                self._transaction.rollback()
        finally:
            self.connection.close()


@dataclass
class Database:
    """The engine plus per-database caches (account ids never change once created).

    The caches are filled only with rows of committed transactions (see ``remember``):
    an id read or created in a transaction that rolls back may never exist, and SQLite
    would hand it to another account. Each is bounded (``ACCOUNT_CACHE_MAX_ENTRIES``,
    least recently used dropped first), so a long-running scheduler does not grow
    with every player it ever saw; a dropped entry is simply read again.
    """

    engine: Engine
    account_ids: LruCache[str, int] = field(default_factory=LruCache, repr=False)
    player_accounts: LruCache[str, Any] = field(default_factory=LruCache, repr=False)

    def __post_init__(self) -> None:
        _FORK_ENGINES.add(self.engine)  # a child process gets a pool of its own (_fresh_pools_in_child)

    def remember(self, connection: Connection, cache_name: str, key: str, value: Any) -> None:
        """Cache ``key -> value`` once the unit of work running on ``connection`` commits."""
        pending = connection.info.get(PENDING_CACHE)
        if pending is not None:  # outside Database.transaction nothing is cached
            pending.setdefault(cache_name, {})[key] = value

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def transaction(
        self,
        work: Callable[[Connection], T],
        *,
        readonly: bool = False,
        single_statement: bool = False,
        attempts: int = TRANSACTION_ATTEMPTS,
    ) -> T:
        """Run ``work(connection)`` in one unit of work and commit; retry transient errors.

        ``work`` must not call a provider or anything else outside the database:
        it may run more than once. ``single_statement``: the caller promises that
        ``work`` writes with one statement at most (reads before it are allowed,
        as is raising after it, when nothing was written), e.g. one
        ``ledger.post``; PostgreSQL then runs it in autocommit, without BEGIN
        and COMMIT (one round trip instead of three). SQLite ignores it.
        """

        def attempt() -> T:
            with UnitOfWork(self.engine, readonly=readonly, single_statement=single_statement) as uow:
                pending = uow.connection.info[PENDING_CACHE] = {}
                try:
                    result = work(uow.connection)
                    uow.commit()
                finally:
                    uow.connection.info.pop(PENDING_CACHE, None)
                # Only now are the rows the work read or created certain to exist.
                for cache_name, entries in pending.items():
                    getattr(self, cache_name).update(entries)
                return result

        return _with_retries(attempt, attempts)

    def on_driver(self, work: Callable[[Any], T], *, attempts: int = TRANSACTION_ATTEMPTS,
                  again_if_disconnected: bool = True) -> T:
        """Run ``work(cursor)`` as one committed unit of work on a pooled driver connection; retried as ``transaction``.

        The hot path of one posting (``Wallet.transfer``: ``ledger.post`` on the cursor), without
        SQLAlchemy's ``Connection`` (checkout, execution options, result set-up: most of a
        transfer's client time). ``work`` may run more than once; it runs on the cursor it
        gets (``sqlite3`` or ``psycopg``) and raises driver errors as ``DBAPIError``
        (``as_dbapi_error``). PostgreSQL runs it in autocommit, so there ``work`` must write
        with one statement at most (as ``transaction``'s ``single_statement``): one round
        trip, and a failed statement leaves nothing open. SQLite takes the write lock
        (``BEGIN IMMEDIATE``) and commits; the pool's reset rolls back what an error left
        open. The connection goes back to the pool as it came (not in autocommit, no
        transaction open); one broken or left mid-statement (a signal's exception) is invalidated.
        A lost connection (server restart, failover) invalidates the pool, as SQLAlchemy does, and
        the work runs once more: the idempotency key makes a posting that did commit a replay.
        With ``again_if_disconnected=False`` (work that is not safe to repeat once committed) the
        pool is still invalidated but the error is raised: the outcome is unknown to the caller.
        """
        unit = _autocommit_unit if self.dialect == "postgresql" else _sqlite_unit
        if not again_if_disconnected:
            return _with_retries(lambda: unit(self.engine, work), attempts)
        return _with_retries(lambda: _again_if_disconnected(lambda: unit(self.engine, work)), attempts)

    def dispose(self) -> None:
        self.engine.dispose()


def _with_retries(attempt: Callable[[], T], attempts: int) -> T:
    """``attempt()``, again on a transient error (bounded, with backoff); then ``ConcurrencyError``."""
    try:
        try:  # the first attempt directly: tenacity's bookkeeping costs more than a SQLite transfer's SQL
            return attempt()
        except DBAPIError as exc:
            if attempts <= 1 or not is_transient(exc):
                raise
        time.sleep(random.uniform(0, 0.005))  # as tenacity's first wait would
        retrying = Retrying(  # the remaining attempts, the backoff going on from there
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(attempts - 1),
            wait=wait_random_exponential(multiplier=0.01, max=0.5),
            reraise=True,
        )
        return retrying(attempt)
    except DBAPIError as exc:
        if is_transient(exc):
            raise ConcurrencyError(f"database contention persisted after {attempts} attempts; try again") from exc
        raise


def _again_if_disconnected(attempt: Callable[[], T]) -> T:
    """``attempt()``, once more if it failed on a lost connection (the pool is fresh by then)."""
    try:
        return attempt()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return attempt()


def _autocommit_unit(engine: Engine, work: Callable[[Any], T]) -> T:
    """PostgreSQL: ``work(cursor)`` in autocommit on a pooled psycopg connection, restored after."""
    pooled = engine.raw_connection()
    driver = pooled.driver_connection
    try:
        driver.autocommit = True  # type: ignore[union-attr]
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            return work(cursor)
    except Exception as exc:
        _raise_mapped(engine, pooled, exc)
    finally:
        try:
            if not pooled.is_valid:
                pass  # a lost connection, already invalidated with its pool
            elif driver.broken or driver.closed or driver.pgconn.transaction_status != _PG_IDLE:  # type: ignore[union-attr]
                pooled.invalidate()  # broken, or interrupted mid-statement (a signal): unusable
            else:
                driver.autocommit = False  # type: ignore[union-attr]  # as SQLAlchemy's units of work expect it
        finally:
            pooled.close()


def _sqlite_unit(engine: Engine, work: Callable[[Any], T]) -> T:
    """SQLite: ``BEGIN IMMEDIATE``, ``work(cursor)``, ``COMMIT`` on a pooled sqlite3 connection.

    On an error the pool's reset on return rolls back whatever the work left open.
    """
    pooled = engine.raw_connection()
    try:
        driver = pooled.driver_connection
        _sqlite_statement(driver, "BEGIN IMMEDIATE")
        with closing(driver.cursor()) as cursor:  # type: ignore[union-attr]
            result = work(cursor)
        _sqlite_statement(driver, "COMMIT")
        return result
    except Exception as exc:
        _raise_mapped(engine, pooled, exc)
    finally:
        pooled.close()


def _raise_mapped(engine: Engine, pooled: Any, exc: Exception) -> NoReturn:
    """Raise ``exc`` as ``transaction`` would: a driver error as ``DBAPIError``, anything else unchanged.

    A lost connection invalidates its pool's generation as SQLAlchemy's ``Connection`` does
    (``Pool._invalidate``, which has no public equivalent) and is marked ``connection_invalidated``.
    """
    mapped = exc if isinstance(exc, DBAPIError) else as_dbapi_error(exc)
    if not isinstance(mapped, DBAPIError):
        raise exc
    orig: Any = mapped.orig
    if engine.dialect.is_disconnect(orig, pooled.driver_connection, None):
        engine.pool._invalidate(pooled, orig)
        mapped.connection_invalidated = True
    if mapped is exc:
        raise exc
    raise mapped from exc


def _fresh_pools_in_child() -> None:
    """After ``fork()``: each engine gets a new pool; the parent's connections are left to the parent, unclosed."""
    for engine in list(_FORK_ENGINES):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_fresh_pools_in_child)


def open_database(url: str | None = None, *, pool_size: int = 5) -> Database:
    """Open the ledger database at ``url`` (else ``TW_DATABASE_URL``, else SQLite)."""
    return Database(create_engine_for(url, pool_size=pool_size))

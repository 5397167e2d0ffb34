"""The simulator's own SQLite file: game wallets, transfers (its idempotency store), rounds and seen request ids.

Plain ``sqlite3``: one connection guarded by a lock, WAL, each write one
``BEGIN IMMEDIATE`` transaction. A CHECK keeps every game balance >= 0. Times are
stored as fixed-width ISO UTC text so they sort as they compare.

``seen_requests`` keeps every accepted signed request id until its replay window
ends (wall-clock seconds), so a request captured before a restart is still refused
after it; expired ids are pruned as new ones arrive.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from transfer_wallet.errors import ConfigError
from transfer_wallet.money import Currency, Money
from transfer_wallet.providers.protocol import Direction, Round, TransferState, transfer_fingerprint
from transfer_wallet.providers.wire import format_time, parse_time

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS wallets (
    player_id TEXT PRIMARY KEY,
    balance_minor INTEGER NOT NULL CHECK (balance_minor >= 0),
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transfers (
    transfer_id TEXT PRIMARY KEY,
    provider_tx_id TEXT NOT NULL UNIQUE,
    player_id TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('IN', 'OUT')),
    fingerprint TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor >= 0),
    state TEXT NOT NULL CHECK (state IN ('APPLIED', 'FAILED')),
    error_code TEXT,
    balance_after_minor INTEGER,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transfers_by_created ON transfers (created_at);
CREATE TABLE IF NOT EXISTS rounds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    round_id TEXT NOT NULL UNIQUE,
    player_id TEXT NOT NULL,
    game_id TEXT NOT NULL,
    bet_minor INTEGER NOT NULL CHECK (bet_minor >= 0),
    win_minor INTEGER NOT NULL CHECK (win_minor >= 0),
    refund_minor INTEGER NOT NULL CHECK (refund_minor >= 0),
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rounds_by_player ON rounds (player_id, ended_at);
CREATE TABLE IF NOT EXISTS seen_requests (
    request_id TEXT PRIMARY KEY,
    expires_at_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_requests_by_expiry ON seen_requests (expires_at_s);
"""

#: Prune expired request ids at most this often (seconds), not on every request.
PRUNE_EVERY_S = 1.0


class StoreMismatchError(ConfigError):
    """The file belongs to another provider or currency: point ``--store`` at another file."""


@dataclass(frozen=True, slots=True)
class StoredTransfer:
    """One row of ``transfers``."""

    transfer_id: str
    provider_tx_id: str
    player_id: str
    direction: Direction
    fingerprint: str
    amount: Money
    state: TransferState
    error_code: str | None
    balance_after: Money | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class TransferOutcome:
    """What ``apply_transfer`` did: ``kind`` is applied, replayed, failed, replayed_failed or conflict."""

    kind: str
    transfer: StoredTransfer | None


class SimulatorStore:
    """Game wallets of one provider in one SQLite file."""

    def __init__(self, path: str | Path, provider: str, unit: Currency) -> None:
        self.path = str(path)
        self.provider = provider
        self.unit = unit
        self._lock = threading.Lock()
        self._next_prune_s = 0.0
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        with self._transaction() as db:
            for key, value in (("provider", provider), ("currency", unit.code)):
                db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
                found = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
                if found != value:
                    raise StoreMismatchError(f"{self.path} holds {key} {found!r}, not {value!r}")

    def remember_request(self, request_id: str, now_s: float, expires_at_s: float) -> bool:
        """Record a signed request id until ``expires_at_s``; False if it is already recorded and unexpired.

        Expired ids are pruned first (at most every ``PRUNE_EVERY_S``), and an expired
        row with the same id is replaced: only its window counted.
        """
        with self._transaction() as db:
            if now_s >= self._next_prune_s:
                db.execute("DELETE FROM seen_requests WHERE expires_at_s <= ?", (now_s,))
                self._next_prune_s = now_s + PRUNE_EVERY_S
            inserted = db.execute(
                "INSERT INTO seen_requests (request_id, expires_at_s) VALUES (?, ?) "
                "ON CONFLICT (request_id) DO UPDATE SET expires_at_s = excluded.expires_at_s "
                "WHERE seen_requests.expires_at_s <= ?",
                (request_id, expires_at_s, now_s),
            ).rowcount
        return inserted == 1

    def seen_request_count(self) -> int:
        """How many request ids are kept (expired ones until the next prune)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM seen_requests").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _transaction(self) -> _Tx:
        return _Tx(self)

    def apply_transfer(
        self, direction: Direction, transfer_id: str, player_id: str, amount_minor: int | None, now: dt.datetime
    ) -> TransferOutcome:
        """Apply a transfer exactly once; replays and conflicts are decided by the stored fingerprint."""
        fingerprint = transfer_fingerprint(direction, player_id, amount_minor, self.unit.code)
        with self._transaction() as db:
            existing = db.execute("SELECT * FROM transfers WHERE transfer_id = ?", (transfer_id,)).fetchone()
            if existing is not None:
                stored = self._row(existing)
                if stored.fingerprint != fingerprint:
                    return TransferOutcome("conflict", stored)
                return TransferOutcome("replayed" if stored.state is TransferState.APPLIED else "replayed_failed", stored)
            row = db.execute("SELECT balance_minor FROM wallets WHERE player_id = ?", (player_id,)).fetchone()
            balance = row[0] if row else 0
            if direction is Direction.IN:
                moved, state, error = amount_minor or 0, TransferState.APPLIED, None
            else:
                moved = balance if amount_minor is None else amount_minor
                state, error = (TransferState.APPLIED, None) if moved <= balance else (TransferState.FAILED, "INSUFFICIENT_FUNDS")
            after = None
            if state is TransferState.APPLIED:
                after = balance + moved if direction is Direction.IN else balance - moved
                db.execute(
                    "INSERT INTO wallets (player_id, balance_minor, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (player_id) DO UPDATE SET balance_minor = excluded.balance_minor, "
                    "updated_at = excluded.updated_at",
                    (player_id, after, format_time(now)),
                )
            provider_tx_id = f"{self.provider}-{uuid.uuid4().hex[:20]}"
            db.execute(
                "INSERT INTO transfers (transfer_id, provider_tx_id, player_id, direction, fingerprint, amount_minor,"
                " state, error_code, balance_after_minor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (transfer_id, provider_tx_id, player_id, direction.value, fingerprint, moved, state.value,
                 error, after, format_time(now)),
            )
            stored = self._row(db.execute("SELECT * FROM transfers WHERE transfer_id = ?", (transfer_id,)).fetchone())
        return TransferOutcome("applied" if state is TransferState.APPLIED else "failed", stored)

    def transfer(self, transfer_id: str) -> StoredTransfer | None:
        """The stored transfer with this id, if any."""
        with self._lock:
            row = self._db.execute("SELECT * FROM transfers WHERE transfer_id = ?", (transfer_id,)).fetchone()
        return self._row(row) if row else None

    def balance(self, player_id: str) -> Money:
        """The player's game balance (zero if unknown)."""
        with self._lock:
            row = self._db.execute("SELECT balance_minor FROM wallets WHERE player_id = ?", (player_id,)).fetchone()
        return Money(row[0] if row else 0, self.unit)

    def players_with_balance(self) -> list[str]:
        """Players whose game balance is positive (background play)."""
        with self._lock:
            rows = self._db.execute("SELECT player_id FROM wallets WHERE balance_minor > 0 ORDER BY player_id").fetchall()
        return [r[0] for r in rows]

    def play(self, player_id: str, make_rounds: Callable[[int, int], list[Round]]) -> tuple[list[Round], Money]:
        """Run ``make_rounds(balance_minor, first_round_number)``; store its rounds and the new balance atomically."""
        with self._transaction() as db:
            row = db.execute("SELECT balance_minor FROM wallets WHERE player_id = ?", (player_id,)).fetchone()
            balance = row[0] if row else 0
            first = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM rounds").fetchone()[0]
            rounds = make_rounds(balance, first)
            for item in rounds:
                balance += item.net.amount_minor
                db.execute(
                    "INSERT INTO rounds (round_id, player_id, game_id, bet_minor, win_minor, refund_minor,"
                    " started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (item.round_id, player_id, item.game_id, item.bet.amount_minor, item.win.amount_minor,
                     item.refund.amount_minor, format_time(item.started_at), format_time(item.ended_at)),
                )
            if rounds:
                db.execute(
                    "UPDATE wallets SET balance_minor = ?, updated_at = ? WHERE player_id = ?",
                    (balance, format_time(rounds[-1].ended_at), player_id),
                )
        return rounds, Money(balance, self.unit)

    def rounds(self, player_id: str, since: dt.datetime, limit: int) -> list[Round]:
        """Rounds of ``player_id`` ended at or after ``since``, in play order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT round_id, player_id, game_id, bet_minor, win_minor, refund_minor, started_at, ended_at"
                " FROM rounds WHERE player_id = ? AND ended_at >= ? ORDER BY seq LIMIT ?",
                (player_id, format_time(since), limit),
            ).fetchall()
        unit = self.unit
        return [
            Round(r[0], r[1], r[2], Money(r[3], unit), Money(r[4], unit), Money(r[5], unit), parse_time(r[6]), parse_time(r[7]))
            for r in rows
        ]

    def transfers_between(self, start: dt.datetime, end: dt.datetime) -> list[StoredTransfer]:
        """Transfers created in ``[start, end)`` (UTC), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM transfers WHERE created_at >= ? AND created_at < ? ORDER BY created_at, transfer_id",
                (format_time(start), format_time(end)),
            ).fetchall()
        return [self._row(r) for r in rows]

    def _row(self, row: sqlite3.Row | tuple) -> StoredTransfer:
        (transfer_id, provider_tx_id, player_id, direction, fingerprint, amount_minor, state, error_code,
         balance_after_minor, created_at) = row
        return StoredTransfer(
            transfer_id, provider_tx_id, player_id, Direction(direction), fingerprint,
            Money(amount_minor, self.unit), TransferState(state), error_code,
            None if balance_after_minor is None else Money(balance_after_minor, self.unit), parse_time(created_at),
        )


class _Tx:
    """``with store._transaction() as db``: the lock plus BEGIN IMMEDIATE / COMMIT or ROLLBACK."""

    def __init__(self, store: SimulatorStore) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store._lock.acquire()
        try:
            self.store._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store._lock.release()
            raise
        return self.store._db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self.store._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.store._lock.release()


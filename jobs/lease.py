"""Database leases: a job run claims its window so two schedulers never run it twice.

A lease is one row of ``job_leases`` per name; any name works, so a sweep uses
``sweep:in-doubt`` and a nightly window ``reconcile:acme:2026-12-01``.

- **Taking** it is one conditional statement (absent, expired or finished), so two
  processes racing for it cannot both win. A lease whose holder is a process on
  this host that no longer runs (see ``jobs.holder``) is taken over at once, with
  a compare-and-swap on (holder, acquired_at).
- **Keeping** it: while the job runs, a heartbeat thread (``Heartbeat``)
  extends ``expires_at`` every ``renewal_interval_s(ttl_s)`` seconds on its own connection.
  The expiry is short (``DEFAULT_TTL_S``), so a holder killed on another host
  loses its lease within seconds; the renewal interval is below a third of the
  TTL, so two renewals may fail in a row before the lease lapses.
- **Losing** it: a renewal that finds the row no longer ours, or no successful
  renewal for a whole TTL (database unreachable), marks the lease lost;
  ``Lease.lost`` says so and the job reports it instead of going on silently.
- **Releasing** it sets ``finished_at``, only by the holder of this very claim
  (holder and acquired_at), so a late release never frees someone else's run.

Timestamps are the wall clock (UTC) of the process writing them, never a job's
pretend ``now``: a lease is about real processes.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from sqlalchemy import and_, or_, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from jobs.holder import holder_is_dead, this_holder
from transfer_wallet.db import Database
from transfer_wallet.models import JobLease, table_of, utc_now

_leases = table_of(JobLease)
log = logging.getLogger("transfer_wallet.jobs")

#: A lease not renewed for this long lapses: how long a dead holder on another host blocks its job.
DEFAULT_TTL_S = 20.0
#: How many renewals fit in one TTL at least: a renewal may fail twice before the lease lapses.
RENEWALS_PER_TTL = 4


def renewal_interval_s(ttl_s: float) -> float:
    """The heartbeat's period for a lease of ``ttl_s`` seconds: a quarter of it (< TTL/3)."""
    return ttl_s / RENEWALS_PER_TTL


def holder_name() -> str:
    """``host:pid:starttime``: who holds a lease, for operators and for the liveness check."""
    return str(this_holder())


@dataclass
class Lease:
    """The answer to "may I run?": ours (``held``) or who holds it and until when.

    Truthy when held, so ``if not lease: skip`` reads naturally.
    """

    name: str
    held: bool
    holder: str | None
    expires_at: dt.datetime | None
    acquired_at: dt.datetime | None = None
    ttl_s: float = DEFAULT_TTL_S
    lost_reason: str | None = None
    _ended: bool = field(default=False, repr=False)
    _last_renewed: float = field(default_factory=time.monotonic, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __bool__(self) -> bool:
        return self.held

    @property
    def lost(self) -> bool:
        """True once a renewal found the lease taken, or none succeeded for a whole TTL."""
        with self._lock:
            if self.lost_reason is not None:
                return True
            stale = self.held and not self._ended and time.monotonic() - self._last_renewed >= self.ttl_s
        if stale:
            self.mark_lost(f"not renewed for {self.ttl_s:g} s (database unreachable?)")
        return self.lost_reason is not None

    def mark_lost(self, reason: str) -> None:
        """Record that the lease is no longer ours (the first reason wins)."""
        with self._lock:
            if self.lost_reason is None:
                self.lost_reason = reason

    def end(self) -> None:
        """The run is over: the lease can no longer be lost by going unrenewed."""
        _ = self.lost  # a staleness reached before the end still counts
        with self._lock:
            self._ended = True

    def renewed(self, expires_at: dt.datetime) -> None:
        """Record a successful renewal."""
        with self._lock:
            self.expires_at = expires_at
            self._last_renewed = time.monotonic()


def _take(connection: Connection, name: str, holder: str, now: dt.datetime, expires: dt.datetime) -> bool:
    taken = connection.execute(
        update(_leases)
        .where(_leases.c.name == name, or_(_leases.c.expires_at <= now, _leases.c.finished_at.is_not(None)))
        .values(holder=holder, acquired_at=now, expires_at=expires, finished_at=None)
    ).rowcount
    if taken:
        return True
    row = connection.execute(_leases.select().where(_leases.c.name == name)).first()
    if row is None:
        connection.execute(_leases.insert().values(name=name, holder=holder, acquired_at=now, expires_at=expires))
        return True
    if not holder_is_dead(row.holder):
        return False
    # The holder died on this host: take over, unless someone else did in between.
    return bool(connection.execute(
        update(_leases)
        .where(_leases.c.name == name, _leases.c.holder == row.holder, _leases.c.acquired_at == row.acquired_at)
        .values(holder=holder, acquired_at=now, expires_at=expires, finished_at=None)
    ).rowcount)


def current(db: Database, name: str) -> Lease:
    """The lease row ``name`` as it stands (``held`` False: this only reads)."""
    row = db.transaction(lambda c: c.execute(_leases.select().where(_leases.c.name == name)).first(), readonly=True)
    if row is None:
        return Lease(name, False, None, None)
    return Lease(name, False, row.holder, row.expires_at, acquired_at=row.acquired_at)


def acquire(db: Database, name: str, *, ttl_s: float = DEFAULT_TTL_S, now: dt.datetime | None = None,
            holder: str | None = None) -> Lease:
    """Take the lease ``name`` for ``ttl_s`` seconds; if someone else holds it, say who and until when."""
    now = now or utc_now()
    holder = holder or holder_name()
    expires = now + dt.timedelta(seconds=ttl_s)
    try:
        won = db.transaction(lambda c: _take(c, name, holder, now, expires))
    except IntegrityError:  # another process inserted it first
        won = False
    if won:
        return Lease(name, True, holder, expires, acquired_at=now, ttl_s=ttl_s)
    other = current(db, name)
    other.ttl_s = ttl_s
    return other


def _ours(lease: Lease) -> Any:
    return and_(_leases.c.name == lease.name, _leases.c.holder == lease.holder,
                _leases.c.acquired_at == lease.acquired_at)


def renew(db: Database, lease: Lease, *, now: dt.datetime | None = None, attempts: int = 2) -> bool:
    """Extend a held lease by its TTL from ``now``; False (and marked lost) if it is no longer ours."""
    now = now or utc_now()
    expires = now + dt.timedelta(seconds=lease.ttl_s)
    extended = db.transaction(lambda c: c.execute(
        update(_leases).where(_ours(lease), _leases.c.finished_at.is_(None)).values(expires_at=expires)
    ).rowcount, attempts=attempts)
    if not extended:
        taken_by = current(db, lease.name).holder
        lease.mark_lost(f"taken by {taken_by}" if taken_by != lease.holder else "released or taken over")
        return False
    lease.renewed(expires)
    return True


def release(db: Database, lease: Lease, *, now: dt.datetime | None = None) -> None:
    """Mark a held lease finished; no effect if it has since passed to someone else."""
    if not lease.held:
        return
    db.transaction(lambda c: c.execute(
        update(_leases).where(_ours(lease)).values(finished_at=now or utc_now())
    ))


class Heartbeat:
    """A daemon thread renewing ``lease`` every ``interval_s`` seconds until stopped.

    Each renewal is its own short transaction on its own pooled connection. A
    renewal that finds the lease gone marks it lost and ends the thread; a failing
    one (database unreachable) is logged and tried again next period, and
    ``Lease.lost`` turns true once no renewal has succeeded for a whole TTL.
    """

    def __init__(self, db: Database, lease: Lease, *, interval_s: float | None = None) -> None:
        self.db = db
        self.lease = lease
        self.interval_s = interval_s if interval_s is not None else renewal_interval_s(lease.ttl_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-heartbeat:{lease.name}", daemon=True)

    def start(self) -> None:
        """Start renewing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and wait for the thread (at most one renewal's time)."""
        self._stop.set()
        self._thread.join(timeout=self.lease.ttl_s)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if not renew(self.db, self.lease):
                    log.error("lease %s lost: %s", self.lease.name, self.lease.lost_reason)
                    return
            except Exception as error:  # keep trying: the database may come back within the TTL
                log.warning("lease %s: renewal failed: %s", self.lease.name, str(error).splitlines()[0])
                if self.lease.lost:
                    log.error("lease %s lost: %s", self.lease.name, self.lease.lost_reason)
                    return


@contextmanager
def leased(db: Database, name: str, *, ttl_s: float = DEFAULT_TTL_S) -> Iterator[Lease]:
    """``with leased(db, "sweep:timeouts") as lease: if lease: ...``; renewed while inside, released after.

    The heartbeat stops when the block ends, whatever the way out; a release that
    fails (database gone) is logged, and the lease then lapses by its expiry.
    """
    lease = acquire(db, name, ttl_s=ttl_s)
    if not lease.held:
        yield lease
        return
    heartbeat = Heartbeat(db, lease)
    heartbeat.start()
    try:
        yield lease
    finally:
        heartbeat.stop()
        lease.end()
        try:
            release(db, lease)
        except Exception as error:
            log.warning("lease %s: release failed, it lapses in %g s: %s", name, ttl_s, str(error).splitlines()[0])

"""Database leases: a job run claims its window so two schedulers never run it twice.

A lease is one row per name. It is taken when absent, expired or finished, with a
single conditional statement, so that two processes racing for it cannot both
win. A crashed run's lease simply expires.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from transfer_wallet.db import Database
from transfer_wallet.models import JobLease, utc_now

_leases = JobLease.__table__


def holder_name() -> str:
    """``host:pid``: who holds a lease, for operators reading the table."""
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire(db: Database, name: str, *, ttl_s: int, now: dt.datetime | None = None, holder: str | None = None) -> bool:
    """Take the lease ``name`` for ``ttl_s`` seconds; False if someone else holds it."""
    now = now or utc_now()
    holder = holder or holder_name()
    expires = now + dt.timedelta(seconds=ttl_s)

    def work(connection) -> bool:  # type: ignore[no-untyped-def]
        taken = connection.execute(
            update(_leases)
            .where(_leases.c.name == name, or_(_leases.c.expires_at <= now, _leases.c.finished_at.is_not(None)))
            .values(holder=holder, acquired_at=now, expires_at=expires, finished_at=None)
        ).rowcount
        if taken:
            return True
        exists = connection.execute(_leases.select().where(_leases.c.name == name)).first()
        if exists is not None:
            return False
        connection.execute(_leases.insert().values(name=name, holder=holder, acquired_at=now, expires_at=expires))
        return True

    try:
        return db.transaction(work)
    except IntegrityError:  # another process inserted it first
        return False


def release(db: Database, name: str, *, holder: str | None = None, now: dt.datetime | None = None) -> None:
    """Mark the lease finished (only by its holder)."""
    holder = holder or holder_name()
    db.transaction(lambda c: c.execute(
        update(_leases).where(_leases.c.name == name, _leases.c.holder == holder).values(finished_at=now or utc_now())
    ))


@contextmanager
def leased(db: Database, name: str, *, ttl_s: int, now: dt.datetime | None = None) -> Iterator[bool]:
    """``with leased(db, "timeouts", ttl_s=300) as mine: if mine: ...``; released after."""
    holder = holder_name()
    mine = acquire(db, name, ttl_s=ttl_s, now=now, holder=holder)
    try:
        yield mine
    finally:
        if mine:
            release(db, name, holder=holder)

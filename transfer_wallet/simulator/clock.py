"""One clock per simulated run: it starts at a chosen instant, only moves forward, and never passes now.

Every time a simulated run writes (sessions opened, last activity, deadlines, closed;
transfers; mirrored play and rounds; the in-process simulator's transfers, rounds and
wallets) comes from the run's ``RunClock``. The clock starts in the past and is
*limited* to the wall clock at the start of the run: an advance that would pass the
limit stops at it, so data that stays in the database is never in the future.

``plan_span_s`` estimates how long a plan needs from its first session to its last
resolution, so ``tw simulate --start`` can refuse a start that would run past now
(rather than write future times) and a run without ``--start`` can start far enough
in the past.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING, Any

from transfer_wallet.errors import ValidationError
from transfer_wallet.models import utc_now

if TYPE_CHECKING:  # pragma: no cover
    from transfer_wallet.db import Database

#: Simulated seconds allowed after the last timeout for retries of in-doubt transfers and closings.
RETRY_ALLOWANCE_S = 600


class RunClock:
    """A monotonic simulated clock from ``start``, never past ``limit`` (default: the wall clock now).

    Calling it returns the current simulated instant (it is the ``clock`` of a
    ``SessionManager`` and the ``now`` of a ``SimulatorServer``). It is safe to read
    from the simulator's request threads while the run advances it.
    """

    def __init__(self, start: dt.datetime, *, limit: dt.datetime | None = None) -> None:
        if start.tzinfo is None:
            raise ValidationError("the run's start needs a UTC offset")
        self.limit = (limit or utc_now()).astimezone(dt.timezone.utc)
        start = start.astimezone(dt.timezone.utc)
        if start > self.limit:
            raise ValidationError(f"start {start.isoformat()} is in the future (now {self.limit.isoformat()})")
        self.start = start
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        return self._now

    @property
    def at_limit(self) -> bool:
        """True once the clock has reached its limit (the wall clock at the start of the run)."""
        return self._now >= self.limit

    def advance_to(self, when: dt.datetime) -> dt.datetime:
        """Move to ``when`` if it is later (never backwards, never past the limit); the new instant."""
        with self._lock:
            self._now = min(max(self._now, when), self.limit)
            return self._now

    def advance(self, seconds: float) -> dt.datetime:
        """Move ``seconds`` forward (stopping at the limit); the new instant."""
        return self.advance_to(self._now + dt.timedelta(seconds=seconds))


def tail_s(rounds: int, round_s: int, idle_timeout_s: int) -> int:
    """Simulated seconds a run needs after its last session opens: its play, a timeout, retries."""
    return rounds * round_s + idle_timeout_s + RETRY_ALLOWANCE_S


def check_fits(start: dt.datetime, needed_s: int, now: dt.datetime | None = None) -> None:
    """``ValidationError`` unless a run of ``needed_s`` simulated seconds from ``start`` ends by now."""
    now = now or utc_now()
    end = start + dt.timedelta(seconds=needed_s)
    if end > now:
        latest = (now - dt.timedelta(seconds=needed_s)).replace(microsecond=0)
        raise ValidationError(
            f"--start {start.isoformat()} would run past now: the plan needs about {_duration(needed_s)} "
            f"of simulated time; start at or before {latest.isoformat()} (or run fewer sessions)"
        )


def next_due(db: "Database", session_ids: list[str], now: dt.datetime) -> dt.datetime:
    """The earliest time any of these sessions has work due: a deadline, a close retry, a transfer retry."""
    from sqlalchemy import select

    from transfer_wallet.models import GameSession, Transfer, table_of
    from transfer_wallet.sessions.state import PENDING_GRACE_S

    sessions = table_of(GameSession)
    transfers = table_of(Transfer)
    grace = dt.timedelta(seconds=PENDING_GRACE_S + 1)

    def read(connection: Any) -> list[Any]:
        rows = connection.execute(select(sessions.c.status, sessions.c.deadline_at, sessions.c.next_attempt_at)
                                  .where(sessions.c.id.in_(session_ids))).all()
        unfinished = connection.execute(select(transfers.c.status, transfers.c.next_attempt_at, transfers.c.updated_at)
                                        .where(transfers.c.session_id.in_(session_ids),
                                               transfers.c.status.in_(("pending", "in_doubt")))).all()
        return [r.deadline_at if r.status == "active" else r.next_attempt_at or now for r in rows] + \
            [(r.updated_at + grace) if r.status == "pending" else r.next_attempt_at or now for r in unfinished]

    times = [t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc) for t in db.transaction(read, readonly=True)]
    return min((t for t in times if t > now), default=now + dt.timedelta(seconds=1))


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"

"""The scheduler's two passes: close sessions past their deadline, finish transfers in doubt.

Both are bounded (``limit`` per pass) and idempotent: one bad session never stops a
pass (its error is reported), and a crash anywhere is finished by the next pass.
``keep_going`` is asked before each item: a job whose lease was lost stops there
(another process may be sweeping the same rows), and says so in the report.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Row

from transfer_wallet.models import ACTIVE, CLOSED, CLOSING, IN_DOUBT, PENDING
from transfer_wallet.money import Money, currency
from transfer_wallet.sessions.closing import Closing
from transfer_wallet.sessions.outcomes import ask_status
from transfer_wallet.sessions.state import (
    MAX_BATCH,
    PENDING_GRACE_S,
    SessionPolicy,
    sessions_table,
    short,
    transfers_table,
)
from transfer_wallet.sessions.views import SweepReport


class Sweeps(Closing):
    """``expire_sessions`` and ``resolve_in_doubt``."""

    def expire_sessions(self, now: dt.datetime | None = None, *, limit: int = MAX_BATCH,
                        keep_going: Callable[[], bool] | None = None) -> SweepReport:
        """Close every active session past its deadline; retry closings that are due."""
        now = self._now(now)
        report = SweepReport()
        s = sessions_table.c
        due = self.db.transaction(lambda c: c.execute(
            select(s.id, s.status, s.last_activity_at, s.idle_timeout_s, s.opened_at, s.max_session_s, s.provider)
            .where(or_(and_(s.status == ACTIVE, s.deadline_at <= now),
                       and_(s.status == CLOSING, or_(s.next_attempt_at.is_(None), s.next_attempt_at <= now))))
            .order_by(s.deadline_at).limit(limit)
        ).all(), readonly=True)
        for row in due:
            if keep_going is not None and not keep_going():
                report.stopped_early = True
                break
            report.examined += 1
            reason = timeout_reason(row, self.policies.get(row.provider)) if row.status == ACTIVE else "retry"
            try:
                view = self.close_session(row.id, reason=reason, now=now)
            except Exception as error:  # one bad session never stops the sweep
                report.errors.append(f"{row.id}: {short(error)}")
                continue
            report.closed += view.status == CLOSED
            report.stuck += view.stuck
        return report

    def resolve_in_doubt(self, now: dt.datetime | None = None, *, limit: int = MAX_BATCH,
                         keep_going: Callable[[], bool] | None = None) -> SweepReport:
        """Finish transfers whose outcome is unknown: ask the provider, re-send the same id if unseen."""
        now = self._now(now)
        report = SweepReport()
        grace = now - dt.timedelta(seconds=PENDING_GRACE_S)
        t = transfers_table.c
        rows = self.db.transaction(lambda c: c.execute(
            select(t.id, t.direction, t.provider, t.player_id, t.game_amount_minor, t.game_currency)
            .where(or_(and_(t.status == IN_DOUBT, or_(t.next_attempt_at.is_(None), t.next_attempt_at <= now)),
                       and_(t.status == PENDING, t.updated_at <= grace)))
            .order_by(t.created_at).limit(limit)
        ).all(), readonly=True)
        for row in rows:
            if keep_going is not None and not keep_going():
                report.stopped_early = True
                break
            report.examined += 1
            try:
                outcome = self._resolve_one(row, now)
            except Exception as error:
                report.errors.append(f"{row.id}: {short(error)}")
                continue
            if outcome == "applied":
                report.completed += 1
            elif outcome == "refused":
                report.refunded += row.direction == "IN"
            else:
                report.still_in_doubt += 1
        return report

    def _resolve_one(self, row: Row, now: dt.datetime) -> str:
        """Ask the provider about one transfer and record the answer; returns the outcome kind."""
        provider, policy = self._provider(row.provider)
        game_amount = Money(row.game_amount_minor, currency(row.game_currency)) if row.game_amount_minor is not None else None
        outcome, failure, answer = ask_status(provider, row.id, row.direction, row.player_id)
        if outcome == "applied":
            booked, _ = self._record("applied", policy, row.id, now, answer=answer)
            return "applied" if booked else "in_doubt"  # an answer that does not fit stays in doubt
        if outcome in ("in_doubt", "refused"):
            self._record(outcome, policy, row.id, now, failure=failure)
            return outcome
        # never seen (or not yet), or applied without an amount: re-send the same id, which applies at most
        # once; a refusal is checked again (the first attempt may have landed since the status was read)
        return self._send(provider, policy, row.id, row.direction, row.player_id, game_amount, now,
                          confirm_refusal=True)[0]


def timeout_reason(row: Row, policy: SessionPolicy | None) -> str:
    """Which deadline came first: idle, the provider's maximum length, or the player's own limit."""
    idle_at = row.last_activity_at + dt.timedelta(seconds=row.idle_timeout_s)
    max_at = row.opened_at + dt.timedelta(seconds=row.max_session_s)
    if idle_at <= max_at:
        return "idle_timeout"
    return "max_length" if policy is None or row.max_session_s >= policy.max_session_s else "player_limit"

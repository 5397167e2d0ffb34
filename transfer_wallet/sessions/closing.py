"""Closing a session: move it to CLOSING (step 1) and send the transfer-out; safe to repeat.

A repeated close re-sends the open transfer-out under its own id (the provider
applies it at most once); after a refusal a new transfer-out is made. A refusal is
believed only when ``transfer_status`` agrees (not there, or failed): a provider may
answer the re-send of an id whose first attempt applied with "duplicate"/rejected,
and then the status's "applied" settles the session; no status means in doubt. With one
session per player at the provider we withdraw everything; where a player may hold
several, only this session's mirrored game balance.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from transfer_wallet.errors import IdempotencyConflictError, InvalidStateError
from transfer_wallet.models import ACTIVE, CLOSED, CLOSING, FAILED, IN_DOUBT, OPENING, PENDING
from transfer_wallet.money import Money, currency
from transfer_wallet.sessions import server_steps
from transfer_wallet.sessions.outcomes import Outcomes
from transfer_wallet.sessions.state import (
    SETTLED_LOCALLY,
    TIMEOUT_REASONS,
    move,
    session_row,
    sessions_table,
    transfer_row,
    transfers_table,
    update_session,
)
from transfer_wallet.sessions.server_steps import CloseStep
from transfer_wallet.sessions.views import SessionView



_OUTS = (select(transfers_table.c.id, transfers_table.c.status, transfers_table.c.game_amount_minor)
         .where(transfers_table.c.session_id == bindparam("session_id"), transfers_table.c.direction == "OUT")
         .order_by(transfers_table.c.created_at, transfers_table.c.id))
_INSERT_TRANSFER = transfers_table.insert()
_CLOSE_KEY_OWNER = select(sessions_table.c.id).where(sessions_table.c.close_key == bindparam("key"))


class Closing(Outcomes):
    """``close_session`` and its step 1."""

    def close_session(
        self, session_id: str, *, key: str | None = None, reason: str = "player", now: dt.datetime | None = None
    ) -> SessionView:
        """Withdraw everything from the game wallet and settle; safe to repeat.

        Closing a closed or failed session returns it unchanged. A ``key`` already
        used to close another session is a conflict.
        """
        from transfer_wallet.wallet import validate_reference

        if key is not None:
            validate_reference(key)
        now = self._now(now)
        try:
            step, view = self._close_intent(session_id, key, reason, now)
        except IntegrityError:  # the same close key set on another session at the same moment
            raise IdempotencyConflictError(f"close key '{key}' is being used for another session") from None
        if step is None:
            return view if view is not None else self.get(session_id)
        provider_name, transfer_id, player_id, game_amount = step
        provider, policy = self._provider(provider_name)
        # the step does not say whether this id was sent before (server or Python step): every refusal is checked
        _, view = self._send(provider, policy, transfer_id, "OUT", player_id, game_amount, now, view_of=session_id,
                             confirm_refusal=True)
        assert view is not None
        return view

    def _close_intent(
        self, session_id: str, key: str | None, reason: str, now: dt.datetime
    ) -> tuple[CloseStep | None, SessionView | None]:
        """Step 1 in one transaction: (the transfer-out to send, or None and the session if already read).

        On PostgreSQL one call of ``tw_session_close_intent``, unless it hands the step back.
        """
        if self._on_server():
            fallback, step, view = server_steps.close_intent(self.db, self.providers, self.policies, session_id, key,
                                                             reason, now)
            if fallback is None:
                return step, view
        return self.db.transaction(lambda c: self._close_step1(c, session_id, key, reason, now)), None

    def _close_step1(
        self, connection: Connection, session_id: str, key: str | None, reason: str, now: dt.datetime
    ) -> CloseStep | None:
        """Move to CLOSING and pick the transfer-out to send: the open one (same id) or a new one."""
        session = session_row(connection, session_id, lock=True)
        if key is not None:
            _claim_close_key(connection, session, key)
        if session.status in (CLOSED, FAILED):
            return None
        if session.status == OPENING:
            raise InvalidStateError(f"session {session_id} is still opening (transfer-in not confirmed); run `tw jobs run in-doubt` first")
        if session.status == ACTIVE:
            if reason in TIMEOUT_REASONS and session.deadline_at > now:
                return None  # play extended the session after the sweep picked it: not due any more
            move(connection, session, CLOSING, closing_at=now, close_reason=reason)
        game_ccy = currency(session.game_currency)
        outs = connection.execute(_OUTS, {"session_id": session_id}).all()
        open_out = [t for t in outs if t.status in (PENDING, IN_DOUBT)]
        if open_out:  # re-send the same id with the same content: the provider applies it at most once
            last = open_out[-1]
            amount = Money(last.game_amount_minor, game_ccy) if last.game_amount_minor is not None else None
            return session.provider, last.id, session.player_id, amount
        _, policy = self._provider(session.provider)
        amount = None if policy.max_open_sessions == 1 else Money(session.game_balance_minor, game_ccy)
        transfer_id = f"{session_id}-out{len(outs) + 1}"
        connection.execute(_INSERT_TRANSFER, dict(
            id=transfer_id, session_id=session_id, player_id=session.player_id, provider=session.provider,
            direction="OUT", status=PENDING, wallet_currency=session.wallet_currency, game_currency=session.game_currency,
            game_amount_minor=amount.amount_minor if amount is not None else None, attempts=0, created_at=now, updated_at=now,
        ))
        if amount is not None and amount.amount_minor == 0:
            # Everything of this session was lost at the provider: nothing to withdraw, settle here.
            self._settle(connection, session_row(connection, session_id), transfer_row(connection, transfer_id),
                         amount, SETTLED_LOCALLY, now)
            return None
        return session.provider, transfer_id, session.player_id, amount


def _claim_close_key(connection: Connection, session: Row, key: str) -> None:
    """Set the close key on ``session`` (first key wins); a key of another session is a conflict."""
    other = connection.execute(_CLOSE_KEY_OWNER, {"key": key}).scalar()
    if other is not None and other != session.id:
        raise IdempotencyConflictError(f"close key '{key}' was already used for session {other}")
    if session.close_key is None:
        update_session(connection, session.id, close_key=key)

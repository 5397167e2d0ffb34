"""Opening a session: lock the money (step 1), send the transfer-in, replay a repeated open.

Step 1 is one transaction: the player's account rows are locked, the open-session
count and the responsible-gaming limits are checked, the money moves from main to
the session account (the FX rounding residue, if any, to the FX account), and the
session (OPENING) and its transfer-in (PENDING) are written. The key is the
idempotency key: the same key and request replays the session; another request
under it is a conflict.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from transfer_wallet import ledger
from transfer_wallet.errors import IdempotencyConflictError, InvalidStateError, ValidationError
from transfer_wallet.ledger import request_digest
from transfer_wallet.models import FX_ROUNDING, OPEN_STATES, OPENING, PENDING
from transfer_wallet.money import Conversion, Money, convert
from transfer_wallet.session_views import new_session_id
from transfer_wallet.sessions import server_steps
from transfer_wallet.sessions.outcomes import Outcomes
from transfer_wallet.sessions.state import (
    SessionPolicy,
    canonical_amount,
    lock_rows,
    sessions_table,
    transfers_table,
)
from transfer_wallet.sessions.views import SessionView, read_view


class Opening(Outcomes):
    """``open_session`` and its steps."""

    def open_session(
        self, player_id: str, provider: str, amount: Money | str, *, key: str | None = None, now: dt.datetime | None = None
    ) -> SessionView:
        """Lock ``amount`` and move it into ``provider``'s game wallet; returns the session.

        A repeat with the same ``key`` returns the same session (whatever its state
        now); the same key for another player, provider or amount is a conflict.
        The session comes back ACTIVE, FAILED (refused, funds back, reason kept) or
        OPENING with ``in_doubt`` (money stays locked until resolved).
        """
        from transfer_wallet.wallet import validate_player_id, validate_reference

        validate_player_id(player_id)
        provider_client, policy = self._provider(provider)
        key = validate_reference(key) if key is not None else f"auto-{uuid.uuid4()}"
        request = {"player_id": player_id, "provider": provider, "amount": canonical_amount(amount)}
        digest = request_digest(request)
        now = self._now(now)
        try:
            created = self._open_intent(player_id, provider, policy, amount, key, digest, now)
        except IntegrityError:
            created = None  # a concurrent open with the same key won the race: replay it below
        if created is None:
            return self.db.transaction(lambda c: _replay_open(c, key, digest), readonly=True)
        session_id, transfer_id, game_amount = created
        _, view = self._send(provider_client, policy, transfer_id, "IN", player_id, game_amount, now, view_of=session_id)
        assert view is not None
        return view

    def _open_intent(
        self, player_id: str, provider: str, policy: SessionPolicy, amount: Money | str, key: str, digest: str,
        now: dt.datetime,
    ) -> tuple[str, str, Money] | None:
        """Step 1 in one transaction: (session id, transfer id, game amount), or None: replay the key.

        On PostgreSQL one call of ``tw_session_open`` for an open in the player's own currency,
        unless it hands the step back (a key seen before, too many open sessions, limits, short funds).
        """
        if self._on_server():
            opened = self._open_on_server(player_id, provider, policy, amount, key, digest, now)
            if opened is not None:
                return opened
        return self.db.transaction(lambda c: self._open_step1(c, player_id, provider, policy, amount, key, digest, now))

    def _open_on_server(
        self, player_id: str, provider: str, policy: SessionPolicy, amount: Money | str, key: str, digest: str,
        now: dt.datetime,
    ) -> tuple[str, str, Money] | None:
        """``tw_session_open`` (the player's accounts from the cache once known); None: Python's turn."""
        from transfer_wallet.wallet import _as_money

        wallet_ccy, main, locked = ledger.cached_player_accounts(self.db, player_id)
        money = _as_money(amount, wallet_ccy, player_id)  # checked before any replay, as in the Python step
        if policy.currency != wallet_ccy:
            server_steps.FALLBACKS["fx"] += 1
            return None
        session_id = new_session_id()
        fallback = server_steps.open_intent(self.db, session_id=session_id, player_id=player_id, provider=provider,
                                            main=main, locked=locked, money=money, key=key, digest=digest,
                                            policy=policy, now=now)
        return None if fallback else (session_id, f"{session_id}-in", money)

    def _open_step1(
        self, connection: Connection, player_id: str, provider: str, policy: SessionPolicy,
        amount: Money | str, key: str, digest: str, now: dt.datetime,
    ) -> tuple[str, str, Money] | None:
        """Step 1: checks, lock the funds, write the session and its PENDING transfer-in; None: replay."""
        from transfer_wallet import limits
        from transfer_wallet.wallet import _as_money

        wallet_ccy, main, locked = ledger.player_accounts(self.db, connection, player_id)
        # The amount is checked before a replay is answered: the request digest does not see a Money's
        # currency or how a number was written, so a repeat must not turn an invalid amount into success.
        money = _as_money(amount, wallet_ccy, player_id)
        lock_rows(connection, [main.id, locked.id])  # serialises this player's opens: counts and limits hold
        if _key_used(connection, key):  # looked up once, under the lock: a repeat (or a concurrent twin) replays
            return None
        _check_open_count(connection, player_id, provider, policy)
        player_max_s = limits.check_transfer_in(connection, player_id, money.amount_minor, now=now)
        max_session_s = min(policy.max_session_s, player_max_s) if player_max_s else policy.max_session_s
        conversion, rate = _convert_in(connection, money, policy.currency, now)
        session_id = new_session_id()
        transfer_id = f"{session_id}-in"
        legs = [ledger.Leg(main, -money.amount_minor), ledger.Leg(locked, conversion.consumed.amount_minor)]
        if conversion.residue.amount_minor:
            rounding = ledger.system_account(self.db, connection, FX_ROUNDING, wallet_ccy)
            legs.append(ledger.Leg(rounding, conversion.residue.amount_minor))
        ledger.post(connection, kind="session_lock", idempotency_key=f"session:{session_id}:lock", legs=legs)
        deadline = min(now + dt.timedelta(seconds=policy.idle_timeout_s), now + dt.timedelta(seconds=max_session_s))
        connection.execute(_INSERT_SESSION, dict(
            id=session_id, player_id=player_id, provider=provider, status=OPENING, wallet_currency=wallet_ccy,
            game_currency=policy.currency, amount_in_minor=conversion.consumed.amount_minor,
            game_amount_in_minor=conversion.target.amount_minor, game_balance_minor=0, mirrored=False,
            open_key=key, open_request_hash=digest, idle_timeout_s=policy.idle_timeout_s, max_session_s=max_session_s,
            opened_at=now, last_activity_at=now, deadline_at=deadline, close_attempts=0, stuck=False,
        ))
        connection.execute(_INSERT_TRANSFER, dict(
            id=transfer_id, session_id=session_id, player_id=player_id, provider=provider, direction="IN",
            status=PENDING, wallet_currency=wallet_ccy, amount_minor=conversion.consumed.amount_minor,
            game_currency=policy.currency, game_amount_minor=conversion.target.amount_minor, fx_rate=rate,
            fx_residue_minor=conversion.residue.amount_minor, attempts=0, created_at=now, updated_at=now,
        ))
        return session_id, transfer_id, conversion.target


_KEY_USED = select(sessions_table.c.id).where(sessions_table.c.open_key == bindparam("key"))
#: One count per open state, each an equality probe of the (player, provider, status) index: with
#: ``status IN (...)`` PostgreSQL may scan every session the player ever had there and filter them.
_OPEN_COUNT = select(*(
    select(func.count()).select_from(sessions_table).where(
        sessions_table.c.player_id == bindparam("player_id"), sessions_table.c.provider == bindparam("provider"),
        sessions_table.c.status == state,
    ).scalar_subquery()
    for state in OPEN_STATES
))
_KEY_AND_DIGEST = select(sessions_table.c.id, sessions_table.c.open_request_hash).where(
    sessions_table.c.open_key == bindparam("key"))
_INSERT_SESSION = sessions_table.insert()
_INSERT_TRANSFER = transfers_table.insert()


def _key_used(connection: Connection, key: str) -> bool:
    return connection.execute(_KEY_USED, {"key": key}).first() is not None


def _check_open_count(connection: Connection, player_id: str, provider: str, policy: SessionPolicy) -> None:
    """``InvalidStateError`` if the player already holds the most open sessions the provider allows."""
    open_count = sum(connection.execute(_OPEN_COUNT, {"player_id": player_id, "provider": provider}).one())
    if open_count >= policy.max_open_sessions:
        raise InvalidStateError(
            f"player '{player_id}' already has {open_count} open session(s) at {provider} (max {policy.max_open_sessions})"
        )


def _convert_in(connection: Connection, money: Money, game_currency: str, now: dt.datetime) -> tuple[Conversion, str | None]:
    """``money`` in the game currency at the stored rate (None: same currency); refuses a transfer that buys nothing."""
    from transfer_wallet.fx import rate_at

    rate: str | None = None
    if game_currency != money.currency.code:
        stored = rate_at(connection, money.currency.code, game_currency, now)
        conversion = convert(money, game_currency, stored.rate)
        rate = str(stored.rate)
    else:
        conversion = convert(money, game_currency, Decimal(1))
    if conversion.target.amount_minor <= 0:
        raise ValidationError(f"{money} buys nothing in {game_currency} at rate {rate}; transfer more")
    return conversion, rate


def _replay_open(connection: Connection, key: str, digest: str) -> SessionView:
    """The session an earlier open with ``key`` made, if the request was the same."""
    row = connection.execute(_KEY_AND_DIGEST, {"key": key}).first()
    if row is None:
        raise InvalidStateError(f"session for key '{key}' not found after a conflicting insert; try again")
    if row.open_request_hash != digest:
        raise IdempotencyConflictError(f"idempotency key '{key}' was already used for a different session request")
    return read_view(connection, row.id)

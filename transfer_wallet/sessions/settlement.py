"""Settlement: a transfer-out the provider applied brings the money home, exactly once.

The locked transfer-in leaves the session account; what the provider returned goes
to the player's main wallet (converted back at the rate in force when the provider
applied it); the difference is the game result, booked to the house. Then two
checks for finance, neither of which stops the booking: conservation (a mirrored
session must return transfer-in - bets + wins + refunds) and review (a transfer-out
far above what went in).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_FLOOR, Context, Decimal
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection, Row

from transfer_wallet import discrepancies, ledger
from transfer_wallet.discrepancies import Finding
from transfer_wallet.errors import InvalidStateError, NotFoundError
from transfer_wallet.models import CLOSED, COMPLETED, HOUSE
from transfer_wallet.money import Conversion, Money, convert, currency, parse_rate
from transfer_wallet.sessions.state import (
    SessionPolicy,
    guard_transfer,
    move,
    transfers_table,
)
from transfer_wallet.sessions.views import SessionQueries


class Settlement(SessionQueries):
    """Books an applied transfer-out and checks it."""

    def _settle(
        self, connection: Connection, session: Row, transfer: Row, game_out: Money, provider_tx_id: str,
        now: dt.datetime, *, rate_at_time: dt.datetime | None = None,
    ) -> None:
        """Transfer-out applied: money back to main, game result to the house, conservation checked.

        The FX rate is the one in force when the provider applied the transfer, not when
        a late worker happens to record it.
        """
        conversion, rate = _convert_back(connection, session, game_out, rate_at_time or now)
        amount_out = conversion.target.amount_minor
        _, main, locked = ledger.player_accounts(self.db, connection, session.player_id)
        legs = [ledger.Leg(locked, -session.amount_in_minor)]
        if amount_out:
            legs.append(ledger.Leg(main, amount_out))
        game_result = session.amount_in_minor - amount_out  # the house wins what the player lost
        if game_result:
            house = ledger.system_account(self.db, connection, HOUSE, session.wallet_currency, session.provider)
            legs.append(ledger.Leg(house, game_result))
        posted = ledger.post(connection, kind="session_settle", idempotency_key=f"session:{session.id}:settle", legs=legs)
        if not guard_transfer(
            connection, transfer.id, COMPLETED, now, provider_tx_id=provider_tx_id, completed_at=now,
            amount_minor=amount_out, game_amount_minor=game_out.amount_minor, fx_rate=rate,
            fx_residue_minor=conversion.residue.amount_minor, entry_id=posted.entry_id,
        ):
            raise InvalidStateError(f"transfer {transfer.id} was finished concurrently")  # rolls the settle back
        move(connection, session, CLOSED, closed_at=now, amount_out_minor=amount_out,
             game_amount_out_minor=game_out.amount_minor, next_attempt_at=None, stuck=False)
        _check_conservation(connection, session, transfer, game_out, now)
        _check_review(connection, self.policies.get(session.provider), session, transfer, game_out,
                      conversion.target, now)


def _convert_back(connection: Connection, session: Row, game_out: Money, at: dt.datetime) -> tuple[Conversion, str | None]:
    """``game_out`` in the wallet currency, and the rate used (None: same currency)."""
    from transfer_wallet.fx import rate_at

    wallet_ccy = currency(session.wallet_currency)
    if session.game_currency == session.wallet_currency:
        return convert(game_out, wallet_ccy, Decimal(1)), None
    try:
        rate_value = rate_at(connection, session.game_currency, session.wallet_currency, at).rate
    except NotFoundError:  # the money is back already: fall back to the inverse of the rate we used in
        rate_in = _transfer_in_rate(connection, session.id)
        rate_value = parse_rate((Decimal(1) / rate_in).quantize(Decimal("1e-12"), rounding=ROUND_FLOOR, context=Context(prec=40)))
    return convert(game_out, wallet_ccy, rate_value), str(rate_value)


def _transfer_in_rate(connection: Connection, session_id: str) -> Decimal:
    """The FX rate stored on the session's transfer-in (wallet -> game)."""
    rate = connection.execute(
        select(transfers_table.c.fx_rate).where(transfers_table.c.session_id == session_id, transfers_table.c.direction == "IN")
    ).scalar()
    if not rate:
        raise NotFoundError(f"no FX rate recorded for session {session_id}")
    return Decimal(rate)


def _check_conservation(connection: Connection, session: Row, transfer: Row, game_out: Money, now: dt.datetime) -> None:
    """A mirrored session must return what its mirrored play left; any difference goes to finance."""
    if not session.mirrored or game_out.amount_minor == session.game_balance_minor:
        return
    expected = Money(session.game_balance_minor, game_out.currency)
    discrepancies.record(connection, Finding(
        kind="SESSION_CONSERVATION", provider=session.provider, session_id=session.id, transfer_id=transfer.id,
        player_id=session.player_id, currency=session.game_currency, expected_minor=session.game_balance_minor,
        actual_minor=game_out.amount_minor,
        detail=(f"provider returned {game_out} but transfer-in - bets + wins + refunds = {expected} "
                f"(difference {game_out - expected})"),
    ), now=now)


def review_reason(policy: SessionPolicy | None, game_in: Money, game_out: Money, wallet_out: Money) -> str | None:
    """Why a transfer-out needs a human look (too large a multiple or amount), or None."""
    if policy is None:
        return None
    multiple = policy.review_out_multiple
    if multiple is not None and game_out.amount_minor > multiple * game_in.amount_minor:
        return f"transfer-out {game_out} is more than {multiple} times the transfer-in {game_in}"
    return amount_review_reason(policy, (game_out, wallet_out))


def amount_review_reason(policy: SessionPolicy, amounts: Sequence[Money]) -> str | None:
    """Why one of ``amounts`` (what came back, in the game and the wallet currency) is above its review amount."""
    for amount in amounts:
        threshold = policy.review_out_amounts.get(amount.currency.code)
        if threshold is not None and amount.amount_minor > threshold:
            return f"transfer-out {amount} is above the review amount {Money(threshold, amount.currency)}"
    return None


def _check_review(
    connection: Connection, policy: SessionPolicy | None, session: Row, transfer: Row,
    game_out: Money, wallet_out: Money, now: dt.datetime,
) -> None:
    """Book what the provider returned, but flag an outsized transfer-out for review."""
    game_in = Money(session.game_amount_in_minor, game_out.currency)
    reason = review_reason(policy, game_in, game_out, wallet_out)
    if reason is None:
        return
    discrepancies.record(connection, Finding(
        kind="TRANSFER_OUT_REVIEW", provider=session.provider, session_id=session.id, transfer_id=transfer.id,
        player_id=session.player_id, currency=session.game_currency, expected_minor=session.game_amount_in_minor,
        actual_minor=game_out.amount_minor, detail=reason,
    ), now=now)

"""A transfer-out far above what went in is booked as the provider returned it, and flagged for review."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from transfer_wallet import fx
from transfer_wallet.ledger import check_ledger
from transfer_wallet.models import Discrepancy
from transfer_wallet.money import Money
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.sessions.settlement import review_reason
from transfer_wallet.wallet import Wallet

from session_switch import db  # noqa: F401  (sqlite, postgres with the server steps, postgres with the Python steps)

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def eur(text: str) -> Money:
    return Money.parse(text, "EUR", allow_zero=True)


def flagged(db) -> list:
    table = Discrepancy.__table__  # type: ignore[attr-defined]
    with db.engine.connect() as connection:
        return list(connection.execute(select(table).order_by(table.c.id)))


def story(db, policy: SessionPolicy, amount_in: str, provider_adds: str) -> tuple[SessionManager, str]:
    """P1 brings ``amount_in`` to acme; the provider's game wallet then grows by ``provider_adds`` unmirrored."""
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="dep-1")
    acme = InMemoryProvider(name="acme", clock=lambda: T0)
    manager = SessionManager(db, {"acme": acme}, {"acme": policy}, clock=lambda: T0)
    session = manager.open_session("P1", "acme", amount_in, now=T0)
    if Money.parse(provider_adds, "EUR", allow_zero=True).amount_minor:
        acme.play("P1", bet=eur("0.00"), win=eur(provider_adds))
    return manager, session.id


def test_a_withdraw_all_of_99999_for_a_10_euro_session_is_booked_and_flagged(db):
    manager, session_id = story(db, SessionPolicy("EUR"), "10.00", "99989.00")

    closed = manager.close_session(session_id, now=T0)

    assert closed.status == "closed" and closed.amount_out == eur("99999.00")  # money moves as the provider said
    assert Wallet(db).balance("P1").available == eur("100089.00")
    [review] = flagged(db)
    assert (review.kind, review.expected_minor, review.actual_minor) == ("TRANSFER_OUT_REVIEW", 1000, 9_999_900)
    assert review.detail == "transfer-out 99999.00 EUR is more than 10 times the transfer-in 10.00 EUR"
    assert review.transfer_id == f"{session_id}-out1" and review.session_id == session_id
    assert check_ledger(db).clean


def test_exactly_the_multiple_is_not_flagged_one_cent_more_is(db):
    manager, first = story(db, SessionPolicy("EUR", review_out_multiple=Decimal(3)), "10.00", "20.00")
    assert manager.close_session(first, now=T0).amount_out == eur("30.00")
    assert flagged(db) == []
    second = manager.open_session("P1", "acme", "10.00", now=T0).id
    manager.providers["acme"].play("P1", bet=eur("0.00"), win=eur("20.01"))  # type: ignore[attr-defined]
    assert manager.close_session(second, now=T0).amount_out == eur("30.01")
    assert [r.kind for r in flagged(db)] == ["TRANSFER_OUT_REVIEW"]


def test_an_absolute_review_amount_per_currency_flags_without_any_multiple(db):
    policy = SessionPolicy("EUR", review_out_multiple=None, review_out_amounts={"EUR": 5000})  # 50.00 EUR
    manager, session_id = story(db, policy, "40.00", "10.01")

    manager.close_session(session_id, now=T0)

    [review] = flagged(db)
    assert review.detail == "transfer-out 50.01 EUR is above the review amount 50.00 EUR"


def test_the_review_amount_also_applies_to_the_converted_wallet_amount(db):
    fx.set_rate(db, "EUR", "USD", "2", effective_at=T0 - dt.timedelta(days=1))
    fx.set_rate(db, "USD", "EUR", "0.5", effective_at=T0 - dt.timedelta(days=1))
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="dep-1")
    usd = InMemoryProvider(name="dollarama", currency_code="USD", clock=lambda: T0)
    policy = SessionPolicy("USD", review_out_multiple=None, review_out_amounts={"EUR": 1500})  # 15.00 EUR
    manager = SessionManager(db, {"dollarama": usd}, {"dollarama": policy}, clock=lambda: T0)
    session = manager.open_session("P1", "dollarama", "10.00", now=T0)  # 20.00 USD in
    usd.play("P1", bet=Money.parse("0.01", "USD"), win=Money.parse("12.01", "USD"))  # 32.00 USD = 16.00 EUR

    closed = manager.close_session(session.id, now=T0)

    assert closed.amount_out == eur("16.00")
    [review] = flagged(db)
    assert review.detail == "transfer-out 16.00 EUR is above the review amount 15.00 EUR"


def test_a_loss_or_a_modest_win_is_never_flagged(db):
    manager, session_id = story(db, SessionPolicy("EUR", review_out_amounts={"EUR": 10_000}), "50.00", "0.00")
    assert manager.close_session(session_id, now=T0).amount_out == eur("50.00")
    assert flagged(db) == []


@pytest.mark.parametrize(("game_out", "reason"), [
    ("100.00", None),
    ("100.01", "transfer-out 100.01 EUR is more than 10 times the transfer-in 10.00 EUR"),
])
def test_the_review_rule_on_literal_amounts(game_out, reason):
    assert review_reason(SessionPolicy("EUR"), eur("10.00"), eur(game_out), eur(game_out)) == reason


def test_no_policy_means_no_review():
    assert review_reason(None, eur("1.00"), eur("99999.00"), eur("99999.00")) is None


def test_a_repeated_open_key_with_an_amount_a_new_open_would_refuse_is_refused_not_replayed(db):
    from transfer_wallet.errors import ValidationError
    from transfer_wallet.money import MoneyError, currency

    manager = SessionManager(db, {"acme": InMemoryProvider(name="acme")}, {"acme": SessionPolicy("EUR")})
    wallet = Wallet(db)
    wallet.create_player("RC1", "EUR")
    wallet.deposit("RC1", "100.00", reference="rc1")
    first = manager.open_session("RC1", "acme", "10.00", key="rc-K")
    # the request digest cannot tell these from the first open (no currency, "1E+1" normalises to 10)
    with pytest.raises(ValidationError, match="amount is in USD"):
        manager.open_session("RC1", "acme", Money(1000, currency("USD")), key="rc-K")
    with pytest.raises(MoneyError, match="exponent"):
        manager.open_session("RC1", "acme", "1E+1", key="rc-K")
    assert manager.open_session("RC1", "acme", "10.00", key="rc-K").id == first.id  # a true repeat still replays
    assert wallet.balance("RC1").locked == Money(1000, currency("EUR"))
    assert check_ledger(db).clean

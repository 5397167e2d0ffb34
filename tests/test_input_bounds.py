"""Bounds on what the library accepts: instants, FX rates, converted amounts, NUL bytes.

Each of these overflowed somewhere deeper (a ``datetime`` past year 9999, a BigInteger
column, a database driver refusing NUL) before the library said no in one line.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from transfer_wallet import fx
from transfer_wallet.errors import ValidationError
from transfer_wallet.money import MAX_AMOUNT_MINOR, Money, MoneyError, convert, currency, parse_rate
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.timeutil import check_instant, parse_instant
from transfer_wallet.wallet import Wallet

UTC = dt.timezone.utc


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                                  "1999-12-31T23:59:59+00:00", "3000-01-01T00:00:00Z"])
def test_an_instant_outside_the_years_2000_to_2999_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(ValidationError, match="outside the years 2000-2999") as refused:
        parse_instant(text, "--now")
    assert str(refused.value).startswith("--now '") and "\n" not in str(refused.value)


def test_an_instant_is_read_in_utc_whatever_its_offset() -> None:
    assert parse_instant("2026-11-24T13:00:00+01:00") == dt.datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert parse_instant("2026-11-24T12:00:00Z") == dt.datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert parse_instant("2999-12-31T23:59:59+00:00").year == 2999
    assert parse_instant("2000-01-01T01:00:00+01:00") == dt.datetime(2000, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("text", "message"), [("2026-11-24T12:00:00", "needs a UTC offset"),
                                               ("yesterday", "is not an ISO 8601 date-time"),
                                               ("2026-11-24T12:00:00+00:00\x00", "is not an ISO 8601"),
                                               ("2026-11-24\n12:00", "is not an ISO 8601")])
def test_an_instant_without_offset_or_not_iso_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        parse_instant(text, "--effective-at")
    assert "\n" not in str(refused.value)


def test_a_date_without_offset_is_utc_where_that_is_allowed() -> None:
    assert parse_instant("2027-01-01", "self-exclusion end", naive_is_utc=True) == dt.datetime(2027, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="outside the years"):
        parse_instant("9999-12-31", "self-exclusion end", naive_is_utc=True)


def test_an_aware_datetime_from_python_is_bounded_too() -> None:
    with pytest.raises(ValidationError, match="outside"):
        check_instant(dt.datetime.max.replace(tzinfo=dt.timezone(-dt.timedelta(hours=1))), "effective_at")
    with pytest.raises(ValidationError, match="needs a UTC offset"):
        check_instant(dt.datetime(2026, 11, 24), "effective_at")


def test_the_rate_that_overflowed_the_next_session_open_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MoneyError, match="at most 1000000"):
        fx.set_rate(db, "EUR", "BRL", "92233720368547758.08")
    assert fx.current_rates(db) == []


def test_a_stored_rate_is_at_least_the_inverse_of_the_largest_rate(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="at least 0.000001"):
        fx.set_rate(db, "VND", "KWD", "0.0000009")
    stored = fx.set_rate(db, "VND", "KWD", "0.000001", effective_at=dt.datetime(2026, 11, 24, tzinfo=UTC))
    assert stored.rate == Decimal("0.000001")
    assert fx.set_rate(db, "KWD", "VND", "1000000").rate == Decimal(1_000_000)
    assert parse_rate(Decimal(1) / stored.rate) == Decimal(1_000_000)  # the settlement fallback stays valid


def test_set_rate_refuses_an_effective_instant_at_the_calendar_limit(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="outside the years"):
        fx.set_rate(db, "EUR", "USD", "1.08", effective_at=dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))))


def test_a_conversion_beyond_the_largest_amount_is_a_money_error_not_an_overflow() -> None:
    largest = Money(MAX_AMOUNT_MINOR, currency("KWD"))
    with pytest.raises(MoneyError, match="too large to convert"):
        convert(largest, "VND", Decimal(1_000_000))
    small = convert(Money.parse("1.000", "KWD"), "VND", Decimal(1_000_000))
    assert small.target == Money.parse("1000000", "VND")


def test_a_session_open_that_would_convert_beyond_the_largest_amount_is_refused_and_locks_nothing(db) -> None:  # type: ignore[no-untyped-def]
    wallet = Wallet(db)
    wallet.create_player("P1", "KWD")
    wallet.deposit("P1", "900000000000.000", reference="dep-1")
    fx.set_rate(db, "KWD", "VND", "1000000", effective_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    manager = SessionManager(db, {"acme": InMemoryProvider(name="acme", currency_code="VND")}, {"acme": SessionPolicy("VND")})
    with pytest.raises(MoneyError, match="too large to convert"):
        manager.open_session("P1", "acme", "900000000000.000")
    balance = wallet.balance("P1")
    assert (balance.available.format(), balance.locked.format()) == ("900000000000.000", "0.000")


@pytest.mark.parametrize("value", ["P\x00", "\x00", "P1\x00\n"])
def test_nul_bytes_never_reach_the_database(db, value: str) -> None:  # type: ignore[no-untyped-def]
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    with pytest.raises(ValidationError, match="invalid player id"):
        wallet.create_player(value, "EUR")
    with pytest.raises(ValidationError, match="invalid reference"):
        wallet.deposit("P1", "1.00", reference=value)
    with pytest.raises(MoneyError, match="unknown currency"):
        wallet.create_player("P2", "EU\x00")
    with pytest.raises(ValidationError):
        wallet.deposit("P1", "1.00\x00")
    assert wallet.balance("P1").available.format() == "0.00"


def test_money_has_a_short_repr() -> None:
    assert repr(Money.parse("12.50", "EUR")) == "Money('12.50 EUR')"
    assert repr(Money(-5, currency("JPY"))) == "Money('-5 JPY')"

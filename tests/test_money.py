"""Money: currencies, strict parsing, exact formatting, arithmetic and FX conversion.

The examples use literal amounts in currencies with 0 (JPY), 2 (EUR, USD), 3 (KWD, BHD)
and 4 (CLF) decimals; the property tests check the conversion invariants against exact
``Fraction`` arithmetic, independently of the ``Decimal`` code under test.
"""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal
from fractions import Fraction
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfer_wallet.errors import TransferWalletError, ValidationError
from transfer_wallet.money import (
    MAX_AMOUNT_MINOR,
    MAX_RATE,
    Conversion,
    Currency,
    CurrencyMismatchError,
    Money,
    MoneyError,
    all_currencies,
    convert,
    currency,
    parse_rate,
)

EUR = currency("EUR")
USD = currency("USD")
JPY = currency("JPY")
KWD = currency("KWD")
BHD = currency("BHD")
CLF = currency("CLF")


def eur(text: str) -> Money:
    return Money.parse(text, EUR, allow_zero=True)


# --- currencies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exponent", "name"),
    [("JPY", 0, "Yen"), ("EUR", 2, "Euro"), ("USD", 2, "US Dollar"), ("KWD", 3, "Kuwaiti Dinar"),
     ("BHD", 3, "Bahraini Dinar"), ("CLF", 4, "Unidad de Fomento")],
)
def test_a_currency_knows_its_minor_unit_exponent(code: str, exponent: int, name: str) -> None:
    assert currency(code) == Currency(code, exponent, name)


def test_currency_codes_are_looked_up_case_insensitively() -> None:
    assert currency("eur") is currency("EUR")
    assert currency("Jpy") is JPY
    assert currency(" kwd ") is KWD


def test_every_active_iso_currency_with_minor_units_is_available() -> None:
    currencies = all_currencies()
    codes = [c.code for c in currencies]
    assert len(currencies) >= 150
    assert codes == sorted(codes)
    assert len(set(codes)) == len(codes)
    assert all(len(code) == 3 and code.isascii() and code.isalpha() and code.isupper() for code in codes)
    assert {c.exponent for c in currencies} <= {0, 2, 3, 4}
    assert all(currency(c.code) == c for c in currencies)


@pytest.mark.parametrize("code", ["XAU", "XDR", "XXX", "XTS"])
def test_units_without_minor_units_such_as_gold_are_not_money(code: str) -> None:
    with pytest.raises(MoneyError, match=f"unknown currency '{code}'"):
        currency(code)


@pytest.mark.parametrize("code", ["ABC", "EURO", "EU", "", "E1R", "€"])
def test_an_unknown_or_malformed_currency_code_is_refused_by_name(code: str) -> None:
    with pytest.raises(MoneyError) as excinfo:
        currency(code)
    assert str(excinfo.value) == f"unknown currency {code!r}"


@pytest.mark.parametrize("code", [None, 978, b"EUR"])
def test_a_currency_code_that_is_not_text_is_a_money_error(code: object) -> None:
    with pytest.raises(MoneyError, match="currency code must be a string"):
        currency(code)  # type: ignore[arg-type]


def test_money_errors_belong_to_the_validation_branch_of_the_error_tree() -> None:
    assert issubclass(MoneyError, ValidationError)
    assert issubclass(MoneyError, TransferWalletError)
    assert issubclass(MoneyError, ValueError)
    assert issubclass(CurrencyMismatchError, MoneyError)


# --- parsing user input --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "amount_minor"),
    [("12.50", "EUR", 1250), ("12", "EUR", 1200), ("0.5", "EUR", 50), ("12.5", "EUR", 1250),
     ("  7.25\n", "EUR", 725), ("007.50", "EUR", 750), ("1200", "JPY", 1200), ("1.005", "KWD", 1005),
     ("0.125", "BHD", 125), ("1.2345", "CLF", 12345), ("10000000000000.00", "EUR", MAX_AMOUNT_MINOR)],
)
def test_a_plain_decimal_in_major_units_parses_exactly(text: str, code: str, amount_minor: int) -> None:
    assert Money.parse(text, code) == Money(amount_minor, currency(code))


def test_parse_takes_a_currency_or_its_code() -> None:
    assert Money.parse("3.10", "eur") == Money.parse("3.10", EUR) == Money(310, EUR)


def test_zero_is_refused_unless_the_caller_allows_it() -> None:
    with pytest.raises(MoneyError, match="must be greater than zero"):
        Money.parse("0.00", EUR)
    assert Money.parse("0.00", EUR, allow_zero=True) == Money.zero(EUR)
    assert Money.parse("0", JPY, allow_zero=True) == Money(0, JPY)


REJECTED = [
    ("", "EUR", "amount is empty"),
    ("   ", "EUR", "amount is empty"),
    ("-5", "EUR", "amount must be positive"),
    ("-0.01", "EUR", "amount must be positive"),
    ("0", "EUR", "amount '0' must be greater than zero"),
    ("NaN", "EUR", "amount 'NaN' is not a finite number"),
    ("nan", "EUR", "not a finite number"),
    ("sNaN", "EUR", "not a finite number"),
    ("inf", "EUR", "not a finite number"),
    ("Infinity", "EUR", "not a finite number"),
    ("-inf", "EUR", "not a finite number"),
    ("1e400", "EUR", "amount '1e400' uses exponent notation"),
    ("1e2", "EUR", "exponent notation"),
    ("1E-2", "EUR", "exponent notation"),
    ("2.5e3", "EUR", "exponent notation"),
    ("12,50", "EUR", "use a dot as the decimal separator: 12.50"),
    ("1,000", "EUR", "amount '1,000' is ambiguous: write 1000, or 1.000 with a decimal dot"),
    ("1,000.00", "EUR", "thousands separators; write digits only: 1000.00"),
    ("1 000", "EUR", "thousands separators"),
    ("1'000", "EUR", "thousands separators"),
    ("+5", "EUR", "amount '+5' must not have a sign"),
    (".5", "EUR", "needs digits on both sides of the dot"),
    ("5.", "EUR", "needs digits on both sides of the dot"),
    ("abc", "EUR", "amount 'abc' is not a plain decimal"),
    ("12.50 EUR", "EUR", "not a plain decimal"),
    ("€12.50", "EUR", "not a plain decimal"),
    ("1.2.3", "EUR", "not a plain decimal"),
    ("0x10", "EUR", "not a plain decimal"),
    ("1.000,50", "EUR", "not a plain decimal"),
    ("١٢", "EUR", "not a plain decimal"),
    ("12.5\n3", "EUR", "not a plain decimal"),
    ("1.234", "EUR", "amount '1.234' has 3 decimals but EUR allows 2"),
    ("1.230", "EUR", "amount '1.230' has 3 decimals but EUR allows 2"),
    ("1.5", "JPY", "amount '1.5' has 1 decimal but JPY allows 0"),
    ("1.0005", "KWD", "has 4 decimals but KWD allows 3"),
    ("10000000000000.01", "EUR", "amount too large"),
    ("1000000000000001", "JPY", "amount too large"),
    ("9" * 5000, "EUR", "amount too large"),
]


@pytest.mark.parametrize(("text", "code", "reason"), REJECTED)
def test_bad_amount_text_is_refused_with_a_one_line_reason(text: str, code: str, reason: str) -> None:
    with pytest.raises(MoneyError) as excinfo:
        Money.parse(text, code)
    message = str(excinfo.value)
    assert reason in message
    assert "\n" not in message
    assert len(message) < 160


@pytest.mark.parametrize("text", [None, 12.5, 1250, Decimal("12.50")])
def test_parse_only_takes_text(text: object) -> None:
    with pytest.raises(MoneyError, match="amount must be text"):
        Money.parse(text, EUR)  # type: ignore[arg-type]


def test_parse_refuses_an_unknown_currency() -> None:
    with pytest.raises(MoneyError, match="unknown currency 'ABC'"):
        Money.parse("12.50", "ABC")


# --- Decimal edge, formatting ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code", "amount_minor"),
    [(Decimal("12.50"), "EUR", 1250), (Decimal("12.500"), "EUR", 1250), (Decimal("-3"), "EUR", -300),
     (Decimal("0"), "EUR", 0), (Decimal("1E+3"), "JPY", 1000), (Decimal("1.005"), "KWD", 1005),
     (Decimal("-10000000000000.00"), "EUR", -MAX_AMOUNT_MINOR)],
)
def test_a_decimal_that_is_whole_minor_units_becomes_money(value: Decimal, code: str, amount_minor: int) -> None:
    assert Money.from_decimal(value, code) == Money(amount_minor, currency(code))


@pytest.mark.parametrize(
    ("value", "code", "reason"),
    [(Decimal("1.005"), "EUR", "amount '1.005' is not a whole number of EUR minor units (2 decimals)"),
     (Decimal("0.5"), "JPY", "not a whole number of JPY minor units"),
     (Decimal("1." + "0" * 80 + "1"), "EUR", "not a whole number of EUR minor units"),
     (Decimal("NaN"), "EUR", "not a finite number"),
     (Decimal("sNaN"), "EUR", "not a finite number"),
     (Decimal("-Infinity"), "EUR", "not a finite number"),
     (Decimal("10000000000000.01"), "EUR", "amount too large"),
     (Decimal("1E+400"), "EUR", "amount too large"),
     (12.5, "EUR", "amount must be a Decimal, not float")],
)
def test_a_decimal_that_is_not_exact_money_is_refused(value: Decimal, code: str, reason: str) -> None:
    with pytest.raises(MoneyError) as excinfo:
        Money.from_decimal(value, code)
    assert reason in str(excinfo.value)


@pytest.mark.parametrize(
    ("money", "decimal_text", "formatted"),
    [(Money(1250, EUR), "12.50", "12.50"), (Money(-300, EUR), "-3.00", "-3.00"), (Money(0, EUR), "0.00", "0.00"),
     (Money(1, EUR), "0.01", "0.01"), (Money(1200, JPY), "1200", "1200"), (Money(1005, KWD), "1.005", "1.005"),
     (Money(1, CLF), "0.0001", "0.0001"),
     (Money(123456789012345678, EUR), "1234567890123456.78", "1234567890123456.78")],
)
def test_money_shows_exactly_its_currency_decimals(money: Money, decimal_text: str, formatted: str) -> None:
    as_decimal = money.to_decimal()
    assert as_decimal == Decimal(decimal_text)
    assert as_decimal.as_tuple().exponent == -money.currency.exponent
    assert money.format() == formatted
    assert str(money) == f"{formatted} {money.currency.code}"


def test_formatting_has_no_thousands_separators_or_currency_code() -> None:
    assert Money(123456789, EUR).format() == "1234567.89"
    assert str(Money(1200, JPY)) == "1200 JPY"


def test_zero_is_nothing_in_the_given_currency() -> None:
    assert Money.zero("KWD") == Money(0, KWD)
    assert not Money.zero(EUR)
    assert Money.zero(EUR).format() == "0.00"


# --- the value object -------------------------------------------------------------------


@pytest.mark.parametrize("amount", [12.5, True, Decimal("12"), "1250", None])
def test_money_refuses_anything_but_an_int_amount_as_a_programmer_error(amount: object) -> None:
    with pytest.raises(TypeError, match="amount_minor must be an int"):
        Money(amount, EUR)  # type: ignore[arg-type]


def test_money_needs_a_currency_object_not_a_code() -> None:
    with pytest.raises(TypeError, match="currency must be a Currency"):
        Money(100, "EUR")  # type: ignore[arg-type]


def test_money_is_an_immutable_hashable_value() -> None:
    price = Money(1250, EUR)
    with pytest.raises(dataclasses.FrozenInstanceError):
        price.amount_minor = 1  # type: ignore[misc]
    assert price == Money(1250, EUR)
    assert price != Money(1250, USD)
    assert len({price, Money(1250, EUR), Money(1250, USD)}) == 2


def test_a_players_deposit_bet_and_win_add_up_in_minor_units() -> None:
    balance = eur("50.00") - eur("12.50") + eur("7.25")
    assert balance == Money(4475, EUR)
    assert -balance == Money(-4475, EUR)
    assert abs(-balance) == balance
    assert bool(balance) and not bool(balance - balance)


def test_amounts_of_one_currency_compare_and_sort() -> None:
    small, large = eur("0.99"), eur("10.00")
    assert small < large and small <= large and large > small and large >= small
    assert small <= eur("0.99") and small >= eur("0.99")
    assert sorted([large, small, eur("5.00")]) == [small, eur("5.00"), large]


@pytest.mark.parametrize(
    ("operation", "verb"),
    [(lambda a, b: a + b, "add"), (lambda a, b: a - b, "subtract"), (lambda a, b: a < b, "compare"),
     (lambda a, b: a <= b, "compare"), (lambda a, b: a > b, "compare"), (lambda a, b: a >= b, "compare")],
)
def test_mixing_currencies_is_a_currency_mismatch(operation: Callable[[Money, Money], object], verb: str) -> None:
    with pytest.raises(CurrencyMismatchError, match=f"cannot {verb} EUR and USD"):
        operation(eur("1.00"), Money(100, USD))


def test_adding_a_bare_number_to_money_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        eur("1.00") + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        eur("1.00") < 1  # type: ignore[operator]


# --- FX rates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.0854", "1.0854"), (" 161.23 ", "161.23"), ("1.085400000000000", "1.0854"), ("100", "100"),
     ("0.000000000001", "0.000000000001"), ("123456.123456789012", "123456.123456789012"), ("1000000", "1000000"),
     (Decimal("1.0854"), "1.0854"), (Decimal("1E+2"), "100"), (Decimal("0.50"), "0.5")],
)
def test_a_rate_is_a_plain_positive_decimal(text: str | Decimal, expected: str) -> None:
    rate = parse_rate(text)
    assert rate == Decimal(expected)
    assert f"{rate:f}" == expected  # plain digits, never "1E+2"


@pytest.mark.parametrize(
    ("text", "reason"),
    [("0", "greater than zero"), ("0.000", "greater than zero"), (Decimal("0"), "greater than zero"),
     ("-1.08", "must be a positive decimal"), (Decimal("-1.08"), "must be a positive decimal"),
     ("abc", "like 1.0854"), ("", "like 1.0854"), ("1,0854", "like 1.0854"), ("+1.08", "like 1.0854"),
     ("1e2", "without exponent notation"), ("1.08E-1", "without exponent notation"),
     ("NaN", "must be a positive decimal"), ("inf", "must be a positive decimal"),
     (Decimal("NaN"), "must be a positive decimal"), (Decimal("Infinity"), "must be a positive decimal"),
     ("0.0000000000001", "at most 12 decimal places"), (Decimal("1E-13"), "at most 12 decimal places"),
     ("1234567890123.123456789012", "at most 24 significant digits"),
     ("1000000.000000000001", "of at most 1000000"), ("92233720368547758.08", "of at most 1000000"),
     (1.0854, "not float")],
)
def test_a_bad_rate_is_refused(text: object, reason: str) -> None:
    with pytest.raises(MoneyError) as excinfo:
        parse_rate(text)  # type: ignore[arg-type]
    message = str(excinfo.value)
    assert message.startswith("rate ") and "must be a positive decimal" in message
    assert reason in message


# --- FX conversion stories ------------------------------------------------------------------


def test_one_yen_buys_no_euro_cent_and_is_all_residue() -> None:
    conversion = convert(Money(1, JPY), "EUR", Decimal("0.0062"))
    assert conversion == Conversion(
        source=Money(1, JPY), target=Money(0, EUR), rate=Decimal("0.0062"),
        consumed=Money(0, JPY), residue=Money(1, JPY), exact_target=Decimal("0.0062"),
    )


def test_ten_euros_buy_ten_dollars_85_with_no_residue() -> None:
    conversion = convert(eur("10.00"), USD, Decimal("1.0854"))
    assert conversion.target == Money(1085, USD)  # 10.854 rounded down
    assert conversion.exact_target == Decimal("10.854")
    assert conversion.consumed == eur("10.00")  # ceil(10.85 / 1.0854) = ceil(9.9963...) = 10.00
    assert conversion.residue == Money.zero(EUR)


def test_161_yen_buy_99_euro_cents_and_one_yen_is_residue() -> None:
    conversion = convert(Money(161, JPY), EUR, Decimal("0.0062"))
    assert conversion.exact_target == Decimal("0.9982")
    assert conversion.target == Money(99, EUR)
    assert conversion.consumed == Money(160, JPY)  # 160 * 0.0062 = 0.992: enough for 0.99
    assert conversion.residue == Money(1, JPY)


def test_one_fils_of_a_dinar_buys_less_than_a_yen_and_is_residue() -> None:
    conversion = convert(Money.parse("1.001", KWD), JPY, Decimal("490.12"))
    assert conversion.exact_target == Decimal("490.61012")
    assert conversion.target == Money(490, JPY)
    assert conversion.consumed == Money.parse("1.000", KWD)
    assert conversion.residue == Money(1, KWD)


def test_converting_nothing_gives_nothing() -> None:
    conversion = convert(Money.zero(EUR), USD, Decimal("1.0854"))
    assert conversion.target == Money.zero(USD)
    assert conversion.consumed == conversion.residue == Money.zero(EUR)


def test_converting_into_the_same_currency_needs_a_rate_of_one() -> None:
    conversion = convert(eur("12.34"), "EUR", Decimal("1.000"))
    assert conversion.target == conversion.consumed == conversion.source == eur("12.34")
    assert conversion.residue == Money.zero(EUR)
    assert conversion.exact_target == Decimal("12.34")
    with pytest.raises(MoneyError, match="rate for EUR -> EUR must be 1, got 1.1"):
        convert(eur("12.34"), EUR, Decimal("1.1"))


@pytest.mark.parametrize(
    ("source", "target_code", "rate", "reason"),
    [(Money(-100, EUR), "USD", Decimal("1.0854"), "cannot convert a negative amount: -1.00 EUR"),
     (Money(MAX_AMOUNT_MINOR + 1, EUR), "USD", Decimal("1.0854"), "amount too large"),
     (Money(100, EUR), "USD", Decimal("0"), "rate '0' must be a positive decimal"),
     (Money(100, EUR), "USD", Decimal("NaN"), "must be a positive decimal"),
     (Money(100, EUR), "ABC", Decimal("1.0854"), "unknown currency 'ABC'")],
)
def test_a_conversion_with_bad_input_is_refused(source: Money, target_code: str, rate: Decimal, reason: str) -> None:
    with pytest.raises(MoneyError) as excinfo:
        convert(source, target_code, rate)
    assert reason in str(excinfo.value)


# --- properties -------------------------------------------------------------------------------

currencies = st.sampled_from(all_currencies())
user_amounts_minor = st.integers(min_value=1, max_value=MAX_AMOUNT_MINOR)
# Any rate parse_rate accepts (<= 24 digits, <= 12 decimals, <= MAX_RATE) plus a dense band of everyday rates.
rates = st.one_of(
    st.builds(lambda coefficient, places: Decimal(f"{coefficient}E-{places}"),
              st.integers(min_value=1, max_value=10**24 - 1), st.integers(min_value=0, max_value=12)),
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("100000"), places=6),
).filter(lambda rate: 0 < rate <= MAX_RATE)


@given(unit=currencies, amount_minor=user_amounts_minor)
def test_any_formatted_amount_parses_back_to_itself(unit: Currency, amount_minor: int) -> None:
    money = Money(amount_minor, unit)
    assert Money.parse(money.format(), unit.code.lower()) == money
    assert Money.parse(f"  {money.format()} ", unit) == money


@given(unit=currencies, amount_minor=st.integers(min_value=-MAX_AMOUNT_MINOR, max_value=MAX_AMOUNT_MINOR))
def test_any_amount_goes_through_decimal_and_back_unchanged(unit: Currency, amount_minor: int) -> None:
    money = Money(amount_minor, unit)
    assert Money.from_decimal(money.to_decimal(), unit) == money


@given(unit=currencies, amount_minor=user_amounts_minor, digit=st.integers(min_value=1, max_value=9))
def test_one_decimal_more_than_the_currency_has_is_always_refused(
    unit: Currency, amount_minor: int, digit: int
) -> None:
    text = Money(amount_minor, unit).format() + ("" if unit.exponent else ".") + str(digit)
    with pytest.raises(MoneyError, match=f"but {unit.code} allows {unit.exponent}"):
        Money.parse(text, unit)


@given(unit=currencies, a=st.integers(-10**18, 10**18), b=st.integers(-10**18, 10**18))
def test_arithmetic_and_order_follow_the_minor_units(unit: Currency, a: int, b: int) -> None:
    first, second = Money(a, unit), Money(b, unit)
    assert (first + second) - second == first
    assert (first < second) == (a < b) and (first >= second) == (a >= b)


@settings(max_examples=500)
@given(
    source_currency=currencies,
    target_currency=currencies,
    amount_minor=st.integers(min_value=0, max_value=MAX_AMOUNT_MINOR),
    rate=rates,
)
def test_every_conversion_keeps_its_invariants(
    source_currency: Currency, target_currency: Currency, amount_minor: int, rate: Decimal
) -> None:
    if source_currency == target_currency:
        rate = Decimal(1)
    source = Money(amount_minor, source_currency)
    source_unit = Fraction(1, 10**source_currency.exponent)
    target_unit = Fraction(1, 10**target_currency.exponent)
    exact = amount_minor * source_unit * Fraction(rate)
    if math.floor(exact / target_unit) > MAX_AMOUNT_MINOR:  # a result that could not be stored
        with pytest.raises(MoneyError, match="too large to convert"):
            convert(source, target_currency, rate)
        return
    conversion = convert(source, target_currency, rate)

    target_major = conversion.target.amount_minor * target_unit
    consumed_minor = conversion.consumed.amount_minor

    assert conversion.source == source and conversion.rate == rate
    assert conversion.target.currency == target_currency
    assert conversion.consumed.currency == conversion.residue.currency == source_currency
    assert Fraction(conversion.exact_target) == exact
    # Rounded down, by less than one target minor unit: never credits more than the rate gives.
    assert target_major <= exact < target_major + target_unit
    # The debit splits exactly into what bought the target and what bought nothing.
    assert conversion.consumed + conversion.residue == source
    assert Money.zero(source_currency) <= conversion.residue <= source
    if conversion.target:
        assert conversion.residue < source
    if not source:
        assert not conversion.residue
    # consumed buys exactly the target, and one source minor unit less would not.
    assert math.floor(consumed_minor * source_unit * Fraction(rate) / target_unit) == conversion.target.amount_minor
    if consumed_minor > 0:
        one_less = (consumed_minor - 1) * source_unit * Fraction(rate) / target_unit
        assert math.floor(one_less) < conversion.target.amount_minor

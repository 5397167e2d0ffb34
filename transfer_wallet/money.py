"""Money: currencies, exact amounts in integer minor units, parsing and FX conversion.

An amount is stored as an ``int`` of minor units (cents, fils, yen) together with its
ISO 4217 ``Currency``; ``Decimal`` appears only at the edges (``parse``, ``to_decimal``,
rates). There is no float anywhere: a float cannot hold 0.10 exactly.

Errors (both are ``ValueError`` through ``ValidationError``; the message is one line
that names what is wrong, fit to show to an operator)::

    TransferWalletError
    └── ValidationError
        └── MoneyError               bad amount, currency or rate: show it, change nothing
            └── CurrencyMismatchError  arithmetic or comparison across currencies: a caller bug

Passing a non-int ``amount_minor`` to ``Money`` is a programmer error and raises ``TypeError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

import iso4217

from transfer_wallet.errors import ValidationError

MAX_AMOUNT_MINOR: int = 10**15
"""The largest amount (in minor units) accepted from user input: anything bigger is a typo."""

MAX_RATE_DECIMALS = 12
MAX_RATE_DIGITS = 24
MAX_RATE = Decimal(10**6)
"""The largest FX rate accepted: no two currencies are a million times apart; more is a typo."""

_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_EXPONENT_NOTATION = re.compile(r"[+-]?[0-9]*\.?[0-9]*[eE][+-]?[0-9]+")
_DECIMAL_COMMA = re.compile(r"[0-9]+,[0-9]+")
_THOUSANDS = re.compile(r"[0-9]{1,3}([,' _][0-9]{3})+(\.[0-9]+)?")
_BARE_DOT = re.compile(r"\.[0-9]+|[0-9]+\.")
_NOT_FINITE = {"nan", "snan", "inf", "infinity"}

# Amounts are at most 16 digits and rates at most 24, so 60 digits hold every product
# exactly and leave room for the ceiling division. Contexts are built per call (they carry
# flags) and never come from the thread's global context, which other code may change.
_PRECISION = 60


class MoneyError(ValidationError):
    """An amount, currency code or FX rate is invalid. Show the message; nothing was done."""


class CurrencyMismatchError(MoneyError):
    """Two amounts in different currencies were added, subtracted or compared."""


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency; ``exponent`` is its number of minor-unit decimals."""

    code: str
    exponent: int
    name: str


def _load_currencies() -> dict[str, Currency]:
    # Entries without minor units (XAU, XDR, XXX...) are not money we can hold.
    table: dict[str, Currency] = {}
    for entry in iso4217.Currency:
        if entry.exponent is not None:
            table[entry.code] = Currency(entry.code, entry.exponent, entry.currency_name)
    return table


_CURRENCIES: dict[str, Currency] = _load_currencies()


def _quote(text: object) -> str:
    """``repr`` of user input for a message: always one line, never a wall of text."""
    quoted = repr(text)
    return quoted if len(quoted) <= 40 else quoted[:36] + "...'"


def currency(code: str) -> Currency:
    """The active ISO 4217 currency for ``code`` ("EUR", "eur"); ``MoneyError`` if unknown."""
    if not isinstance(code, str):
        raise MoneyError(f"currency code must be a string like 'EUR', not {type(code).__name__}")
    found = _CURRENCIES.get(code.strip().upper())
    if found is None:
        raise MoneyError(f"unknown currency {_quote(code)}")
    return found


def all_currencies() -> list[Currency]:
    """Every active ISO 4217 currency with minor units, sorted by code."""
    return sorted(_CURRENCIES.values(), key=lambda c: c.code)


def _as_currency(value: Currency | str) -> Currency:
    return value if isinstance(value, Currency) else currency(value)


def _check_size(amount_minor: int, text: str, unit: Currency) -> None:
    if abs(amount_minor) > MAX_AMOUNT_MINOR:
        limit = Money(MAX_AMOUNT_MINOR, unit)
        raise MoneyError(f"amount too large: {text} is more than {limit}")


def _check_plain_positive(stripped: str, quoted: str) -> None:
    """Raise ``MoneyError`` naming the first way ``stripped`` is not a plain positive decimal."""
    if not stripped:
        raise MoneyError("amount is empty")
    if stripped.lstrip("+-").lower() in _NOT_FINITE:
        raise MoneyError(f"amount {quoted} is not a finite number")
    if stripped.startswith("-"):
        raise MoneyError(f"amount must be positive, got {quoted}")
    if stripped.startswith("+"):
        raise MoneyError(f"amount {quoted} must not have a sign")
    if _EXPONENT_NOTATION.fullmatch(stripped):
        raise MoneyError(f"amount {quoted} uses exponent notation; write a plain decimal like 12.50")
    if _DECIMAL_COMMA.fullmatch(stripped):
        with_dot = stripped.replace(",", ".")
        if len(stripped.partition(",")[2]) == 3:  # "1,000": a thousand, or one with a decimal comma?
            thousand = stripped.replace(",", "")
            raise MoneyError(f"amount {quoted} is ambiguous: write {thousand}, or {with_dot} with a decimal dot")
        raise MoneyError(f"amount {quoted} has a comma; use a dot as the decimal separator: {with_dot}")
    if _THOUSANDS.fullmatch(stripped):
        suggestion = re.sub(r"[,' _]", "", stripped)
        raise MoneyError(f"amount {quoted} has thousands separators; write digits only: {suggestion}")
    if _BARE_DOT.fullmatch(stripped):
        raise MoneyError(f"amount {quoted} needs digits on both sides of the dot, like 0.50 or 5.00")
    if not _PLAIN_DECIMAL.fullmatch(stripped):
        raise MoneyError(f"amount {quoted} is not a plain decimal like 12.50 (digits and one dot only)")


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An exact amount: an integer number of minor units of one currency."""

    amount_minor: int
    currency: Currency

    def __post_init__(self) -> None:
        # bool is an int subclass; True cents is a bug, not an amount.
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise TypeError(f"amount_minor must be an int, not {type(self.amount_minor).__name__}")
        if not isinstance(self.currency, Currency):
            raise TypeError(f"currency must be a Currency, not {type(self.currency).__name__}")

    @classmethod
    def parse(cls, text: str, currency: Currency | str, *, allow_zero: bool = False) -> Money:
        """Parse a positive amount in major units ("12.50") typed by a user or read from a report.

        Strict: a plain decimal with a dot and at most the currency's decimals; anything
        else (sign, exponent, comma, separators, NaN) raises ``MoneyError`` saying why.
        """
        unit = _as_currency(currency)
        if not isinstance(text, str):
            raise MoneyError(f"amount must be text like '12.50', not {type(text).__name__}")
        stripped = text.strip()
        quoted = _quote(stripped)
        _check_plain_positive(stripped, quoted)
        whole, _, fraction = stripped.partition(".")
        if len(fraction) > unit.exponent:
            plural = "" if len(fraction) == 1 else "s"
            raise MoneyError(
                f"amount {quoted} has {len(fraction)} decimal{plural} but {unit.code} allows {unit.exponent}"
            )
        # Count digits before int(): 5000 digits must be "too large", not int()'s own ValueError.
        too_long = len(whole.lstrip("0")) > len(str(MAX_AMOUNT_MINOR))
        amount_minor = MAX_AMOUNT_MINOR + 1 if too_long else int(whole + fraction.ljust(unit.exponent, "0"))
        _check_size(amount_minor, quoted, unit)
        if amount_minor == 0 and not allow_zero:
            raise MoneyError(f"amount {quoted} must be greater than zero")
        return cls(amount_minor, unit)

    @classmethod
    def from_decimal(cls, value: Decimal, currency: Currency | str) -> Money:
        """The exact ``Money`` for ``value`` in major units; ``MoneyError`` unless it is whole minor units.

        Any sign is accepted (reports carry refunds); the size guard still applies.
        """
        unit = _as_currency(currency)
        if not isinstance(value, Decimal):
            raise MoneyError(f"amount must be a Decimal, not {type(value).__name__}")
        if not value.is_finite():
            raise MoneyError(f"amount {value} is not a finite number")
        limit = Money(MAX_AMOUNT_MINOR, unit).to_decimal()
        if abs(value) > limit:  # Decimal comparison is exact whatever the context
            raise MoneyError(f"amount too large: {_quote(str(value))} is more than {limit} {unit.code}")
        try:
            amount_minor = _minor_units(value, unit)
        except Inexact:
            raise MoneyError(
                f"amount {_quote(str(value))} is not a whole number of {unit.code} minor units"
                f" ({unit.exponent} decimals)"
            ) from None
        return cls(amount_minor, unit)

    @classmethod
    def zero(cls, currency: Currency | str) -> Money:
        """Nothing, in ``currency``."""
        return cls(0, _as_currency(currency))

    def to_decimal(self) -> Decimal:
        """The amount in major units with exactly ``exponent`` decimals: ``Decimal("12.50")``."""
        sign, digits, _ = Decimal(self.amount_minor).as_tuple()
        return Decimal((sign, digits, -self.currency.exponent))  # built from parts: exact at any size

    def format(self) -> str:
        """The amount as plain text in major units: "12.50", "-3.00", "1200" (JPY), "1.005" (KWD)."""
        return f"{self.to_decimal():f}"

    def __str__(self) -> str:
        return f"{self.format()} {self.currency.code}"

    def __repr__(self) -> str:
        return f"Money('{self}')"

    def _minor_of(self, other: object, operation: str) -> int:
        """``other.amount_minor`` once ``other`` is known to be Money in this currency."""
        if not isinstance(other, Money):
            raise TypeError(f"cannot {operation} Money and {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"cannot {operation} {self.currency.code} and {other.currency.code}")
        return other.amount_minor

    def __add__(self, other: Money) -> Money:
        return Money(self.amount_minor + self._minor_of(other, "add"), self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount_minor - self._minor_of(other, "subtract"), self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount_minor), self.currency)

    def __bool__(self) -> bool:
        return self.amount_minor != 0

    def __lt__(self, other: Money) -> bool:
        return self.amount_minor < self._minor_of(other, "compare")

    def __le__(self, other: Money) -> bool:
        return self.amount_minor <= self._minor_of(other, "compare")

    def __gt__(self, other: Money) -> bool:
        return self.amount_minor > self._minor_of(other, "compare")

    def __ge__(self, other: Money) -> bool:
        return self.amount_minor >= self._minor_of(other, "compare")


def _minor_units(value: Decimal, unit: Currency, rounding: str | None = None) -> int:
    """``value`` (major units) as whole minor units of ``unit``, rounded with ``rounding``.

    Without a rounding mode the value must already be whole minor units: ``decimal.Inexact``
    is raised rather than a digit silently dropped.
    """
    traps = [InvalidOperation, Overflow] if rounding else [InvalidOperation, Overflow, Inexact]
    context = Context(prec=_PRECISION, rounding=rounding or ROUND_HALF_EVEN, traps=traps)
    whole = value.quantize(Decimal((0, (1,), -unit.exponent)), context=context)
    return int(whole.scaleb(unit.exponent, context=context))


def _plain(value: Decimal) -> Decimal:
    """``value`` without trailing fractional zeros or a positive exponent (1.0850 -> 1.085, 1E+2 -> 100)."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: checked by the caller
    if exponent > 0:
        return Decimal((sign, digits + (0,) * exponent, 0))
    while exponent < 0 and digits[-1] == 0:
        digits, exponent = digits[:-1] or (0,), exponent + 1
    return Decimal((sign, digits, exponent))


def parse_rate(text: str | Decimal) -> Decimal:
    """An FX rate (target major units per source major unit) as a plain positive ``Decimal``.

    Text must be a plain decimal ("1.0854"); at most 12 decimals and 24 significant digits
    once trailing zeros are dropped, and at most ``MAX_RATE``. Anything else raises ``MoneyError``.
    """
    if isinstance(text, str):
        stripped = text.strip()
        quoted = _quote(stripped)
        if stripped.lstrip("+-").lower() in _NOT_FINITE:
            raise MoneyError(f"rate {quoted} must be a positive decimal, not {stripped}")
        if _EXPONENT_NOTATION.fullmatch(stripped):
            raise MoneyError(f"rate {quoted} must be a positive decimal without exponent notation, like 1.0854")
        if not _PLAIN_DECIMAL.fullmatch(stripped):
            raise MoneyError(f"rate {quoted} must be a positive decimal like 1.0854")
        value = Decimal(stripped)
    elif isinstance(text, Decimal):
        quoted = _quote(str(text))
        if not text.is_finite() or text.is_signed():
            raise MoneyError(f"rate {quoted} must be a positive decimal")
        value = text
    else:
        raise MoneyError(f"rate must be a positive decimal string or Decimal, not {type(text).__name__}")
    if value == 0:
        raise MoneyError(f"rate {quoted} must be a positive decimal greater than zero")
    rate = _plain(value)
    sign, digits, exponent = rate.as_tuple()
    assert isinstance(exponent, int)
    if -exponent > MAX_RATE_DECIMALS:
        raise MoneyError(f"rate {quoted} must be a positive decimal with at most {MAX_RATE_DECIMALS} decimal places")
    if len(digits) > MAX_RATE_DIGITS:
        raise MoneyError(f"rate {quoted} must be a positive decimal with at most {MAX_RATE_DIGITS} significant digits")
    if rate > MAX_RATE:
        raise MoneyError(f"rate {quoted} must be a positive decimal of at most {MAX_RATE:f}")
    return rate


@dataclass(frozen=True, slots=True)
class Conversion:
    """The result of an FX conversion; ``consumed + residue == source``.

    ``target`` is rounded down, so the operator never credits more than the rate gives;
    ``consumed`` is the least of ``source`` that buys ``target``; ``residue`` bought nothing
    and is booked to the FX rounding account. ``exact_target`` is kept for the audit trail.
    """

    source: Money
    target: Money
    rate: Decimal
    consumed: Money
    residue: Money
    exact_target: Decimal


def convert(source: Money, target_currency: Currency | str, rate: Decimal) -> Conversion:
    """Convert ``source`` at ``rate`` (target major units per source major unit), rounding down.

    ``source`` must be >= 0 and within ``MAX_AMOUNT_MINOR``; ``rate`` goes through ``parse_rate``;
    a result above ``MAX_AMOUNT_MINOR`` is a ``MoneyError`` (it could not be stored).
    In the same currency the rate must be 1 and nothing is rounded.
    """
    rate = parse_rate(rate)
    unit = _as_currency(target_currency)
    if source.amount_minor < 0:
        raise MoneyError(f"cannot convert a negative amount: {source}")
    _check_size(source.amount_minor, source.format(), source.currency)
    if unit == source.currency:
        if rate != 1:
            raise MoneyError(f"rate for {unit.code} -> {unit.code} must be 1, got {rate}")
        nothing = Money.zero(unit)
        return Conversion(source, source, rate, source, nothing, source.to_decimal())

    exact = Context(prec=_PRECISION, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
    exact_target = exact.multiply(source.to_decimal(), rate)  # Inexact is trapped: this is exact
    target = Money(_minor_units(exact_target, unit, ROUND_FLOOR), unit)
    if target.amount_minor > MAX_AMOUNT_MINOR:
        raise MoneyError(f"{source} at rate {rate} is more than {Money(MAX_AMOUNT_MINOR, unit)}: too large to convert")
    # The least whole source amount s with floor(s * rate) == target is ceil(target / rate).
    # The quotient is rounded up as well, so the ceiling can never land one unit short.
    upward = Context(prec=_PRECISION, rounding=ROUND_CEILING, traps=[InvalidOperation, DivisionByZero, Overflow])
    consumed_major = upward.divide(target.to_decimal(), rate)
    consumed = Money(_minor_units(consumed_major, source.currency, ROUND_CEILING), source.currency)
    assert consumed <= source, (source, rate, consumed)
    return Conversion(source, target, rate, consumed, source - consumed, exact_target)

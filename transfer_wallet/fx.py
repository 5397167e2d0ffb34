"""Stored FX rates: set them, read the one in force, convert at it.

A rate says how many ``quote`` major units one ``base`` major unit buys and is
effective from ``effective_at`` until a later rate for the same pair. Rates are
stored as exact decimal text, between ``MIN_STORED_RATE`` and ``MAX_RATE`` so
that a rate and its inverse are both valid (settlement falls back to the
inverse of the transfer-in rate when no reverse rate is stored).

The session manager reads the rate in force with :func:`rate_at` when it opens a
session (wallet -> game currency) and when it settles (game -> wallet, at the
instant the provider applied the transfer-out), converts with
:func:`transfer_wallet.money.convert` (rounding in the operator's favour) and
books the residue to the FX rounding account itself. :func:`convert_at` does
the read and the conversion in one call for other callers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from transfer_wallet.db import Database
from transfer_wallet.errors import NotFoundError, ValidationError
from transfer_wallet.models import FxRate, table_of, utc_now
from transfer_wallet.money import MAX_RATE, Conversion, Currency, Money, convert, currency, parse_rate
from transfer_wallet.timeutil import check_instant

_rates = table_of(FxRate)

MIN_STORED_RATE = 1 / MAX_RATE
"""The smallest rate stored: its inverse is at most ``MAX_RATE``."""


@dataclass(frozen=True, slots=True)
class Rate:
    """One stored rate: ``quote`` per 1 ``base``, effective from ``effective_at``."""

    base: str
    quote: str
    rate: Decimal
    effective_at: dt.datetime

    def as_dict(self) -> dict[str, str]:
        return {"base": self.base, "quote": self.quote, "rate": str(self.rate), "effective_at": self.effective_at.isoformat()}


def _pair(base: str, quote: str) -> tuple[Currency, Currency]:
    base_ccy, quote_ccy = currency(base), currency(quote)
    if base_ccy == quote_ccy:
        raise ValidationError(f"an FX rate needs two different currencies, got {base_ccy.code}/{quote_ccy.code}")
    return base_ccy, quote_ccy


def set_rate(db: Database, base: str, quote: str, rate: str | Decimal, *, effective_at: dt.datetime | None = None) -> Rate:
    """Store a rate; a second rate for the same pair and instant is a ``ValidationError``.

    The rate must be between ``MIN_STORED_RATE`` and ``MAX_RATE``; ``effective_at`` (default
    now) must be aware and within the years 2000-2999.
    """
    base_ccy, quote_ccy = _pair(base, quote)
    value = parse_rate(rate)
    if value < MIN_STORED_RATE:
        raise ValidationError(f"rate {value} must be at least {MIN_STORED_RATE:f}: its inverse must be a valid rate too")
    when = check_instant(effective_at or utc_now(), "effective_at")

    def work(connection: Connection) -> Rate:
        exists = connection.execute(
            select(_rates.c.id).where(
                and_(_rates.c.base == base_ccy.code, _rates.c.quote == quote_ccy.code, _rates.c.effective_at == when)
            )
        ).first()
        if exists:
            raise ValidationError(f"a {base_ccy.code}->{quote_ccy.code} rate is already effective at {when.isoformat()}")
        connection.execute(
            _rates.insert().values(base=base_ccy.code, quote=quote_ccy.code, rate=str(value), effective_at=when, created_at=utc_now())
        )
        return Rate(base_ccy.code, quote_ccy.code, value, when.astimezone(dt.timezone.utc))

    return db.transaction(work)


def rate_at(connection: Connection, base: str, quote: str, at: dt.datetime | None = None) -> Rate:
    """The rate in force at ``at`` (default now); ``NotFoundError`` when there is none."""
    base_ccy, quote_ccy = _pair(base, quote)
    when = at or utc_now()
    row = connection.execute(
        select(_rates.c.rate, _rates.c.effective_at)
        .where(_rates.c.base == base_ccy.code, _rates.c.quote == quote_ccy.code, _rates.c.effective_at <= when)
        .order_by(_rates.c.effective_at.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFoundError(f"no {base_ccy.code}->{quote_ccy.code} rate effective at {when.isoformat()}; set one with `tw fx set`")
    return Rate(base_ccy.code, quote_ccy.code, Decimal(row.rate), row.effective_at)


def convert_at(connection: Connection, amount: Money, target: str, at: dt.datetime | None = None) -> tuple[Conversion, Rate]:
    """Convert ``amount`` into ``target`` at the stored rate in force at ``at``."""
    rate = rate_at(connection, amount.currency.code, target, at)
    return convert(amount, target, rate.rate), rate


def current_rates(db: Database, at: dt.datetime | None = None) -> list[Rate]:
    """The rate in force for every pair at ``at`` (default now), sorted by pair."""
    when = at or utc_now()

    def work(connection: Connection) -> list[Rate]:
        latest = (
            select(_rates.c.base, _rates.c.quote, func.max(_rates.c.effective_at).label("effective_at"))
            .where(_rates.c.effective_at <= when)
            .group_by(_rates.c.base, _rates.c.quote)
            .subquery()
        )
        rows = connection.execute(
            select(_rates.c.base, _rates.c.quote, _rates.c.rate, _rates.c.effective_at)
            .join(latest, and_(_rates.c.base == latest.c.base, _rates.c.quote == latest.c.quote,
                               _rates.c.effective_at == latest.c.effective_at))
            .order_by(_rates.c.base, _rates.c.quote)
        ).all()
        return [Rate(r.base, r.quote, Decimal(r.rate), r.effective_at) for r in rows]

    return db.transaction(work, readonly=True)

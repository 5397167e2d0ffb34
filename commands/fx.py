"""``tw fx``: stored FX rates."""

from __future__ import annotations

import click

import datetime as dt

from commands._common import INSTANT, CliContext, emit, list_output, pass_cli


@click.group()
def fx() -> None:
    """FX rates used to convert between wallet and game currencies.

    \b
    Example:
      tw fx set EUR USD 1.0854
    """


@fx.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("base")
@click.argument("quote")
@click.argument("rate")
@click.option("--effective-at", type=INSTANT, help="ISO 8601 instant with offset (default: now), e.g. 2026-11-24T00:00:00+00:00.")
@pass_cli
def set_rate(ctx: CliContext, base: str, quote: str, rate: str, effective_at: dt.datetime | None) -> None:
    """Store RATE: how many QUOTE one BASE buys (major units).

    \b
    Example:
      tw fx set EUR USD 1.0854 --effective-at 2026-11-24T00:00:00+00:00
    """
    from transfer_wallet import fx as fx_service

    stored = fx_service.set_rate(ctx.database(), base, quote, rate, effective_at=effective_at)
    emit(ctx, stored.as_dict(), text=f"1 {stored.base} = {stored.rate} {stored.quote} from {ctx.when(stored.effective_at)}")


@fx.command("show")
@list_output
@pass_cli
def show(ctx: CliContext) -> None:
    """Show the rate in force now for every pair.

    \b
    Example:
      tw --json fx show
    """
    from transfer_wallet import fx as fx_service

    rows = [rate.as_dict() for rate in fx_service.current_rates(ctx.database())]
    emit(ctx, {"rates": rows}, rows=rows, columns=["base", "quote", "rate", "effective_at"], title="FX rates")

"""``tw player`` and ``tw wallet``: players and the operator's main wallet."""

from __future__ import annotations

import click

from commands._common import CliContext, emit, list_output, pass_cli


@click.group()
def player() -> None:
    """Players and their wallet currency.

    \b
    Example:
      tw player create P1 --currency EUR
    """


@player.command("create")
@click.argument("player_id")
@click.option("--currency", "currency_code", required=True, help="ISO 4217 code of the player's wallet, e.g. EUR.")
@pass_cli
def create_player(ctx: CliContext, player_id: str, currency_code: str) -> None:
    """Create PLAYER_ID with a main wallet in --currency (safe to repeat).

    \b
    Example:
      tw player create P1 --currency EUR
    """
    from transfer_wallet.wallet import Wallet

    balance = Wallet(ctx.database()).create_player(player_id, currency_code)
    emit(ctx, balance.as_dict(), text=f"player {player_id} ({balance.currency.code}) ready")


@player.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000), help="At most this many players.")
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0), help="Skip this many first.")
@list_output
@pass_cli
def list_players(ctx: CliContext, limit: int, offset: int) -> None:
    """List players with their balances.

    \b
    Example:
      tw player list --limit 20
    """
    from transfer_wallet.wallet import Wallet

    service = Wallet(ctx.database())
    rows = [b.as_dict() for b in service.players(limit=limit, offset=offset)]
    total = len(rows) if offset == 0 and len(rows) < limit else service.player_count()
    emit(ctx, {"players": rows, "total": total}, rows=rows, title="players", total=total, offset=offset, noun="players")


#: Let "-5" reach the amount parser (which explains why it is refused) instead of
#: click reading it as an unknown option.
AMOUNT_ARGUMENTS = {"ignore_unknown_options": True}


@click.group()
def wallet() -> None:
    """The main wallet: cashier deposits and withdrawals, balances.

    \b
    Example:
      tw wallet deposit P1 20.00 --ref dep-1
    """


def _movement(ctx: CliContext, direction: str, player_id: str, amount: str, reference: str | None) -> None:
    from transfer_wallet.wallet import Wallet

    service = Wallet(ctx.database())
    result = getattr(service, direction)(player_id, amount, reference=reference)
    document = result.as_dict()
    document.pop("available_after", None)  # the same value as "available": each value once
    verb = "deposited" if direction == "deposit" else "withdrew"
    note = " (replayed: nothing moved again)" if result.replayed else ""
    emit(
        ctx,
        document,
        text=f"{verb} {amount} {document['currency']} ref {result.reference}{note}; "
        f"available {document['available']}, locked {document['locked']}, total {document['total']}",
    )


@wallet.command(context_settings=AMOUNT_ARGUMENTS)
@click.argument("player_id")
@click.argument("amount")
@click.option("--ref", "reference", help="Cashier reference; repeating it never deposits twice.")
@pass_cli
def deposit(ctx: CliContext, player_id: str, amount: str, reference: str | None) -> None:
    """Deposit AMOUNT (major units, e.g. 12.50) into PLAYER_ID's main wallet.

    \b
    Example:
      tw wallet deposit P1 20.00 --ref dep-1
    """
    _movement(ctx, "deposit", player_id, amount, reference)


@wallet.command(context_settings=AMOUNT_ARGUMENTS)
@click.argument("player_id")
@click.argument("amount")
@click.option("--ref", "reference", help="Cashier reference; repeating it never withdraws twice.")
@pass_cli
def withdraw(ctx: CliContext, player_id: str, amount: str, reference: str | None) -> None:
    """Withdraw AMOUNT from PLAYER_ID's available balance (never below zero).

    \b
    Example:
      tw wallet withdraw P1 13.50 --ref wd-1
    """
    _movement(ctx, "withdraw", player_id, amount, reference)


@wallet.command()
@click.argument("player_id")
@pass_cli
def balance(ctx: CliContext, player_id: str) -> None:
    """Show PLAYER_ID's available, locked and total money.

    \b
    Example:
      tw --json wallet balance P1
    """
    from transfer_wallet.balances import read_balance, validate_player_id

    reader = ctx.reader()  # no SQLAlchemy for a plain SQLite or PostgreSQL URL: a fast start
    validate_player_id(player_id)
    document = reader.run(lambda cursor: read_balance(cursor, player_id)).as_dict()
    emit(ctx, document, title=f"balance of {player_id}")

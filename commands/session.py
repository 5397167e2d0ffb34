"""``tw session`` and ``tw play``: transfer sessions and mirrored play."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from commands._common import CliContext, emit, list_output, pass_cli
from commands._render import Column

if TYPE_CHECKING:
    from transfer_wallet.play import PlayResult
    from transfer_wallet.session_views import SessionView

#: What ``tw session list`` shows; at a narrow width the highest priority numbers go first.
SESSION_COLUMNS = [
    Column("session_id", "id", 0), Column("player_id", "id", 3), Column("provider", "status", 4),
    Column("status", "status", 0), Column("currency", "status", 1), Column("amount_in", "amount", 0),
    Column("game_balance", "amount", 5), Column("amount_out", "amount", 2), Column("opened_at", "time", 1),
]


def _render(ctx: CliContext, view: SessionView, *, rounds: list[dict[str, Any]] | None = None) -> None:
    document = view.as_dict()
    if rounds is not None:
        document["rounds"] = rounds
    if ctx.as_json:
        emit(ctx, document)
        return

    def text() -> str:
        lines = [
            f"session {view.id}: {view.display_status}  player {view.player_id} at {view.provider}",
            f"  in {document['amount_in']} {document['currency']} -> {document['game_amount_in']} {document['game_currency']}"
            f"   game balance {document['game_balance']}   out {document['amount_out'] or '-'}",
            f"  opened {ctx.when(view.opened_at)}   deadline {ctx.when(view.deadline_at)}"
            + (f"   closed {ctx.when(view.closed_at)} ({view.close_reason})" if view.closed_at else ""),
        ]
        if view.failure_reason:
            lines.append(f"  reason: {view.failure_reason}")
        for t in view.transfers:
            lines.append(f"  transfer {t.id} {t.direction} {t.status} amount {t.amount.format() if t.amount else '-'}"
                         f" game {t.game_amount.format() if t.game_amount else '-'} rate {t.fx_rate or '-'}"
                         f" attempts {t.attempts}" + (f" last error: {t.last_error}" if t.last_error else ""))
        for r in rounds or []:
            lines.append(f"  round {r['round_id']} {r['status']} bet {r['bet']} win {r['win']} refund {r['refund']}"
                         f" game {r['game_id'] or '-'}")
        return "\n".join(lines)

    emit(ctx, document, text=text)


@click.group()
def session() -> None:
    """Transfer sessions: move money into a provider and back.

    \b
    Example:
      tw session open P1 --provider acme --amount 50.00 --key open-1
    """


@session.command("open")
@click.argument("player_id")
@click.option("--provider", required=True, help="Provider name from the providers file.")
@click.option("--amount", required=True, help="Amount in the player's currency (major units).")
@click.option("--key", help="Idempotency key: repeating it returns the same session.")
@pass_cli
def open_(ctx: CliContext, player_id: str, provider: str, amount: str, key: str | None) -> None:
    """Lock AMOUNT and transfer it into PROVIDER's game wallet.

    \b
    Example:
      tw session open P1 --provider acme --amount 50.00 --key open-1
    """
    from transfer_wallet.runtime import session_manager

    with session_manager(ctx.database(), ctx.providers_path()) as manager:
        _render(ctx, manager.open_session(player_id, provider, amount, key=key))


@session.command()
@click.argument("session_id")
@click.option("--key", help="Idempotency key of the close.")
@pass_cli
def close(ctx: CliContext, session_id: str, key: str | None) -> None:
    """Transfer everything back out and settle (safe to repeat).

    \b
    Example:
      tw session close s0123456789abcdef0123 --key close-1
    """
    from transfer_wallet.runtime import session_manager

    with session_manager(ctx.database(), ctx.providers_path()) as manager:
        _render(ctx, manager.close_session(session_id, key=key))


@session.command()
@click.argument("session_id")
@pass_cli
def show(ctx: CliContext, session_id: str) -> None:
    """Show a session with its transfers and rounds (game history).

    \b
    Example:
      tw session show s0123456789abcdef0123
    """
    from transfer_wallet.session_views import read_session_and_rounds

    reader = ctx.reader()  # no SQLAlchemy for a plain SQLite or PostgreSQL URL: a fast start
    view, rounds = reader.run(lambda cursor: read_session_and_rounds(cursor, session_id))
    _render(ctx, view, rounds=rounds)


@session.command("list")
@click.option("--status", type=click.Choice(["opening", "active", "closing", "closed", "failed"]))
@click.option("--player", "player_id")
@click.option("--provider")
@click.option("--stuck", is_flag=True, help="Only sessions marked stuck.")
@click.option("--in-doubt", is_flag=True, help="Only sessions with a transfer whose outcome is unknown.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000), help="At most this many sessions.")
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0), help="Skip this many first.")
@list_output
@pass_cli
def list_(ctx: CliContext, status: str | None, player_id: str | None, provider: str | None,
          stuck: bool, in_doubt: bool, limit: int, offset: int) -> None:
    """List sessions, newest first.

    \b
    Example:
      tw session list --status closing --stuck
      tw session list --format tsv --limit 500 --offset 500
    """
    from transfer_wallet.sessions import SessionManager

    manager = SessionManager(ctx.database(), {}, {})
    filters: dict[str, Any] = dict(status=status, player_id=player_id, provider=provider,
                                   stuck=True if stuck else None, in_doubt=in_doubt)
    views = manager.list(**filters, limit=limit, offset=offset)
    total = len(views) if offset == 0 and len(views) < limit else manager.count(**filters)
    rows = []
    for view in views:
        row = view.as_dict()
        row["status"] = view.display_status
        rows.append(row)
    emit(ctx, {"sessions": [v.as_dict() for v in views], "total": total}, rows=rows, columns=SESSION_COLUMNS,
         title="sessions", total=total, offset=offset, noun="sessions")


@click.group()
def play() -> None:
    """Mirror the provider's bets, wins and refunds into a session.

    \b
    Example:
      tw play bet s0123456789abcdef0123 --tx b-1 --round r-1 --amount 2.00
    """


def _play_result(ctx: CliContext, result: PlayResult) -> None:
    document = result.as_dict()
    note = f" ({result.note})" if result.note else ""
    replay = " (replayed)" if result.replayed else ""
    emit(ctx, document, text=f"{result.kind} {document['amount']} {document['currency']} tx {result.provider_tx_id}"
                             f" round {result.round_id}{replay}{note}; game balance {document['game_balance']}")


@play.command()
@click.argument("session_id")
@click.option("--tx", "tx_id", required=True, help="The provider's transaction id (idempotency key).")
@click.option("--round", "round_id", required=True, help="The provider's round id.")
@click.option("--amount", required=True, help="Stake in the game currency.")
@click.option("--game", "game_id", help="Game id, for the history.")
@pass_cli
def bet(ctx: CliContext, session_id: str, tx_id: str, round_id: str, amount: str, game_id: str | None) -> None:
    """Mirror a bet; refused (402) above the session's game balance.

    \b
    Example:
      tw play bet s0123456789abcdef0123 --tx b-1 --round r-1 --amount 2.00 --game slot-1
    """
    from transfer_wallet.play import PlayMirror

    _play_result(ctx, PlayMirror(ctx.database()).bet(session_id, tx_id, round_id, amount, game_id=game_id))


@play.command()
@click.argument("session_id")
@click.option("--tx", "tx_id", required=True, help="The provider's transaction id.")
@click.option("--round", "round_id", required=True, help="The provider's round id.")
@click.option("--amount", required=True, help="Win in the game currency (0 settles a lost round).")
@click.option("--game", "game_id", help="Game id, for the history.")
@pass_cli
def win(ctx: CliContext, session_id: str, tx_id: str, round_id: str, amount: str, game_id: str | None) -> None:
    """Mirror a win.

    \b
    Example:
      tw play win s0123456789abcdef0123 --tx w-1 --round r-1 --amount 5.00
    """
    from transfer_wallet.play import PlayMirror

    _play_result(ctx, PlayMirror(ctx.database()).win(session_id, tx_id, round_id, amount, game_id=game_id))


@play.command()
@click.argument("session_id")
@click.option("--tx", "tx_id", required=True, help="The provider's transaction id of the refund.")
@click.option("--round", "round_id", required=True, help="The provider's round id.")
@click.option("--bet-tx", "bet_tx_id", required=True, help="Transaction id of the bet being rolled back.")
@pass_cli
def refund(ctx: CliContext, session_id: str, tx_id: str, round_id: str, bet_tx_id: str) -> None:
    """Mirror a refund (rollback) of a bet; an unknown bet is remembered.

    \b
    Example:
      tw play refund s0123456789abcdef0123 --tx x-1 --round r-1 --bet-tx b-1
    """
    from transfer_wallet.play import PlayMirror

    _play_result(ctx, PlayMirror(ctx.database()).refund(session_id, tx_id, round_id, bet_tx_id))

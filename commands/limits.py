"""``tw limits``: a player's responsible-gaming limits (transfer-in, loss, session length, self-exclusion)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from commands._common import CliContext, emit, list_output, pass_cli
from commands._render import Column, show_duration

if TYPE_CHECKING:  # pragma: no cover
    from transfer_wallet.limits import LimitValue

#: Option names (click's parameter names) that set a limit, in the library's kind order.
_SETTERS = (
    "transfer_in_day", "transfer_in_week", "transfer_in_month",
    "loss_day", "loss_week", "loss_month",
    "session_length", "self_exclude_until",
)


@click.group()
def limits() -> None:
    """Responsible-gaming limits of a player.

    Stricter limits count at once; looser ones (raised, removed, a
    self-exclusion shortened) only after a 24 h cooling-off. Windows are
    rolling: day = last 24 h, week = 7 days, month = 30 days.

    \b
    Example:
      tw limits set P1 --loss-week 100.00 --session-length 2h
      tw limits show P1
    """


@limits.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("player_id")
@click.option("--transfer-in-day", metavar="AMOUNT", help="Most to transfer into games in any 24 h (major units, 0 = nothing).")
@click.option("--transfer-in-week", metavar="AMOUNT", help="Most to transfer into games in any 7 days.")
@click.option("--transfer-in-month", metavar="AMOUNT", help="Most to transfer into games in any 30 days.")
@click.option("--loss-day", metavar="AMOUNT", help="Most net loss in any 24 h (open sessions count in full).")
@click.option("--loss-week", metavar="AMOUNT", help="Most net loss in any 7 days.")
@click.option("--loss-month", metavar="AMOUNT", help="Most net loss in any 30 days.")
@click.option("--session-length", metavar="DURATION", help="Longest session: 90m, 2h, 3600s (at most 7 days).")
@click.option("--self-exclude-until", metavar="DATE", help="No play until this ISO 8601 date or instant (UTC), e.g. 2027-01-01.")
@click.option("--remove", "removals", multiple=True, metavar="KIND",
              help="Remove a limit (after the cooling-off), e.g. loss-week or self-exclusion; repeatable.")
@pass_cli
def set_limits(ctx: CliContext, player_id: str, removals: tuple[str, ...], **values: str | None) -> None:
    """Set, lower, raise or remove PLAYER_ID's limits, all in one transaction.

    \b
    Example:
      tw limits set P1 --transfer-in-day 50.00 --loss-week 100.00
      tw limits set P1 --self-exclude-until 2027-01-01
      tw limits set P1 --remove session-length --remove loss-week
    """
    changes: dict[str, str | None] = {}
    for name in _SETTERS:
        if values.get(name) is not None:
            changes["self_exclusion" if name == "self_exclude_until" else name] = values[name]
    for removal in removals:
        kind = removal.strip().lower().replace("-", "_")
        if changes.get(kind) is not None:
            raise click.UsageError(f"{removal} is both set and removed; choose one")
        changes[kind] = None
    if not changes:
        raise click.UsageError("give at least one limit to set or --remove")

    from transfer_wallet.limits import set_limits as set_player_limits

    applied = set_player_limits(ctx.database(), player_id, changes)
    document = {"player_id": player_id, "changes": [_seconds_named(change.as_dict()) for change in applied]}

    def text() -> str:
        lines = []
        for change in applied:
            when = "in force now" if change.immediate else f"from {ctx.when(change.effective_from)} (cooling-off)"
            lines.append(f"{player_id} {change.kind}: {_describe(ctx, change.old_value)} -> "
                         f"{_describe(ctx, change.new_value)}, {when}")
        return "\n".join(lines)

    emit(ctx, document, text=text)


@limits.command("show")
@click.argument("player_id")
@list_output
@pass_cli
def show(ctx: CliContext, player_id: str) -> None:
    """Show PLAYER_ID's limits in force, pending changes and usage.

    For a loss limit, "counted" is the net loss of sessions closed in the
    window plus everything still in open sessions.

    \b
    Example:
      tw limits show P1
      tw --json limits show P1
    """
    from transfer_wallet.limits import LIMIT_KINDS, MONEY_KINDS, limits_for

    found = limits_for(ctx.database(), player_id)
    pending = {change.kind: change for change in found.pending}  # at most one per kind: a change replaces a pending one
    rows: list[dict[str, Any]] = []
    for kind in LIMIT_KINDS:
        change = pending.get(kind)
        left = found.remaining(kind)
        rows.append({
            "limit": kind,
            "in force": _describe(ctx, found.in_force[kind], unit=False),
            "counted": found.counted(kind).format() if kind in MONEY_KINDS else "",
            "left": left.format() if left is not None else "",
            "pending": f"{_describe(ctx, change.value, unit=False)} from {ctx.when(change.effective_from)}"
                       if change else "",
        })
    title = f"limits of {player_id} in {found.currency.code} at {ctx.when(found.as_of)}"
    emit(ctx, _seconds_named(found.as_dict()), rows=rows, title=title, columns=LIMIT_COLUMNS)


def _seconds_named(document: dict[str, Any]) -> dict[str, Any]:
    """JSON names a duration's unit: ``session_length_s`` in ``limits``, ``value_s`` / ``old_value_s`` /
    ``new_value_s`` where the kind is ``session_length`` (every other value keeps its name)."""
    duration = "session_length"
    if isinstance(document.get("limits"), dict) and duration in document["limits"]:
        document["limits"] = {(f"{k}_s" if k == duration else k): v for k, v in document["limits"].items()}
    if document.get("kind") == duration:
        document = {(f"{k}_s" if k in ("old_value", "new_value") else k): v for k, v in document.items()}
    if isinstance(document.get("pending"), list):
        document["pending"] = [{(f"{k}_s" if k == "value" and p.get("kind") == duration else k): v
                                for k, v in p.items()} for p in document["pending"]]
    return document


#: ``tw limits show``: the kind and what is in force stay; usage and pending changes go first when narrow.
LIMIT_COLUMNS = [Column("limit", "status", 0), Column("in force", "id", 0), Column("counted", "amount", 2),
                 Column("left", "amount", 1), Column("pending", "text", 1)]


def _describe(ctx: CliContext, value: LimitValue, *, unit: bool = True) -> str:
    """A limit value for people: "100.00 EUR" (or "100.00"), "2h", an instant, or "none"."""
    if value is None:
        return "none"
    if isinstance(value, int):
        return show_duration(value)
    if isinstance(value, datetime):
        return ctx.when(value)
    return str(value) if unit else value.format()

"""``tw discrepancy``: what finance must look at (session conservation, transfer conflicts ...)."""

from __future__ import annotations

import click

from commands._common import CliContext, emit, pass_cli


@click.group()
def discrepancy() -> None:
    """Discrepancies recorded for finance; never silently absorbed.

    \b
    Example:
      tw discrepancy list --status open
    """


@discrepancy.command("list")
@click.option("--status", type=click.Choice(["open", "investigating", "resolved", "written_off"]))
@click.option("--kind", help="e.g. SESSION_CONSERVATION")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@pass_cli
def list_(ctx: CliContext, status: str | None, kind: str | None, limit: int) -> None:
    """List discrepancies, newest first.

    \b
    Example:
      tw --json discrepancy list --kind SESSION_CONSERVATION
    """
    from sqlalchemy import select

    from transfer_wallet.models import Discrepancy
    from transfer_wallet.money import Money, currency

    table = Discrepancy.__table__
    query = select(table).order_by(table.c.id.desc()).limit(limit)
    if status:
        query = query.where(table.c.status == status)
    if kind:
        query = query.where(table.c.kind == kind)
    rows = ctx.database().transaction(lambda c: c.execute(query).all(), readonly=True)

    def amount(value, code):  # type: ignore[no-untyped-def]
        return Money(value, currency(code)).format() if value is not None and code else None

    found = [
        {"id": r.id, "kind": r.kind, "status": r.status, "provider": r.provider, "session_id": r.session_id,
         "player_id": r.player_id, "currency": r.currency, "expected": amount(r.expected_minor, r.currency),
         "actual": amount(r.actual_minor, r.currency), "detail": r.detail, "created_at": r.created_at.isoformat()}
        for r in rows
    ]
    emit(ctx, {"discrepancies": found}, rows=found,
         columns=["id", "kind", "status", "provider", "session_id", "expected", "actual", "currency", "detail"],
         title="discrepancies")

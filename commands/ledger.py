"""``tw ledger``: prove the ledger's invariants."""

from __future__ import annotations

import sys

import click

from commands._common import CliContext, emit, pass_cli


def _major(amount_minor: int, code: str) -> str:
    from transfer_wallet.money import Money, currency

    return Money(amount_minor, currency(code)).format()


@click.group()
def ledger() -> None:
    """The double-entry ledger.

    \b
    Example:
      tw ledger check
    """


@ledger.command()
@pass_cli
def check(ctx: CliContext) -> None:
    """Verify every entry balances, cached balances match postings, currencies total zero.

    Exits 0 when clean, 1 when any invariant is violated (each finding listed).

    \b
    Example:
      tw --json ledger check
    """
    from transfer_wallet.ledger import check_ledger

    report = check_ledger(ctx.database())
    document = {
        "clean": report.clean,
        "entries": report.entries,
        "postings": report.postings,
        "accounts": report.accounts,
        "totals": {code: _major(total, code) for code, total in sorted(report.totals.items())},
        "findings": [{"check": f.check, "detail": f.detail} for f in report.findings],
    }
    if report.clean:
        text = f"ledger check: clean ({report.entries} entries, {report.postings} postings, {report.accounts} accounts)"
    else:
        lines = [f"ledger check: {len(report.findings)} finding(s)"] + [f"  {f.check}: {f.detail}" for f in report.findings]
        text = "\n".join(lines)
    emit(ctx, document, text=text)
    if not report.clean:
        sys.exit(1)

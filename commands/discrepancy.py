"""``tw discrepancy``: what finance must look at, and the finance workflow (list, show, resolve, note, summary).

Each command parses, calls one function of ``transfer_wallet.discrepancies`` and
renders a table (or one JSON document with ``--json``). Unknown ids and refused
moves are one ``error:`` line, exit 1; a bad option value is a usage error, exit 2.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Callable

import click

from commands._common import CliContext, emit, list_output, pass_cli
from commands._render import Column
from transfer_wallet.discrepancy_kinds import ALL_KINDS

#: What ``tw discrepancy list`` shows; at a narrow width the highest priority numbers go first, detail wraps.
LIST_COLUMNS = [
    Column("id", "id", 0), Column("kind", "status", 0), Column("status", "status", 0), Column("provider", "status", 4),
    Column("business_date", "id", 3), Column("currency", "status", 1), Column("expected", "amount", 5),
    Column("actual", "amount", 5), Column("difference", "amount", 0), Column("times_seen", "count", 6),
    Column("age_days", "count", 2), Column("detail", "text", 1),
]
#: Every type a discrepancy is recorded with (the library's one list).
DISCREPANCY_TYPES = ALL_KINDS
STATUS_CHOICES = ["open", "investigating", "resolved", "written_off", "cleared", "unresolved"]
MOVE_CHOICES = ["investigating", "resolved", "written_off"]
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def _name(what: str) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    def check(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        if value is not None and not _NAME.fullmatch(value):
            raise click.BadParameter(f"{value!r} is not a {what} (letters, digits, _ . -, at most 32)")
        if value is not None and what == "type":
            if value.upper() not in DISCREPANCY_TYPES:
                raise click.BadParameter(f"unknown type {value!r}: choose from {', '.join(DISCREPANCY_TYPES)}")
            return value.upper()
        return value
    return check


def _library_check(validate_name: str) -> Callable[[click.Context, click.Parameter, str], str]:
    """A click callback running the library's own validator, so a bad value is a usage error (exit 2)."""
    def check(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
        from transfer_wallet import discrepancies
        from transfer_wallet.errors import ValidationError

        try:
            result: str = getattr(discrepancies, validate_name)(value)
        except ValidationError as exc:
            raise click.BadParameter(str(exc)) from None
        return result
    return check


@click.group()
def discrepancy() -> None:
    """Discrepancies recorded for finance, and their workflow: open -> investigating -> resolved / written off.

    \b
    Examples:
      tw discrepancy list --status unresolved --provider acme
      tw discrepancy show 42
      tw discrepancy resolve 42 --status resolved --note "acme credited 1.00" --by anna
    """


@discrepancy.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUS_CHOICES),
              help="Only this status (repeatable); 'unresolved' = open or investigating.")
@click.option("--type", "kind", callback=_name("type"), metavar="TYPE", help="e.g. AMOUNT_MISMATCH, SESSION_CONSERVATION")
@click.option("--kind", "kind_alias", callback=_name("type"), hidden=True)
@click.option("--provider", callback=_name("provider"), help="Provider name.")
@click.option("--date", "business_date", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Business date of the provider's report.")
@click.option("--older-than", "older_than_days", type=click.IntRange(0, 36_500), metavar="DAYS",
              help="Only those first seen at least DAYS days ago.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000),
              help="At most this many discrepancies.")
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0), help="Skip this many first.")
@list_output
@pass_cli
def list_(ctx: CliContext, statuses: tuple[str, ...], kind: str | None, kind_alias: str | None,
          provider: str | None, business_date: dt.datetime | None, older_than_days: int | None, limit: int,
          offset: int) -> None:
    """List discrepancies, newest first.

    \b
    Examples:
      tw discrepancy list --status unresolved --older-than 3
      tw --json discrepancy list --type MISSING_IN_LEDGER --provider acme --date 2026-11-23
    """
    from transfer_wallet import discrepancies

    if kind and kind_alias and kind != kind_alias:
        raise click.UsageError("--kind is the old name of --type; give one of them")
    filters: dict[str, Any] = dict(status=list(statuses) or None, kind=kind or kind_alias, provider=provider,
                                   business_date=business_date.date() if business_date else None,
                                   older_than_days=older_than_days)
    found = discrepancies.list_discrepancies(ctx.database(), **filters, limit=limit, offset=offset)
    total = len(found) if offset == 0 and len(found) < limit else discrepancies.count_discrepancies(ctx.database(), **filters)
    rows = [_document(view) for view in found]
    emit(ctx, {"discrepancies": rows, "total": total}, rows=rows, columns=LIST_COLUMNS, title="discrepancies",
         total=total, offset=offset, noun="discrepancies")


def _describe(document: dict[str, Any], when: Callable[[Any], str]) -> str:
    d = document
    lines = [
        f"discrepancy {d['id']}: {d['kind']} {d['status']}  provider {d['provider'] or '-'}"
        f"  business date {d['business_date'] or '-'}  ({d['source']})",
        f"  {d['detail']}",
        f"  expected {d['expected'] or '-'}  actual {d['actual'] or '-'}  difference {d['difference'] or '-'}"
        f"  {d['currency'] or ''}".rstrip(),
        f"  transfer {d['transfer_id'] or '-'}  provider tx {d['provider_tx_id'] or '-'}  session {d['session_id'] or '-'}"
        f"  player {d['player_id'] or '-'}",
        f"  first seen {when(d['first_seen_at'])}  last seen {when(d['last_seen_at'])}  times seen {d['times_seen']}"
        f"  age {d['age_days']} days" + (f"  closed {when(d['closed_at'])}" if d["closed_at"] else ""),
    ]
    for name, sides in d["fields"].items():
        lines.append(f"  field {name}: {sides}")
    if d["note"]:
        lines.append(f"  note ({d['changed_by']}): {d['note']}")
    lines.append("  history:")
    for event in d["history"]:
        move = f"{event['from_status'] or '-'} -> {event['to_status']}"
        lines.append(f"    {when(event['at'])}  {event['actor']}  {event['action']}  {move}"
                     + (f"  {event['note']}" if event["note"] else ""))
    return "\n".join(lines)


def _document(view: Any) -> dict[str, Any]:
    """The view's JSON document: amounts once, as decimal strings in major units (the ``*_minor`` copies dropped)."""
    return {key: value for key, value in view.as_dict().items() if not key.endswith("_minor")}


def _render_one(ctx: CliContext, view: Any) -> None:
    document = _document(view)
    emit(ctx, document, text=lambda: _describe(document, ctx.when))


@discrepancy.command()
@click.argument("discrepancy_id", metavar="ID", type=int)
@pass_cli
def show(ctx: CliContext, discrepancy_id: int) -> None:
    """Show one discrepancy, every differing field and its history.

    \b
    Example:
      tw discrepancy show 42
    """
    from transfer_wallet import discrepancies

    _render_one(ctx, discrepancies.get(ctx.database(), discrepancy_id))


@discrepancy.command()
@click.argument("discrepancy_id", metavar="ID", type=int)
@click.option("--status", "to_status", required=True, type=click.Choice(MOVE_CHOICES),
              help="investigating, or closed as resolved / written_off.")
@click.option("--note", required=True, callback=_library_check("validate_note"), help="What was found or done (<= 2000 chars).")
@click.option("--by", "actor", required=True, callback=_library_check("validate_actor"), metavar="NAME",
              help="Who decides (your name or login).")
@pass_cli
def resolve(ctx: CliContext, discrepancy_id: int, to_status: str, note: str, actor: str) -> None:
    """Move a discrepancy on: investigating, resolved or written_off, with a note and your name.

    Resolved and written off are final; resolving twice is an error.

    \b
    Examples:
      tw discrepancy resolve 42 --status investigating --note "asked acme for the round log" --by anna
      tw discrepancy resolve 42 --status resolved --note "acme credited 1.00 on 25 Nov" --by anna
    """
    from transfer_wallet import discrepancies

    _render_one(ctx, discrepancies.transition(ctx.database(), discrepancy_id, to_status=to_status, note=note,
                                              actor=actor))


@discrepancy.command()
@click.argument("discrepancy_id", metavar="ID", type=int)
@click.option("--note", required=True, callback=_library_check("validate_note"), help="The note (<= 2000 chars).")
@click.option("--by", "actor", required=True, callback=_library_check("validate_actor"), metavar="NAME",
              help="Who writes it.")
@pass_cli
def note(ctx: CliContext, discrepancy_id: int, note: str, actor: str) -> None:
    """Add a note to a discrepancy without changing its status (closed ones too).

    \b
    Example:
      tw discrepancy note 42 --note "write-off approved by the CFO" --by carl
    """
    from transfer_wallet import discrepancies

    _render_one(ctx, discrepancies.add_note(ctx.database(), discrepancy_id, note, actor))


@discrepancy.command()
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUS_CHOICES),
              help="Only this status (repeatable); default: every status.")
@click.option("--provider", callback=_name("provider"), help="Provider name.")
@click.option("--date", "business_date", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD")
@list_output
@pass_cli
def summary(ctx: CliContext, statuses: tuple[str, ...], provider: str | None, business_date: dt.datetime | None) -> None:
    """Count discrepancies by type, provider and status, with the oldest first seen.

    \b
    Example:
      tw discrepancy summary --status unresolved
    """
    from transfer_wallet import discrepancies

    found = discrepancies.counts(ctx.database(), status=list(statuses) or None, provider=provider,
                                 business_date=business_date.date() if business_date else None)
    rows = [count.as_dict() for count in found]
    emit(ctx, {"counts": rows, "total": sum(row["count"] for row in rows)}, rows=rows,
         columns=[Column("kind", "status", 0), Column("provider", "status", 0), Column("status", "status", 0),
                  Column("count", "count", 0), Column("oldest_first_seen_at", "time", 1)],
         title="discrepancies by type and provider")

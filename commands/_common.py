"""Shared CLI plumbing: the context object, output rendering and error mapping."""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import click

if TYPE_CHECKING:  # pragma: no cover
    from transfer_wallet.db import Database


@dataclass
class CliContext:
    """What the root group parsed: database, output mode, providers file."""

    database_url: str | None = None
    as_json: bool = False
    providers_file: str | None = None
    _database: "Database | None" = field(default=None, repr=False)

    def database(self) -> "Database":
        """The ledger database for ``--db`` / ``TW_DATABASE_URL`` (opened once per command)."""
        if self._database is None:
            from transfer_wallet.db import open_database

            self._database = open_database(self.database_url)
        return self._database

    def close(self) -> None:
        if self._database is not None:
            self._database.dispose()
            self._database = None


pass_cli = click.make_pass_decorator(CliContext, ensure=True)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit(
    ctx: CliContext,
    document: Any,
    *,
    rows: Sequence[dict[str, Any]] | None = None,
    columns: Iterable[str] | None = None,
    title: str | None = None,
    text: str | Callable[[], str] | None = None,
) -> None:
    """Print ``document`` as one JSON document (``--json``), else a table or text.

    ``rows``/``columns`` render a table for people; ``text`` a plain line; with
    neither, the document's top-level fields are shown as a two-column table.
    """
    if ctx.as_json:
        click.echo(json.dumps(document, default=_default, ensure_ascii=False))
        return
    if text is not None:
        click.echo(text() if callable(text) else text)
        return
    from rich.console import Console
    from rich.table import Table

    # A pipe or a file gets the full table, not one squeezed to 80 columns.
    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 220)
    if rows is None:
        table = Table(title=title, show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        for key, value in document.items():
            table.add_row(str(key), "" if value is None else str(value))
    else:
        cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
        table = Table(title=title)
        for col in cols:
            table.add_column(col)
        for row in rows:
            table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in cols))
        if not rows:
            console.print(f"{title + ': ' if title else ''}nothing to show")
            return
    console.print(table)


def parse_instant(text: str | None, option: str) -> "dt.datetime | None":
    """An aware datetime from an ISO 8601 option value (None stays None); one-line errors."""
    if text is None:
        return None
    from transfer_wallet.errors import ValidationError

    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{option} {text!r} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise ValidationError(f"{option} needs a UTC offset, e.g. 2026-11-24T12:00:00+00:00")
    return value


def fail(message: str, code: int = 1) -> None:
    """Print one line on stderr and exit with ``code`` (1: user error)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)

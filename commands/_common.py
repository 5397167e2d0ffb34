"""Shared CLI plumbing: the context object, output rendering, parameter types and error lines."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import click

if TYPE_CHECKING:  # pragma: no cover
    from transfer_wallet.config import ProviderConfig
    from transfer_wallet.db import Database


@dataclass
class CliContext:
    """What the root group parsed: database, output mode, providers file."""

    database_url: str | None = None
    as_json: bool = False
    providers_file: str | None = None
    _database: "Database | None" = field(default=None, repr=False)

    def database(self, *, create: bool = False) -> "Database":
        """The ledger database for ``--db`` / ``TW_DATABASE_URL`` (opened once per command).

        A SQLite file that does not exist is an error (nothing is created) unless
        ``create``: only the commands that migrate a fresh file pass it.
        """
        if self._database is None:
            from transfer_wallet.config import database_url
            from transfer_wallet.db import open_database

            url = database_url(self.database_url)
            if not create:
                require_existing_database(url)
            self._database = open_database(url)
        return self._database

    def providers_path(self) -> str:
        """The providers file (``--providers``, ``TW_PROVIDERS_FILE``, ``./providers.toml``); missing is an error."""
        from transfer_wallet.runtime import providers_file_path

        return str(providers_file_path(self.providers_file))

    def providers(self) -> "dict[str, ProviderConfig]":
        """The configured providers; a providers file that does not exist is named as missing."""
        from transfer_wallet.config import load_providers

        return load_providers(self.providers_path())

    def close(self) -> None:
        """Dispose of the database's engine and pool, if one was opened."""
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


class InstantType(click.ParamType):
    """An ISO 8601 date-time with a UTC offset, in UTC (``transfer_wallet.timeutil.parse_instant``).

    A bad value is the library's ``ValidationError``, so it ends as one ``error:`` line, exit 1.
    """

    name = "INSTANT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        from transfer_wallet.timeutil import parse_instant

        return parse_instant(value, _option_name(param))


class OutputFileType(click.ParamType):
    """A file to write: its folder must exist and its name fit the file system (checked before any work)."""

    name = "FILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from transfer_wallet.errors import ValidationError

        what, path = _option_name(param), os.fspath(value)
        folder, name = os.path.split(os.path.abspath(path))
        if not name or os.path.isdir(path):
            raise ValidationError(f"{what} {path!r} must name a file, not a folder")
        if not os.path.isdir(folder):
            raise ValidationError(f"{what} {path!r}: folder {folder!r} does not exist")
        if len(os.fsencode(name)) > _name_max(folder):
            raise ValidationError(f"{what} {path[:40]!r}...: file name longer than {_name_max(folder)} bytes")
        if not os.access(folder, os.W_OK):
            raise ValidationError(f"{what} {path!r}: folder {folder!r} is not writable")
        return path


def _name_max(folder: str) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # pragma: no cover - not POSIX
        return 255


def _option_name(param: click.Parameter | None) -> str:
    if param is None:
        return "value"
    options = getattr(param, "opts", None) or [param.human_readable_name]
    return str(max(options, key=len))


INSTANT = InstantType()
OUTPUT_FILE = OutputFileType()


def bad_arguments(args: Sequence[str]) -> str | None:
    """Why the raw command-line ``args`` cannot be used (not UTF-8, a NUL byte), or None."""
    for position, arg in enumerate(args, start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return f"argument {position} ({one_line(repr(arg)[:40])}) is not valid UTF-8"
        if "\x00" in arg:
            return f"argument {position} ({one_line(repr(arg)[:40])}) contains a NUL byte"
    return None


def one_line(message: str) -> str:
    """``message`` printable on one line: line breaks and other control characters escaped."""
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: message`` as exactly one line on stderr and exit with ``code`` (1: user error)."""
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


def sqlite_file_of(url: str) -> str | None:
    """The file a ``sqlite:///`` URL names, or None (another database, or SQLite in memory)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # an invalid URL is reported when the database is opened
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    name = parsed.database or ""
    if not name or name == ":memory:" or name.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    return name


def require_existing_database(url: str) -> None:
    """Fail (exit 1, nothing created) when ``url`` names a SQLite file that does not exist."""
    name = sqlite_file_of(url)
    if name is not None and not os.path.exists(name):
        fail(f"database file {name!r} does not exist; run `tw db upgrade` first to create it")


def usage_error_line(exc: click.UsageError) -> str:
    """One line for a usage error: click's message and where to get help, without the usage block."""
    message = exc.format_message().rstrip(".")
    if exc.ctx is not None:
        message += f" (see '{exc.ctx.command_path} --help')"
    return message

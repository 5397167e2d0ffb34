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
    from commands._render import Column
    from transfer_wallet.db import Database
    from transfer_wallet.dbapi import Reader


@dataclass
class CliContext:
    """What the root group parsed: database, output mode and format, display zone, providers file."""

    database_url: str | None = None
    as_json: bool = False
    providers_file: str | None = None
    output_format: str | None = None
    tz_name: str | None = None
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

    def reader(self) -> "Reader":
        """A read-only runner of ``work(cursor)`` on a plain DBAPI cursor, checked as ``database()`` checks.

        When the URL is one ``transfer_wallet.dbapi`` reads exactly (a SQLite file, PostgreSQL),
        a plain driver connection, without importing SQLAlchemy; otherwise the full layer.
        """
        from transfer_wallet.config import database_url
        from transfer_wallet.dbapi import FullReader, LightReader, light_target

        target = light_target(database_url(self.database_url)) if self._database is None else None
        if target is None:
            return FullReader(self.database())
        if target.backend == "sqlite":
            _require_file(target.address)
        return LightReader(target)

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

    @property
    def format(self) -> str:
        """``json`` (``--json``), else ``--format`` (default ``table``)."""
        return "json" if self.as_json else (self.output_format or "table")

    def zone(self) -> dt.tzinfo:
        """The zone tables show times in: ``--tz`` (an IANA name), default UTC."""
        if self.tz_name is None:
            return dt.timezone.utc
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.tz_name)

    def when(self, value: Any) -> str:
        """An instant for a line of text: ``2026-12-01 23:30:05 UTC`` (in ``--tz``); None as ``-``."""
        from commands._render import show_time, zone_label

        if value is None:
            return "-"
        zone = self.zone()
        return f"{show_time(value, zone)} {zone_label(zone)}"


pass_cli = click.make_pass_decorator(CliContext, ensure=True)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal (a table with borders) or a pipe or file (plain aligned text)."""
    return sys.stdout.isatty()


def output_width() -> int | None:
    """Columns to fit: ``COLUMNS`` if set, else the terminal's width; None (no limit) in a pipe."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return max(columns, 20)
    if stdout_is_terminal():
        import shutil

        return shutil.get_terminal_size().columns
    return None


def no_color() -> bool:
    """``NO_COLOR`` set to anything non-empty turns every style off (colour, bold, italics)."""
    return bool(os.environ.get("NO_COLOR"))


def emit(
    ctx: CliContext,
    document: Any,
    *,
    rows: Sequence[dict[str, Any]] | None = None,
    columns: "Iterable[str | Column] | None" = None,
    title: str | None = None,
    text: str | Callable[[], str] | None = None,
    total: int | None = None,
    offset: int = 0,
    noun: str | None = None,
    err: bool = False,
) -> None:
    """Print ``document`` as one JSON document (``--json``), else a table, tsv/csv or text.

    ``rows``/``columns`` render a table for people (``Column`` roles say what may be
    dropped or wrapped, see ``commands._render``); ``text`` a plain line; with neither,
    the document's top-level fields are shown as a two-column table. ``total`` (rows
    matching, before ``--limit``/``--offset``) adds a line on stderr saying what was left out.
    ``err`` sends a JSON document or text to stderr (stdout carries a file: ``--out -``).
    """
    fmt = ctx.format
    if fmt == "json":
        click.echo(json.dumps(document, default=_default, ensure_ascii=False), err=err)
        return
    if text is not None:
        click.echo(text() if callable(text) else text, err=err)
        return
    if rows is None:
        _emit_fields(ctx, document, title, fmt)
        return
    from commands._render import columns_of

    cols = columns_of(columns if columns is not None else (list(rows[0]) if rows else []))
    if fmt in ("tsv", "csv"):
        from commands._render import delimited

        click.echo(delimited(cols, rows, fmt))
    elif not rows:
        click.echo(f"{title + ': ' if title else ''}nothing to show")
    else:
        _emit_table(ctx, cols, rows, title)
    if total is not None and (offset > 0 or offset + len(rows) < total):
        shown = f"{len(rows)} of {total} {noun or 'rows'}" + (f" from offset {offset}" if offset else "")
        click.echo(f"{shown} (use --limit / --offset)", err=True)


def _emit_fields(ctx: CliContext, document: dict[str, Any], title: str | None, fmt: str) -> None:
    """A document's top-level fields, one per line: times in the display zone, durations as durations."""
    from commands._render import Column, delimited, infer_column

    if fmt in ("tsv", "csv"):
        click.echo(delimited([Column("field"), Column("value")],
                             [{"field": k, "value": v} for k, v in document.items()], fmt))
        return
    rows = []
    for key, value in document.items():
        role = infer_column(key).role
        shown = ctx.when(value) if role == "time" and value is not None else value
        if role == "duration":
            from commands._render import show_duration

            shown = show_duration(value)
        rows.append({"field": key, "value": "" if shown is None else str(shown)})
    _emit_table(ctx, [Column("field", "id", 0), Column("value", "text", 0)], rows, title, show_header=False)


def _emit_table(ctx: CliContext, cols: "list[Column]", rows: Sequence[dict[str, Any]], title: str | None,
                *, show_header: bool = True) -> None:
    """A table fitted to the width: rich borders on a terminal, plain aligned text in a pipe."""
    from commands._render import cell, header, layout, plain_table

    zone = ctx.zone()
    headers = [header(c, zone) for c in cols]
    cells = [[cell(row.get(c.key), c, zone) for c in cols] for row in rows]
    width = output_width()
    if not stdout_is_terminal():
        if title:
            click.echo(title)
        click.echo(plain_table(cols, headers, cells, width, show_header=show_header))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    chosen = layout(cols, headers, cells, width, overhead=1, per_column=3)
    needed = sum(w for _, w in chosen) + 1 + 3 * len(chosen)
    console = Console(highlight=False, soft_wrap=False, width=max(width or needed, needed), force_terminal=True,
                      color_system=None if no_color() else "auto", no_color=no_color())
    table = Table(title=title, show_header=show_header, box=box.SQUARE, header_style="" if no_color() else "bold",
                  title_style="" if no_color() else "italic")
    for i, w in chosen:
        column = cols[i]
        table.add_column(headers[i], justify="right" if column.right_aligned else "left",
                         no_wrap=not column.wraps, overflow="fold", width=w if column.wraps else None,
                         min_width=w)
    for row_cells in cells:
        table.add_row(*(row_cells[i] for i, _ in chosen))
    console.print(table)


def _set_output(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """``--json`` / ``--format`` after the command name: the last one given wins."""
    if value is None or value is False:
        return
    obj = ctx.ensure_object(CliContext)
    fmt = "json" if value is True else str(value)
    obj.as_json, obj.output_format = fmt == "json", fmt


def json_option() -> click.Option:
    """``--json`` for any command, also accepted after the command name (``tw session list --json``)."""
    return click.Option(["--json", "json_output"], is_flag=True, default=False, expose_value=False,
                        callback=_set_output, help="Print one JSON document on stdout (same as tw --json).")


def list_output(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for list commands: ``--format table|tsv|csv|json`` and ``--json``."""
    from commands._render import FORMATS

    command = click.option("--format", "output_format", type=click.Choice(FORMATS), expose_value=False,
                           callback=_set_output,
                           help="table (aligned text in a pipe), tsv or csv (every column, raw values), or json.")(command)
    return click.option("--json", "json_output", is_flag=True, default=False, expose_value=False,
                        callback=_set_output, help="Same as --format json.")(command)


def add_json_options(group: click.Group) -> None:
    """Give every command under ``group`` that lacks one a ``--json`` option after its name."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            add_json_options(command)
        elif not any("--json" in getattr(p, "opts", ()) for p in command.params):
            command.params.append(json_option())


def check_zone(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--tz``: an IANA zone name such as ``Europe/Malta`` (a usage error otherwise)."""
    if value is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"{value!r} is not a time zone name such as UTC or Europe/Malta") from None
    return value


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


#: ``--out -``: write the file to stdout (the command's own message then goes to stderr).
STDOUT = "-"


def write_file(path: str, body: bytes) -> None:
    """Write ``body`` to ``path`` whole (through ``path.partial``), or to stdout for ``-``."""
    if path == STDOUT:
        sys.stdout.flush()
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return
    partial = f"{path}.partial"
    with open(partial, "wb") as handle:
        handle.write(body)
    os.replace(partial, path)


class OutputFileType(click.ParamType):
    """A file to write (``-`` for stdout): its folder must exist and its name fit the file system (checked first)."""

    name = "FILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from transfer_wallet.errors import ValidationError

        if value == STDOUT:
            return STDOUT
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
    if name is not None:
        _require_file(name)


def _require_file(name: str) -> None:
    if not os.path.exists(name):
        fail(f"database file {name!r} does not exist; run `tw db upgrade` first to create it")


def usage_error_line(exc: click.UsageError) -> str:
    """One line for a usage error: click's message and where to get help, without the usage block."""
    message = exc.format_message().rstrip(".")
    if exc.ctx is not None:
        message += f" (see '{exc.ctx.command_path} --help')"
    return message

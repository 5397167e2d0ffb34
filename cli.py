"""The ``tw`` command line: operators' entry point to transfer-wallet.

Thin by design: each command parses, calls one service of the library and
renders a table (or one JSON document with ``--json``). Library errors become a
one-line message on stderr and exit code 1; usage errors exit 2. Nothing here
holds business logic.

The boundary refuses what the library must never see: arguments that are not
valid UTF-8 or hold a NUL byte. A database error is shown as its first line,
never with the SQL or its parameters; a file-system error as one line too.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import click

from commands._common import CliContext, add_json_options, bad_arguments, check_zone, fail, usage_error_line

GROUPS: dict[str, str] = {
    # command name -> "module:attribute"; imported when the root group is built.
    "db": "commands.db:db",
    "player": "commands.wallet:player",
    "wallet": "commands.wallet:wallet",
    "fx": "commands.fx:fx",
    "ledger": "commands.ledger:ledger",
    "bench": "commands.bench:bench",
    "provider": "commands.provider:provider",
    "session": "commands.session:session",
    "play": "commands.session:play",
    "limits": "commands.limits:limits",
    "jobs": "commands.jobs:jobs",
    "simulate": "commands.simulate:simulate",
    "discrepancy": "commands.discrepancy:discrepancy",
    "reconcile": "commands.reconcile:reconcile",
    "demo": "commands.demo:demo",
}


class TwGroup(click.Group):
    """Root group: refuses unusable arguments and turns every error into one line on stderr.

    Usage errors (unknown option, bad choice, out-of-range value) exit 2, operational
    errors 1; ``tw`` alone prints its help on stdout and exits 0.
    """

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Run the command line; in standalone mode every click error becomes one ``error:`` line."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx is not None else self.get_help(click.Context(self)))
            sys.exit(0)
        except click.UsageError as exc:
            fail(usage_error_line(exc), exc.exit_code)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        problem = bad_arguments(args)
        if problem is not None:
            fail(problem)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        from transfer_wallet.errors import TransferWalletError

        try:
            return super().invoke(ctx)
        except TransferWalletError as exc:
            fail(str(exc))
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except OSError as exc:  # a file that cannot be written, a full disk ...
            fail(f"{exc.strerror or type(exc).__name__}: {exc.filename!r}" if exc.filename else str(exc))
        except Exception as exc:  # database unreachable, schema missing ...
            message = _describe_database_error(exc)
            if message is None:
                raise
            fail(message)
        finally:
            obj = ctx.find_object(CliContext)
            if obj is not None:
                obj.close()


def _describe_database_error(exc: Exception) -> str | None:
    """A one-line operator message for a database error (never its SQL or parameters), else None.

    SQLAlchemy's errors wrap the driver's; the light read path (``transfer_wallet.dbapi``)
    raises the driver's own. Both give the same line.
    """
    from transfer_wallet.dbapi import driver_error_line, error_line

    if "sqlalchemy" not in sys.modules:  # nothing imported it: the error cannot be one of its
        return driver_error_line(exc)
    from sqlalchemy.exc import OperationalError, ProgrammingError, StatementError

    if not isinstance(exc, StatementError):
        return driver_error_line(exc)
    if exc.orig is None:
        return f"database error: {type(exc).__name__}"
    return error_line(exc.orig, schema_kind=isinstance(exc, (OperationalError, ProgrammingError)))


@click.group(cls=TwGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "database_url", metavar="URL", help="Database URL (default: $TW_DATABASE_URL or sqlite:///transfer_wallet.db).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout instead of tables.")
@click.option("--providers", "providers_file", metavar="FILE", help="Providers TOML file (default: $TW_PROVIDERS_FILE or ./providers.toml).")
@click.option("--tz", "tz_name", metavar="ZONE", callback=check_zone,
              help="Show times in tables in this zone, e.g. Europe/Malta (default: UTC; JSON keeps ISO-8601).")
@click.version_option(package_name="transfer-wallet", prog_name="tw")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, as_json: bool, providers_file: str | None,
        tz_name: str | None) -> None:
    """Transfer-wallet: move players' money into game providers and back, exactly.

    \b
    Examples:
      tw db upgrade
      tw player create P1 --currency EUR
      tw wallet deposit P1 20.00 --ref dep-1
      tw --json wallet balance P1
      tw ledger check
    """
    ctx.obj = CliContext(database_url=database_url, as_json=as_json, providers_file=providers_file, tz_name=tz_name)


def _register() -> None:
    """Add every command group; a module that fails to import is a bug and fails loudly."""
    import importlib

    for name, target in GROUPS.items():
        module_name, attr = target.split(":")
        cli.add_command(getattr(importlib.import_module(module_name), attr), name)
    add_json_options(cli)


_register()


def main() -> None:
    """Console-script entry point (``tw``)."""
    cli.main(prog_name="tw")


if __name__ == "__main__":  # pragma: no cover
    main()

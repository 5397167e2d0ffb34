"""``tw db``: schema migrations."""

from __future__ import annotations

import click

from commands._common import CliContext, emit, pass_cli


@click.group()
def db() -> None:
    """Database schema: create or upgrade it with migrations.

    \b
    Example:
      tw --db postgresql://postgres@127.0.0.1/tw db upgrade
    """


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_cli
def upgrade(ctx: CliContext, revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest).

    \b
    Example:
      tw db upgrade
    """
    from transfer_wallet import migrations

    database = ctx.database(create=True)
    migrations.upgrade(database, revision)
    current = migrations.current_revision(database)
    emit(ctx, {"revision": current}, text=f"database at revision {current}")


@db.command()
@pass_cli
def status(ctx: CliContext) -> None:
    """Show the database's revision and the newest one available.

    \b
    Example:
      tw --json db status
    """
    from transfer_wallet import migrations

    database = ctx.database()
    current, head = migrations.current_revision(database), migrations.head_revision(database)
    document = {"revision": current, "head": head, "up_to_date": current == head}
    emit(ctx, document, text=f"revision {current or 'none'} (newest {head}){'' if current == head else ': run `tw db upgrade`'}")

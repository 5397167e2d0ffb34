"""Alembic environment: migrations run against --db / TW_DATABASE_URL.

A caller (``transfer_wallet.migrations``, the tests) may hand over an open
connection in ``config.attributes["connection"]``; otherwise an engine is built
from the URL with the project's engine factory (SQLite pragmas included).
"""

from __future__ import annotations

from alembic import context

from transfer_wallet import models
from transfer_wallet.db import create_engine_for

config = context.config
target_metadata = models.metadata


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine_for(config.get_main_option("sqlalchemy.url") or None)
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()

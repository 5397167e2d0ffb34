"""The migrations and the models agree, and upgrade -> downgrade -> upgrade works."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from transfer_wallet import migrations
from transfer_wallet.db import open_database
from transfer_wallet.wallet import Wallet


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_upgrade_downgrade_upgrade_matches_the_models(backend, new_database_url):
    db = open_database(new_database_url(backend))
    try:
        assert migrations.current_revision(db) is None
        migrations.upgrade(db)
        assert migrations.current_revision(db) == migrations.head_revision(db)
        migrations.check(db)  # autogenerate finds no difference between models and schema
        Wallet(db).create_player("P1", "EUR")
        migrations.downgrade(db)
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        migrations.upgrade(db)
        migrations.check(db)
        Wallet(db).create_player("P1", "EUR")
        Wallet(db).deposit("P1", "1.00", reference="after-roundtrip")
    finally:
        db.dispose()

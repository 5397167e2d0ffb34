"""The migrations and the models agree, and upgrade -> downgrade -> upgrade works."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError

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


def _server_objects(db) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What the migrations put on a PostgreSQL server besides tables' columns: functions, triggers, schemas, tables."""
    queries = {
        "functions": "SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', "
                     "p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                     "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')",
        "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
        "tables": "SELECT schemaname || '.' || tablename, '' FROM pg_tables "
                  "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        "schemas": "SELECT nspname, '' FROM pg_namespace WHERE left(nspname, 3) <> 'pg_' AND nspname <> 'information_schema'",
    }
    with db.engine.connect() as connection:
        return {kind: dict(connection.exec_driver_sql(query).all()) for kind, query in queries.items()}


@pytest.mark.postgres
def test_0009_downgrades_to_exactly_what_0008_installed_and_upgrades_again(new_database_url):
    at_0008, db = open_database(new_database_url("postgres")), open_database(new_database_url("postgres"))
    try:
        migrations.upgrade(at_0008, "0008")
        migrations.upgrade(db)
        at_head = _server_objects(db)
        assert "postings_entry_balanced" in at_head["triggers"] and "tw_checks" in at_head["schemas"]
        assert "FOR EACH STATEMENT" in str(at_head["triggers"]["postings_entry_balanced"])  # type: ignore[index]

        migrations.downgrade(db, "0008")
        assert _server_objects(db) == _server_objects(at_0008)
        wallet = Wallet(db)  # 0008's ledger posts, and its row trigger still refuses an unbalanced entry
        wallet.create_player("P1", "EUR")
        wallet.deposit("P1", "1.00", reference="at-0008")
        _refused_at_commit(db)

        migrations.upgrade(db)
        assert _server_objects(db) == at_head
        wallet = Wallet(db)
        wallet.deposit("P1", "1.00", reference="at-head")
        assert wallet.balance("P1").available.format() == "2.00"
        _refused_at_commit(db)
    finally:
        at_0008.dispose()
        db.dispose()


def _refused_at_commit(db) -> None:  # type: ignore[no-untyped-def]
    with db.engine.connect() as connection:
        transaction = connection.begin()
        connection.exec_driver_sql(
            "INSERT INTO postings (entry_id, account_id, currency, amount_minor) "
            "SELECT id, (SELECT id FROM accounts WHERE code = 'cashier:EUR'), 'EUR', 1 FROM entries LIMIT 1")
        with pytest.raises(DBAPIError, match="does not balance"):
            transaction.commit()

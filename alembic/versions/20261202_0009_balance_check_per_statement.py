"""PostgreSQL: the balance of an entry is checked once per statement, and the report balances without a plan per call.

Two changes to the server side of a posting, measured as instructions per
``tw_post_entry`` call and its commit (callgrind, single-user backend, a two-leg
transfer reporting one more balance): 1.38 M under 0008, 1.14 M here.

1. **The balance check.** 0001's ``postings_entry_balanced`` was a deferred
   constraint trigger FOR EACH ROW: at commit, one PL/pgSQL call and one GROUP BY
   over the entry's postings per posting row (two per transfer, ~134 k
   instructions). Here ``postings_entry_balanced`` is an AFTER INSERT trigger FOR
   EACH STATEMENT over the statement's new rows (a transition table): when every
   entry the statement writes balances per currency within the statement (a
   posting always: ``tw_post_entry`` writes all legs in one INSERT), it is done
   (~52 k). An entry the statement leaves unbalanced (a raw INSERT of some legs,
   the rest to follow in another statement of the transaction, or never) is put in
   ``tw_checks.entries_to_check``, whose deferred constraint trigger checks it
   against all its postings at commit, as 0001's trigger did, and takes it out.
   The rule is unchanged: an entry is refused at commit unless its postings
   balance per currency then, whatever statements wrote them. By induction: every
   committed entry balanced; a statement that balances its own rows of an entry
   leaves that entry's sum as it was; every other statement has the entry checked
   at commit. COPY fires the statement trigger too. ``tw_checks`` is a schema of
   its own, so the models (``alembic check``, public schema) have nothing to compare.
   The commit-time check reads ``postings`` qualified by its schema with a fixed search
   path, so a temporary table or a schema earlier on the search path cannot stand in for
   it; the queue is written by owner-run functions, so a role with only the ledger's
   grants is checked like the owner.
2. **The report balances** (``p_report``: accounts outside the legs whose balance
   the caller wants, a transfer asks for the payer's locked account). 0007 read them
   with ``a.id = ANY(p_report) AND NOT a.id = ANY(p_accounts)``, a query the plan
   cache plans afresh on every call (a custom plan: ~190 k instructions, 14 % of
   the call). Here each is one primary-key read with a plan kept across calls.
   ``tw_post_entry`` is otherwise 0007's text: same signature and outcomes, so the
   session functions of 0008 call it unchanged.

Downgrading restores 0008's objects: 0007's ``tw_post_entry`` and 0001's row
trigger (its function ``tw_entry_balanced`` is left in place here).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 16:10:00
"""

from __future__ import annotations

from typing import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Where 0007's read of the report balances (one query over ``a.id = ANY(p_report)``) starts and ends.
_REPORT_READ_FROM, _REPORT_READ_TO = "\n            IF cardinality(p_report) > 0 THEN\n", "\n            END IF;\n"
REPORT_READ = """
            IF cardinality(p_report) > 0 THEN
                balance_account_ids := coalesce(balance_account_ids, '{}');
                balances_minor := coalesce(balances_minor, '{}');
                FOREACH report_id IN ARRAY p_report LOOP
                    IF NOT report_id = ANY(p_accounts) AND NOT report_id = ANY(balance_account_ids) THEN
                        SELECT a.balance_minor INTO report_balance FROM accounts a WHERE a.id = report_id;
                        IF FOUND THEN
                            balance_account_ids := balance_account_ids || report_id;
                            balances_minor := balances_minor || report_balance;
                        END IF;
                    END IF;
                END LOOP;
            END IF;
"""
_DECLARE_0007 = "    previous_id integer;\n"
_DECLARE = "    previous_id integer;\n    report_id integer;\n    report_balance bigint;\n"

def schema_statements(schema: str) -> tuple[str, ...]:
    """The check queue and its functions; ``schema`` is where ``postings`` lives (quoted).

    The commit-time check reads ``postings`` qualified by its schema, with a fixed search path
    (``pg_catalog, pg_temp``): a caller's temporary table or ``search_path`` cannot stand in for
    ``postings`` and let an unbalanced entry commit. The two queue functions run as their owner
    (``SECURITY DEFINER``), so a role with only the ledger's grants can write a balanced entry in
    several statements (the queue is not theirs to grant); the per-statement trigger, on the hot
    path, calls the queue only for an entry its statement leaves unbalanced.
    """
    return (
        "CREATE SCHEMA tw_checks",
        "GRANT USAGE ON SCHEMA tw_checks TO PUBLIC",
        "CREATE TABLE tw_checks.entries_to_check (entry_id bigint NOT NULL)",
        f"""
    CREATE FUNCTION tw_checks.entry_balanced_at_commit() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DECLARE
        off_currency varchar;
        off_total numeric;
    BEGIN
        SELECT p.currency, sum(p.amount_minor) INTO off_currency, off_total
          FROM {schema}.postings p WHERE p.entry_id = NEW.entry_id
         GROUP BY p.currency HAVING sum(p.amount_minor) <> 0 LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'entry % does not balance: % %', NEW.entry_id, off_total, off_currency
                USING ERRCODE = 'check_violation';
        END IF;
        DELETE FROM tw_checks.entries_to_check WHERE entry_id = NEW.entry_id;
        RETURN NULL;
    END $$
    """,
        "CREATE CONSTRAINT TRIGGER entries_to_check_balanced AFTER INSERT ON tw_checks.entries_to_check "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tw_checks.entry_balanced_at_commit()",
        """
    CREATE FUNCTION tw_checks.queue_entries(entry_ids bigint[]) RETURNS void LANGUAGE sql
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        INSERT INTO tw_checks.entries_to_check (entry_id) SELECT unnest(entry_ids)
    $$
    """,
        """
    CREATE FUNCTION tw_postings_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT FROM new_postings GROUP BY entry_id, currency HAVING sum(amount_minor) <> 0) THEN
            PERFORM tw_checks.queue_entries(ARRAY(
                SELECT DISTINCT entry_id FROM new_postings GROUP BY entry_id, currency HAVING sum(amount_minor) <> 0));
        END IF;
        RETURN NULL;
    END $$
    """,
    )


STATEMENT_TRIGGER = (
    "CREATE TRIGGER postings_entry_balanced AFTER INSERT ON postings REFERENCING NEW TABLE AS new_postings "
    "FOR EACH STATEMENT EXECUTE FUNCTION tw_postings_balanced()"
)
#: 0001's trigger, as downgrading puts it back.
ROW_TRIGGER = (
    "CREATE CONSTRAINT TRIGGER postings_entry_balanced AFTER INSERT ON postings "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tw_entry_balanced()"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar_one()
    for statement in schema_statements(schema):
        op.execute(statement)
    op.execute("DROP TRIGGER postings_entry_balanced ON postings")
    op.execute(STATEMENT_TRIGGER)
    op.execute(post_entry())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_post_entry_0007())
    op.execute("DROP TRIGGER postings_entry_balanced ON postings")
    op.execute(ROW_TRIGGER)
    op.execute("DROP FUNCTION tw_postings_balanced()")
    op.execute("DROP SCHEMA tw_checks CASCADE")  # the table, its trigger and function


def post_entry() -> str:
    """0007's ``tw_post_entry`` with the report balances read one by one (``REPORT_READ``)."""
    text = _post_entry_0007()
    if text.count(_REPORT_READ_FROM) != 1 or text.count(_DECLARE_0007) != 1 or "= ANY(p_report)" not in text:
        raise RuntimeError("migration 0007's tw_post_entry is not the text 0009 amends")
    start = text.index(_REPORT_READ_FROM)
    end = text.index(_REPORT_READ_TO, start) + len(_REPORT_READ_TO)
    assert "= ANY(p_report)" in text[start:end], text[start:end]
    return (text[:start] + REPORT_READ + text[end:]).replace(_DECLARE_0007, _DECLARE)


def _post_entry_0007() -> str:
    """Migration 0007's function text, from its module as alembic loaded it."""
    script = op.get_context().script
    assert script is not None
    return str(script.get_revision("0007").module.POST_ENTRY)

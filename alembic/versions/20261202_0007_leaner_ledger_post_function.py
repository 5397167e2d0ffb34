"""PostgreSQL: ``tw_post_entry`` does the same posting with fewer statements.

Same signature, outcomes and guarantees as migration 0006; what changed inside:

1. The cached accounts are locked in ascending id order by a loop over ``SELECT
   ... ORDER BY id FOR UPDATE`` that also checks the floor as each row comes in:
   one statement where 0006 ran two (the lock, then a join looking for a short
   account). The first short account (lowest id) is reported, as before.
2. The idempotency key is no longer looked up before the locks: the entry insert
   (``ON CONFLICT DO NOTHING``) finds a stored key, and only then is the stored
   entry read (replay or conflict). A short account still looks the key up first,
   so a twin that committed while we waited for the locks is a replay, not a refusal.
3. The ``report`` balances are read only when the caller asked for some.
4. Two legs on one floored account are refused (the loop sees the id twice in a
   row): 0006 checked each leg against the starting balance and then applied one
   delta of the two. ``ledger.post`` never sends that (``validate_legs``); this
   guards the function itself.

For the common case (a new posting) that is two statements fewer per call. A
replay now takes the account locks briefly before it finds the key: it is rare,
and it writes nothing. The deferred ``postings_entry_balanced`` trigger is
unchanged. Downgrading restores 0006's body.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POST_ENTRY = """
CREATE OR REPLACE FUNCTION tw_post_entry(
    p_kind varchar, p_key varchar, p_hash varchar, p_memo varchar, p_reverses bigint, p_created_at timestamptz,
    p_accounts integer[], p_currencies varchar[], p_deltas bigint[], p_cached boolean[], p_report integer[],
    OUT outcome text, OUT posted_entry_id bigint, OUT balance_account_ids integer[], OUT balances_minor bigint[]
) LANGUAGE plpgsql AS $$
DECLARE
    stored_hash varchar;
    locked record;
    previous_id integer;
BEGIN
    FOR locked IN
        SELECT a.id, a.balance_minor AS balance, l.delta
          FROM accounts a JOIN unnest(p_accounts, p_deltas, p_cached) AS l(id, delta, cached) ON a.id = l.id
         WHERE l.cached
         ORDER BY a.id FOR UPDATE OF a
    LOOP
        IF locked.id = previous_id THEN  -- two legs on one floored account: the update would apply one
            RAISE EXCEPTION 'tw_post_entry: account % is in two legs of one entry', locked.id
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        previous_id := locked.id;
        IF locked.balance + locked.delta < 0 THEN
            -- a twin of this request may have committed while we waited for the locks
            SELECT e.id, e.request_hash INTO posted_entry_id, stored_hash FROM entries e WHERE e.idempotency_key = p_key;
            IF NOT FOUND THEN
                outcome := 'insufficient';
                balance_account_ids := ARRAY[locked.id];
                balances_minor := ARRAY[locked.balance];
                RETURN;
            END IF;
            EXIT;
        END IF;
    END LOOP;
    IF stored_hash IS NULL THEN
        INSERT INTO entries (kind, idempotency_key, request_hash, memo, reverses_entry_id, created_at)
        VALUES (p_kind, p_key, p_hash, p_memo, p_reverses, p_created_at)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id INTO posted_entry_id;
        IF posted_entry_id IS NOT NULL THEN
            WITH legs AS (
                SELECT * FROM unnest(p_accounts, p_currencies, p_deltas, p_cached) AS l(id, currency, delta, cached)
            ), moved AS (
                UPDATE accounts a SET balance_minor = a.balance_minor + legs.delta
                  FROM legs WHERE a.id = legs.id AND legs.cached
                RETURNING a.id, a.balance_minor
            ), written AS (
                INSERT INTO postings (entry_id, account_id, currency, amount_minor, balance_after_minor)
                SELECT posted_entry_id, legs.id, legs.currency, legs.delta, moved.balance_minor
                  FROM legs LEFT JOIN moved ON moved.id = legs.id
            )
            SELECT array_agg(moved.id), array_agg(moved.balance_minor)
              INTO balance_account_ids, balances_minor FROM moved;
            IF cardinality(p_report) > 0 THEN
                SELECT coalesce(balance_account_ids, '{}') || coalesce(array_agg(a.id), '{}'),
                       coalesce(balances_minor, '{}') || coalesce(array_agg(a.balance_minor), '{}')
                  INTO balance_account_ids, balances_minor
                  FROM accounts a WHERE a.id = ANY(p_report) AND NOT a.id = ANY(p_accounts);
            END IF;
            outcome := 'posted';
            RETURN;
        END IF;
        SELECT e.id, e.request_hash INTO posted_entry_id, stored_hash FROM entries e WHERE e.idempotency_key = p_key;
    END IF;
    IF stored_hash <> p_hash THEN
        outcome := 'conflict';
        RETURN;
    END IF;
    outcome := 'replayed';
    SELECT coalesce(array_agg(p.account_id), '{}'), coalesce(array_agg(p.balance_after_minor), '{}')
      INTO balance_account_ids, balances_minor
      FROM postings p WHERE p.entry_id = posted_entry_id AND p.balance_after_minor IS NOT NULL;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POST_ENTRY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_previous_body().replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))


def _previous_body() -> str:
    """Migration 0006's function text (its module is a file beside this one, not a package)."""
    path = Path(__file__).with_name("20261202_0006_ledger_post_function.py")
    spec = importlib.util.spec_from_file_location("tw_migration_0006", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.POST_ENTRY)

"""PostgreSQL: ``tw_post_entry``, the whole posting of a ledger entry as one server-side call.

One call (one round trip, and in autocommit no BEGIN/COMMIT around it) does what
``transfer_wallet.ledger.post`` did in a CTE plus a read:

1. an entry already stored under the key is a replay (same request hash: the
   balances of its postings) or a conflict (another hash); nothing moves;
2. the cached accounts are locked in ascending id order (no lock-order deadlock);
   a debit that would take one below zero writes nothing and reports the
   account and what it holds (``insufficient``), unless a concurrent twin of this
   request committed while we waited for the locks (then it is a replay);
3. the entry is inserted (``ON CONFLICT DO NOTHING``: a twin that won the race
   turns this into a replay), the cached balances move, the postings are written,
   and the balances after (plus those of the ``report`` accounts) come back.

The deferred ``postings_entry_balanced`` trigger still checks every entry at commit.
SQLite has no server-side functions: its posting path is in ``ledger.py``, and both
paths run the same tests (``tests/test_ledger*.py``, the property tests).
There is nothing on the model side: functions are not part of the metadata, so
``alembic check`` has nothing to compare.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

from typing import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = (
    "tw_post_entry(varchar, varchar, varchar, varchar, bigint, timestamptz, "
    "integer[], varchar[], bigint[], boolean[], integer[])"
)

POST_ENTRY = """
CREATE FUNCTION tw_post_entry(
    p_kind varchar, p_key varchar, p_hash varchar, p_memo varchar, p_reverses bigint, p_created_at timestamptz,
    p_accounts integer[], p_currencies varchar[], p_deltas bigint[], p_cached boolean[], p_report integer[],
    OUT outcome text, OUT posted_entry_id bigint, OUT balance_account_ids integer[], OUT balances_minor bigint[]
) LANGUAGE plpgsql AS $$
DECLARE
    stored_hash varchar;
    short_id integer;
    short_balance bigint;
BEGIN
    SELECT e.id, e.request_hash INTO posted_entry_id, stored_hash FROM entries e WHERE e.idempotency_key = p_key;
    IF NOT FOUND THEN
        PERFORM 1 FROM accounts a
          WHERE a.id IN (SELECT l.id FROM unnest(p_accounts, p_cached) AS l(id, cached) WHERE l.cached)
          ORDER BY a.id FOR UPDATE;
        SELECT a.id, a.balance_minor INTO short_id, short_balance
          FROM accounts a JOIN unnest(p_accounts, p_deltas, p_cached) AS l(id, delta, cached) ON a.id = l.id
         WHERE l.cached AND a.balance_minor + l.delta < 0
         ORDER BY a.id LIMIT 1;
        IF short_id IS NOT NULL THEN
            -- a twin of this request may have committed while we waited for the locks
            SELECT e.id, e.request_hash INTO posted_entry_id, stored_hash FROM entries e WHERE e.idempotency_key = p_key;
            IF NOT FOUND THEN
                outcome := 'insufficient';
                balance_account_ids := ARRAY[short_id];
                balances_minor := ARRAY[short_balance];
                RETURN;
            END IF;
        ELSE
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
                SELECT coalesce(balance_account_ids, '{}') || coalesce(array_agg(a.id), '{}'),
                       coalesce(balances_minor, '{}') || coalesce(array_agg(a.balance_minor), '{}')
                  INTO balance_account_ids, balances_minor
                  FROM accounts a WHERE a.id = ANY(p_report) AND NOT a.id = ANY(p_accounts);
                outcome := 'posted';
                RETURN;
            END IF;
            SELECT e.id, e.request_hash INTO posted_entry_id, stored_hash FROM entries e WHERE e.idempotency_key = p_key;
        END IF;
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
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")

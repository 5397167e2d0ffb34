"""PostgreSQL: the session step functions of 0008 with fewer statements and no per-session growth.

Same signatures, outcomes, fallbacks and errors as migration 0008; what changed inside:

1. ``tw_session_open`` counted the player's open sessions with ``status IN (...)`` on
   the (player, provider, status) index, which the planner ran as a filter (one
   heap visit per session the player *ever* had at the provider: 0.6 ms at 1,500
   sessions, and growing). The count is now three equality probes of that index,
   one per open state; the key, the count and the limits are one statement, read
   after the accounts are locked as before.
2. ``tw_transfer_applied`` finds and locks the session in its own statement (no call
   of ``tw_session_of_transfer``, the same ``FOR UPDATE OF`` join), checks what the
   settlement may not book inline (was ``tw_session_settle_check``), and an
   activated session's view is built from the row the update returns (its one
   transfer read with it), not read again through ``tw_session_view``.
3. ``tw_session_settle`` builds the settlement's request hash directly: its legs
   always sort as house, locked, main (``house:`` < ``player:``, ``:locked`` <
   ``:main``), so the canonical JSON needs no ``unnest``/``string_agg`` query
   (``tw_entry_hash`` stays for the unlock). Tests hold it equal to
   ``ledger.request_hash`` for every shape (with and without house and main legs).

``tw_post_entry``, the postings trigger and the other functions are unchanged.
Downgrading restores 0008's bodies of the three functions.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Sequence

from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = """
CREATE OR REPLACE FUNCTION tw_session_open(
    p_session_id varchar, p_player_id varchar, p_provider varchar, p_currency varchar,
    p_main_id integer, p_locked_id integer, p_amount bigint, p_key varchar, p_request_hash varchar,
    p_entry_hash varchar, p_max_open integer, p_idle_timeout_s integer, p_max_session_s integer,
    p_now timestamptz, p_deadline timestamptz, p_created_at timestamptz,
    OUT outcome text, OUT reason text
) LANGUAGE plpgsql AS $$
DECLARE
    posted record;
    key_used boolean;
    open_count bigint;
    has_limits boolean;
BEGIN
    outcome := 'python';
    -- this player's opens are serialised from here: the key, the count and the limits hold
    PERFORM 1 FROM accounts WHERE id IN (p_main_id, p_locked_id) ORDER BY id FOR UPDATE;
    -- read after the lock (a statement of its own: its snapshot sees a twin that committed while we waited);
    -- one index probe per open state, so closed sessions of the player are never visited
    SELECT EXISTS (SELECT 1 FROM game_sessions WHERE open_key = p_key),
           (SELECT count(*) FROM game_sessions
             WHERE player_id = p_player_id AND provider = p_provider AND status = 'opening')
           + (SELECT count(*) FROM game_sessions
               WHERE player_id = p_player_id AND provider = p_provider AND status = 'active')
           + (SELECT count(*) FROM game_sessions
               WHERE player_id = p_player_id AND provider = p_provider AND status = 'closing'),
           EXISTS (SELECT 1 FROM player_limits WHERE player_id = p_player_id AND effective_from <= p_now)
      INTO key_used, open_count, has_limits;
    IF key_used THEN
        reason := 'key used'; RETURN;
    END IF;
    IF open_count >= p_max_open THEN
        reason := 'max open'; RETURN;
    END IF;
    IF has_limits THEN
        reason := 'limits'; RETURN;
    END IF;
    SELECT * INTO posted FROM tw_post_entry(
        'session_lock', 'session:' || p_session_id || ':lock', p_entry_hash, NULL, NULL, p_created_at,
        ARRAY[p_main_id, p_locked_id], ARRAY[p_currency, p_currency], ARRAY[-p_amount, p_amount],
        ARRAY[true, true], '{}');
    IF posted.outcome <> 'posted' THEN  -- short funds (nothing written), or a key that cannot repeat
        reason := 'posting ' || posted.outcome; RETURN;
    END IF;
    INSERT INTO game_sessions (
        id, player_id, provider, status, wallet_currency, game_currency, amount_in_minor, game_amount_in_minor,
        game_balance_minor, mirrored, open_key, open_request_hash, idle_timeout_s, max_session_s, opened_at,
        last_activity_at, deadline_at, close_attempts, stuck)
    VALUES (p_session_id, p_player_id, p_provider, 'opening', p_currency, p_currency, p_amount, p_amount,
        0, false, p_key, p_request_hash, p_idle_timeout_s, p_max_session_s, p_now,
        p_now, p_deadline, 0, false);
    INSERT INTO transfers (
        id, session_id, player_id, provider, direction, status, wallet_currency, amount_minor, game_currency,
        game_amount_minor, fx_rate, fx_residue_minor, attempts, created_at, updated_at)
    VALUES (p_session_id || '-in', p_session_id, p_player_id, p_provider, 'IN', 'pending', p_currency, p_amount,
        p_currency, p_amount, NULL, 0, 0, p_now, p_now);
    outcome := 'done';
END $$;
"""

SETTLE = """
CREATE OR REPLACE FUNCTION tw_session_settle(
    s game_sessions, p_transfer_id varchar, p_game_amount bigint, p_provider_tx_id varchar,
    p_now timestamptz, p_created_at timestamptz
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    main_id integer;
    locked_id integer;
    house_id integer;
    house_code varchar := 'house:' || s.provider || ':' || s.wallet_currency;
    game_result bigint := s.amount_in_minor - p_game_amount;  -- the house wins what the player lost
    ccy text := to_json(s.wallet_currency::text)::text;
    ids integer[];
    deltas bigint[];
    cached boolean[];
    canonical text;
    posted record;
BEGIN
    -- same currency only (the caller checked): what came back is what goes to main
    SELECT max(id) FILTER (WHERE kind = 'player_main'), max(id) FILTER (WHERE kind = 'player_locked')
      INTO main_id, locked_id FROM accounts WHERE player_id = s.player_id;
    ids := ARRAY[locked_id];
    deltas := ARRAY[-s.amount_in_minor];
    cached := ARRAY[true];
    -- ledger.request_hash's canonical JSON; its legs sort as house, locked, main ('house:' < 'player:',
    -- ':locked' < ':main'), so they are written in that order (tw_entry_hash sorts them by a query)
    canonical := '[' || to_json(('player:' || s.player_id || ':locked')::text)::text || ',' || ccy || ','
                 || (-s.amount_in_minor)::text || ']';
    IF p_game_amount <> 0 THEN
        ids := ids || main_id; deltas := deltas || p_game_amount; cached := cached || true;
        canonical := canonical || ',[' || to_json(('player:' || s.player_id || ':main')::text)::text || ','
                     || ccy || ',' || p_game_amount::text || ']';
    END IF;
    IF game_result <> 0 THEN
        SELECT id INTO house_id FROM accounts WHERE code = house_code;
        IF NOT FOUND THEN
            INSERT INTO accounts (code, kind, currency, provider, cached, balance_minor, created_at)
            VALUES (house_code, 'house', s.wallet_currency, s.provider, false, 0, p_created_at)
            ON CONFLICT (code) DO NOTHING;
            SELECT id INTO house_id FROM accounts WHERE code = house_code;
        END IF;
        ids := ids || house_id; deltas := deltas || game_result; cached := cached || false;
        canonical := '[' || to_json(house_code::text)::text || ',' || ccy || ',' || game_result::text || '],'
                     || canonical;
    END IF;
    canonical := '{"kind":"session_settle","legs":[' || canonical || '],"request":{}}';
    IF canonical !~ '^[ -~]*$' THEN  -- Python escapes what is not ASCII; account codes never hold it
        RAISE EXCEPTION 'tw_entry_hash: account codes must be printable ASCII' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO posted FROM tw_post_entry(
        'session_settle', 'session:' || s.id || ':settle', encode(sha256(convert_to(canonical, 'UTF8')), 'hex'),
        NULL, NULL, p_created_at, ids, array_fill(s.wallet_currency, ARRAY[cardinality(ids)]), deltas, cached, '{}');
    IF posted.outcome NOT IN ('posted', 'replayed') THEN
        RETURN 'posting ' || posted.outcome;  -- nothing written: the caller falls back
    END IF;
    UPDATE transfers SET status = 'completed', updated_at = p_now, provider_tx_id = p_provider_tx_id,
           completed_at = p_now, amount_minor = p_game_amount, game_amount_minor = p_game_amount, fx_rate = NULL,
           fx_residue_minor = 0, entry_id = posted.posted_entry_id
     WHERE id = p_transfer_id AND status IN ('pending', 'in_doubt');
    -- TWC01 is ConcurrencyError in Python, what state.move raises for a lost race. Neither check below
    -- can fire: every caller holds the session's row lock (tw_transfer_applied, or FOR UPDATE in
    -- tw_session_close_intent) and read the session and the transfer under it. They stay as guards.
    IF NOT FOUND THEN  -- rolls the settlement back
        RAISE EXCEPTION 'transfer % was finished concurrently; try again', p_transfer_id USING ERRCODE = 'TWC01';
    END IF;
    UPDATE game_sessions SET status = 'closed', closed_at = p_now, amount_out_minor = p_game_amount,
           game_amount_out_minor = p_game_amount, next_attempt_at = NULL, stuck = false
     WHERE id = s.id AND status = 'closing';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'session % changed state concurrently; try again', s.id USING ERRCODE = 'TWC01';
    END IF;
    RETURN NULL;
END $$;
"""

APPLIED = """
CREATE OR REPLACE FUNCTION tw_transfer_applied(
    p_transfer_id varchar, p_game_currency varchar, p_game_amount bigint, p_provider_tx_id varchar,
    p_now timestamptz, p_created_at timestamptz, p_review_multiple numeric, p_review_amount_flag boolean,
    p_view boolean, OUT outcome text, OUT reason text, OUT view json
) LANGUAGE plpgsql AS $$
DECLARE
    s game_sessions;
    t transfers;
BEGIN
    outcome := 'python';
    -- every finisher of a transfer takes its session's lock before it reads the transfer's state,
    -- so that the worker that loses a race sees the winner's result
    SELECT gs.* INTO s FROM game_sessions gs JOIN transfers tr ON tr.session_id = gs.id
     WHERE tr.id = p_transfer_id FOR UPDATE OF gs;
    IF NOT FOUND THEN
        reason := 'unknown transfer'; RETURN;
    END IF;
    SELECT * INTO t FROM transfers WHERE id = p_transfer_id;
    IF t.status IN ('pending', 'in_doubt') THEN
        IF p_game_currency <> s.game_currency OR p_game_amount < 0
           OR (t.game_amount_minor IS NOT NULL AND p_game_amount <> t.game_amount_minor) THEN
            reason := 'answer does not fit'; RETURN;
        END IF;
        IF t.direction = 'IN' THEN
            IF s.status <> 'opening' THEN
                reason := 'state ' || s.status; RETURN;
            END IF;
            UPDATE transfers SET status = 'completed', updated_at = p_now, provider_tx_id = p_provider_tx_id,
                   completed_at = p_now
             WHERE id = p_transfer_id;
            UPDATE game_sessions SET status = 'active', game_balance_minor = game_amount_in_minor,
                   last_activity_at = p_now, stuck = false,
                   deadline_at = least(p_now + idle_timeout_s * interval '1 second',
                                       opened_at + max_session_s * interval '1 second')
             WHERE id = s.id RETURNING * INTO s;
            outcome := 'done';
            IF p_view THEN  -- the session as updated, and its transfers (the one just completed among them)
                view := json_build_object(
                    'session', json_build_object(
                        'id', s.id, 'player_id', s.player_id, 'provider', s.provider, 'status', s.status,
                        'wallet_currency', s.wallet_currency, 'game_currency', s.game_currency,
                        'amount_in_minor', s.amount_in_minor, 'game_amount_in_minor', s.game_amount_in_minor,
                        'game_balance_minor', s.game_balance_minor, 'amount_out_minor', s.amount_out_minor,
                        'game_amount_out_minor', s.game_amount_out_minor, 'opened_at', s.opened_at,
                        'last_activity_at', s.last_activity_at, 'deadline_at', s.deadline_at,
                        'closed_at', s.closed_at, 'close_reason', s.close_reason,
                        'failure_reason', s.failure_reason, 'stuck', s.stuck),
                    'transfers', (SELECT json_agg(x ORDER BY x.created_at, x.id) FROM (
                        SELECT id, direction, status, amount_minor, game_amount_minor, fx_rate, attempts,
                               last_error, provider_tx_id, created_at
                          FROM transfers WHERE session_id = s.id) x));
            END IF;
            RETURN;
        END IF;
        reason := CASE  -- what the settlement must not book here (FX, another state, a finding): Python's turn
            WHEN s.wallet_currency <> s.game_currency THEN 'fx'
            WHEN s.status <> 'closing' THEN 'state ' || s.status
            WHEN s.mirrored AND p_game_amount <> s.game_balance_minor THEN 'conservation'
            WHEN p_review_amount_flag THEN 'review amount'
            WHEN p_review_multiple IS NOT NULL AND p_game_amount > p_review_multiple * s.game_amount_in_minor
                THEN 'review multiple'
        END;
        IF reason IS NULL THEN
            reason := tw_session_settle(s, p_transfer_id, p_game_amount, p_provider_tx_id, p_now, p_created_at);
        END IF;
        IF reason IS NOT NULL THEN
            RETURN;
        END IF;
    END IF;  -- else another worker finished it first: booked already
    outcome := 'done';
    IF p_view THEN
        view := tw_session_view(s.id);
    END IF;
END $$;
"""

#: The functions this migration replaces, as 0008 named them in its bodies (downgrade puts those back).
REPLACED = {"tw_session_open": "OPEN", "tw_session_settle": "SETTLE", "tw_transfer_applied": "APPLIED"}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for body in (OPEN, SETTLE, APPLIED):
            op.execute(_literal_colons(body))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        previous = _migration_0008()
        for name, block in REPLACED.items():
            op.execute(previous._literal_colons(_function_of(getattr(previous, block), name)))


def _function_of(block: str, name: str) -> str:
    """The ``CREATE FUNCTION name`` statement of 0008's ``block``, as ``CREATE OR REPLACE``."""
    start = block.index(f"CREATE FUNCTION {name}(")
    end = block.index("END $$;", start) + len("END $$;")
    return "CREATE OR REPLACE" + block[start + len("CREATE"):end]


def _migration_0008() -> ModuleType:
    """Migration 0008's module (a file beside this one, not a package)."""
    path = Path(__file__).with_name("20261202_0008_session_step_functions.py")
    spec = importlib.util.spec_from_file_location("tw_migration_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _literal_colons(body: str) -> str:
    """``body`` with the colons of ``':lock'`` and friends escaped (``op.execute`` reads ``:name`` as a parameter)."""
    return re.sub(r"(?<![:\w]):(?=\w)", r"\\:", body)

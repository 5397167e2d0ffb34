"""PostgreSQL: each durable step of a session is one server-side call.

A session open+close is four durable steps (``transfer_wallet.sessions``): the
open intent (lock the funds, write the session and its PENDING transfer-in), the
open outcome, the close intent and the close outcome (the settlement). Each was
a Python transaction of several statements; here each is one function, called
once in autocommit by ``transfer_wallet.sessions.server_steps``:

- ``tw_session_open``: accounts locked in id order, the key looked up (under the
  lock, so a twin that committed first is seen), the open count, the lock entry
  through ``tw_post_entry`` (floors, idempotency, the balance trigger stay there),
  the session and its transfer-in;
- ``tw_transfer_applied``: a transfer-in activates its session; a transfer-out
  settles it (locked money out, what came back to main, the game result to the
  house), guarded by the transfer's state under the session lock;
- ``tw_transfer_refused`` / ``tw_transfer_in_doubt``: the refund of a refused
  transfer-in, the retry bookkeeping of a refused transfer-out, in doubt;
- ``tw_session_close_intent``: the close key, ACTIVE -> CLOSING, the transfer-out
  to send (the open one again, or a new one; settled here when it is zero).

Each function does only the common path. Anything else (a key seen before, too
many open sessions, responsible-gaming limits, another currency, short funds, a
state the step does not expect, an answer that does not fit, a discrepancy to
record) makes it return ``python`` with a reason *before it writes anything*, and
the caller runs the Python step, which raises the errors and records the findings
as it always did. The helpers: ``tw_entry_hash`` (``ledger.request_hash`` for an
entry without a caller's request), ``tw_session_backoff``
(``SessionPolicy.next_attempt``), ``tw_session_view`` (the session and its
transfers as JSON, what ``session_views.read_view`` reads); tests hold each equal
to its Python twin. Downgrading drops them all: set ``TW_SESSION_SERVER_STEPS=0`` first (a call that
finds its function missing falls back to the Python step with a warning; the switch saves the failed call).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 13:00:00
"""

from __future__ import annotations

import re
from typing import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HELPERS = """
CREATE FUNCTION tw_entry_hash(p_kind varchar, p_codes varchar[], p_currencies varchar[], p_deltas bigint[])
RETURNS varchar LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    canonical text;
BEGIN
    -- json.dumps(sort_keys=True, separators=(",", ":")) of {"kind", "legs" sorted, "request": {}}
    SELECT '{"kind":' || to_json(p_kind::text)::text || ',"legs":['
           || string_agg('[' || to_json(l.code::text)::text || ',' || to_json(l.ccy::text)::text || ','
                         || l.delta::text || ']', ',' ORDER BY l.code COLLATE "C", l.ccy COLLATE "C", l.delta)
           || '],"request":{}}'
      INTO canonical
      FROM unnest(p_codes, p_currencies, p_deltas) AS l(code, ccy, delta);
    IF canonical !~ '^[ -~]*$' THEN  -- Python escapes what is not ASCII; account codes never hold it
        RAISE EXCEPTION 'tw_entry_hash: account codes must be printable ASCII' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN encode(sha256(convert_to(canonical, 'UTF8')), 'hex');
END $$;

CREATE FUNCTION tw_session_backoff(p_attempts integer, p_base_s integer, p_max_s integer, p_now timestamptz)
RETURNS timestamptz LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN p_now + least(p_base_s * power(2::numeric, greatest(p_attempts - 1, 0)), p_max_s::numeric)::bigint
                   * interval '1 second';
END $$;

CREATE FUNCTION tw_session_view(p_session_id varchar) RETURNS json LANGUAGE plpgsql AS $$
BEGIN  -- PL/pgSQL, not SQL: its plans are kept for the connection (a SQL function is planned on every call)
    RETURN json_build_object(
        'session', (SELECT row_to_json(s) FROM (
            SELECT id, player_id, provider, status, wallet_currency, game_currency, amount_in_minor,
                   game_amount_in_minor, game_balance_minor, amount_out_minor, game_amount_out_minor, opened_at,
                   last_activity_at, deadline_at, closed_at, close_reason, failure_reason, stuck
              FROM game_sessions WHERE id = p_session_id) s),
        'transfers', coalesce((SELECT json_agg(t ORDER BY t.created_at, t.id) FROM (
            SELECT id, direction, status, amount_minor, game_amount_minor, fx_rate, attempts, last_error,
                   provider_tx_id, created_at
              FROM transfers WHERE session_id = p_session_id) t), '[]'::json));
END $$;

CREATE FUNCTION tw_session_of_transfer(p_transfer_id varchar) RETURNS game_sessions LANGUAGE plpgsql AS $$
DECLARE
    s game_sessions;
BEGIN
    -- every finisher of a transfer takes its session's lock before it reads the transfer's state,
    -- so that the worker that loses a race sees the winner's result (NULL: no such transfer)
    SELECT gs.* INTO s FROM game_sessions gs JOIN transfers tr ON tr.session_id = gs.id
     WHERE tr.id = p_transfer_id FOR UPDATE OF gs;
    RETURN s;
END $$;
"""

OPEN = """
CREATE FUNCTION tw_session_open(
    p_session_id varchar, p_player_id varchar, p_provider varchar, p_currency varchar,
    p_main_id integer, p_locked_id integer, p_amount bigint, p_key varchar, p_request_hash varchar,
    p_entry_hash varchar, p_max_open integer, p_idle_timeout_s integer, p_max_session_s integer,
    p_now timestamptz, p_deadline timestamptz, p_created_at timestamptz,
    OUT outcome text, OUT reason text
) LANGUAGE plpgsql AS $$
DECLARE
    posted record;
BEGIN
    outcome := 'python';
    -- this player's opens are serialised from here: the key, the count and the limits hold
    PERFORM 1 FROM accounts WHERE id IN (p_main_id, p_locked_id) ORDER BY id FOR UPDATE;
    IF EXISTS (SELECT 1 FROM game_sessions WHERE open_key = p_key) THEN
        reason := 'key used'; RETURN;
    END IF;
    IF (SELECT count(*) FROM game_sessions WHERE player_id = p_player_id AND provider = p_provider
          AND status IN ('opening', 'active', 'closing')) >= p_max_open THEN
        reason := 'max open'; RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM player_limits WHERE player_id = p_player_id AND effective_from <= p_now) THEN
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
CREATE FUNCTION tw_session_settle(
    s game_sessions, p_transfer_id varchar, p_game_amount bigint, p_provider_tx_id varchar,
    p_now timestamptz, p_created_at timestamptz
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    main_id integer;
    locked_id integer;
    house_id integer;
    house_code varchar := 'house:' || s.provider || ':' || s.wallet_currency;
    game_result bigint := s.amount_in_minor - p_game_amount;  -- the house wins what the player lost
    ids integer[];
    codes varchar[];
    deltas bigint[];
    cached boolean[];
    currencies varchar[];
    posted record;
BEGIN
    -- same currency only (the caller checked): what came back is what goes to main
    SELECT max(id) FILTER (WHERE kind = 'player_main'), max(id) FILTER (WHERE kind = 'player_locked')
      INTO main_id, locked_id FROM accounts WHERE player_id = s.player_id;
    ids := ARRAY[locked_id];
    codes := ARRAY['player:' || s.player_id || ':locked'];
    deltas := ARRAY[-s.amount_in_minor];
    cached := ARRAY[true];
    IF p_game_amount <> 0 THEN
        ids := ids || main_id; codes := codes || ('player:' || s.player_id || ':main');
        deltas := deltas || p_game_amount; cached := cached || true;
    END IF;
    IF game_result <> 0 THEN
        SELECT id INTO house_id FROM accounts WHERE code = house_code;
        IF NOT FOUND THEN
            INSERT INTO accounts (code, kind, currency, provider, cached, balance_minor, created_at)
            VALUES (house_code, 'house', s.wallet_currency, s.provider, false, 0, p_created_at)
            ON CONFLICT (code) DO NOTHING;
            SELECT id INTO house_id FROM accounts WHERE code = house_code;
        END IF;
        ids := ids || house_id; codes := codes || house_code; deltas := deltas || game_result;
        cached := cached || false;
    END IF;
    currencies := array_fill(s.wallet_currency, ARRAY[cardinality(ids)]);
    SELECT * INTO posted FROM tw_post_entry(
        'session_settle', 'session:' || s.id || ':settle', tw_entry_hash('session_settle', codes, currencies, deltas),
        NULL, NULL, p_created_at, ids, currencies, deltas, cached, '{}');
    IF posted.outcome NOT IN ('posted', 'replayed') THEN
        RETURN 'posting ' || posted.outcome;  -- nothing written: the caller falls back
    END IF;
    UPDATE transfers SET status = 'completed', updated_at = p_now, provider_tx_id = p_provider_tx_id,
           completed_at = p_now, amount_minor = p_game_amount, game_amount_minor = p_game_amount, fx_rate = NULL,
           fx_residue_minor = 0, entry_id = posted.posted_entry_id
     WHERE id = p_transfer_id AND status IN ('pending', 'in_doubt');
    -- TWC01 is ConcurrencyError in Python, what state.move raises for a lost race. Neither check below
    -- can fire: every caller holds the session's row lock (tw_session_of_transfer, or FOR UPDATE in
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

CREATE FUNCTION tw_session_settle_check(
    s game_sessions, p_game_amount bigint, p_review_multiple numeric, p_review_amount_flag boolean
) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN  -- why the settlement must take the Python path (FX, a state it does not expect, a finding), or NULL
    RETURN CASE
        WHEN s.wallet_currency <> s.game_currency THEN 'fx'
        WHEN s.status <> 'closing' THEN 'state ' || s.status
        WHEN s.mirrored AND p_game_amount <> s.game_balance_minor THEN 'conservation'
        WHEN p_review_amount_flag THEN 'review amount'
        WHEN p_review_multiple IS NOT NULL AND p_game_amount > p_review_multiple * s.game_amount_in_minor
            THEN 'review multiple'
    END;
END $$;
"""

APPLIED = """
CREATE FUNCTION tw_transfer_applied(
    p_transfer_id varchar, p_game_currency varchar, p_game_amount bigint, p_provider_tx_id varchar,
    p_now timestamptz, p_created_at timestamptz, p_review_multiple numeric, p_review_amount_flag boolean,
    p_view boolean, OUT outcome text, OUT reason text, OUT view json
) LANGUAGE plpgsql AS $$
DECLARE
    s game_sessions;
    t transfers;
BEGIN
    outcome := 'python';
    s := tw_session_of_transfer(p_transfer_id);
    IF s.id IS NULL THEN
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
             WHERE id = s.id;
        ELSE
            reason := tw_session_settle_check(s, p_game_amount, p_review_multiple, p_review_amount_flag);
            IF reason IS NULL THEN
                reason := tw_session_settle(s, p_transfer_id, p_game_amount, p_provider_tx_id, p_now, p_created_at);
            END IF;
            IF reason IS NOT NULL THEN
                RETURN;
            END IF;
        END IF;
    END IF;  -- else another worker finished it first: booked already
    outcome := 'done';
    IF p_view THEN
        view := tw_session_view(s.id);
    END IF;
END $$;
"""

REFUSED = """
CREATE FUNCTION tw_transfer_refused(
    p_transfer_id varchar, p_error varchar, p_now timestamptz, p_created_at timestamptz,
    p_stuck_after integer, p_retry_base_s integer, p_retry_max_s integer, p_view boolean,
    OUT outcome text, OUT reason text, OUT view json
) LANGUAGE plpgsql AS $$
DECLARE
    s game_sessions;
    t transfers;
    main_id integer;
    locked_id integer;
    codes varchar[];
    posted record;
    close_count integer;
BEGIN
    outcome := 'python';
    s := tw_session_of_transfer(p_transfer_id);
    IF s.id IS NULL THEN
        reason := 'unknown transfer'; RETURN;
    END IF;
    SELECT * INTO t FROM transfers WHERE id = p_transfer_id;
    IF t.status IN ('pending', 'in_doubt') AND t.direction = 'IN' THEN
        IF s.status <> 'opening' OR t.fx_residue_minor <> 0 OR s.wallet_currency <> s.game_currency THEN
            reason := CASE WHEN s.status <> 'opening' THEN 'state ' || s.status ELSE 'fx' END; RETURN;
        END IF;
        -- nothing reached the provider: every cent goes back
        SELECT max(id) FILTER (WHERE kind = 'player_main'), max(id) FILTER (WHERE kind = 'player_locked')
          INTO main_id, locked_id FROM accounts WHERE player_id = s.player_id;
        codes := ARRAY['player:' || s.player_id || ':locked', 'player:' || s.player_id || ':main'];
        SELECT * INTO posted FROM tw_post_entry(
            'session_unlock', 'session:' || s.id || ':unlock',
            tw_entry_hash('session_unlock', codes, ARRAY[s.wallet_currency, s.wallet_currency],
                          ARRAY[-s.amount_in_minor, s.amount_in_minor]),
            NULL, NULL, p_created_at, ARRAY[locked_id, main_id], ARRAY[s.wallet_currency, s.wallet_currency],
            ARRAY[-s.amount_in_minor, s.amount_in_minor], ARRAY[true, true], '{}');
        IF posted.outcome NOT IN ('posted', 'replayed') THEN
            reason := 'posting ' || posted.outcome; RETURN;
        END IF;
        UPDATE transfers SET status = 'refused', updated_at = p_now, last_error = p_error, attempts = t.attempts + 1
         WHERE id = p_transfer_id;
        UPDATE game_sessions SET status = 'failed', failure_reason = p_error, closed_at = p_now WHERE id = s.id;
    ELSIF t.status IN ('pending', 'in_doubt') THEN
        -- transfer-out refused: the money is still at the provider; retried later under a new id
        UPDATE transfers SET status = 'refused', updated_at = p_now, last_error = p_error, attempts = t.attempts + 1
         WHERE id = p_transfer_id;
        close_count := s.close_attempts + 1;
        UPDATE game_sessions SET close_attempts = close_count, stuck = close_count >= p_stuck_after,
               next_attempt_at = tw_session_backoff(close_count, p_retry_base_s, p_retry_max_s, p_now),
               failure_reason = p_error
         WHERE id = s.id;
    END IF;  -- else finished meanwhile: nothing to refuse any more
    outcome := 'done';
    IF p_view THEN
        view := tw_session_view(s.id);
    END IF;
END $$;
"""

IN_DOUBT = """
CREATE FUNCTION tw_transfer_in_doubt(
    p_transfer_id varchar, p_error varchar, p_now timestamptz,
    p_stuck_after integer, p_retry_base_s integer, p_retry_max_s integer, p_view boolean,
    OUT outcome text, OUT reason text, OUT view json
) LANGUAGE plpgsql AS $$
DECLARE
    s game_sessions;
    t transfers;
    next_at timestamptz;
BEGIN
    outcome := 'python';
    s := tw_session_of_transfer(p_transfer_id);
    IF s.id IS NULL THEN
        reason := 'unknown transfer'; RETURN;
    END IF;
    SELECT * INTO t FROM transfers WHERE id = p_transfer_id;
    IF t.status IN ('pending', 'in_doubt') THEN  -- else finished meanwhile: nothing is in doubt any more
        next_at := tw_session_backoff(t.attempts + 1, p_retry_base_s, p_retry_max_s, p_now);
        UPDATE transfers SET status = 'in_doubt', updated_at = p_now, attempts = t.attempts + 1,
               last_error = p_error, next_attempt_at = next_at
         WHERE id = p_transfer_id;
        UPDATE game_sessions SET stuck = t.attempts + 1 >= p_stuck_after,
               close_attempts = CASE WHEN t.direction = 'OUT' THEN t.attempts + 1 ELSE close_attempts END,
               next_attempt_at = CASE WHEN t.direction = 'OUT' THEN next_at ELSE next_attempt_at END
         WHERE id = s.id;
    END IF;
    outcome := 'done';
    IF p_view THEN
        view := tw_session_view(s.id);
    END IF;
END $$;
"""

CLOSE_INTENT = """
CREATE FUNCTION tw_session_close_intent(
    p_session_id varchar, p_key varchar, p_reason varchar, p_timeout boolean, p_now timestamptz,
    p_created_at timestamptz, p_providers varchar[], p_withdraw_all boolean[], p_zero_review_flags boolean[],
    OUT outcome text, OUT reason text, OUT out_transfer_id varchar, OUT out_provider varchar,
    OUT out_player_id varchar, OUT out_game_currency varchar, OUT out_game_amount_minor bigint, OUT view json
) LANGUAGE plpgsql AS $$
DECLARE
    s game_sessions;
    open_id varchar;
    open_amount bigint;
    outs integer;
    policy_at integer;
BEGIN
    outcome := 'python';
    SELECT * INTO s FROM game_sessions WHERE id = p_session_id FOR UPDATE;
    IF NOT FOUND THEN
        reason := 'unknown session'; RETURN;
    END IF;
    IF p_key IS NOT NULL AND EXISTS (SELECT 1 FROM game_sessions WHERE close_key = p_key AND id <> s.id) THEN
        reason := 'close key of another session'; RETURN;
    END IF;
    IF s.status NOT IN ('active', 'closing', 'closed', 'failed') THEN
        reason := 'state ' || s.status; RETURN;
    END IF;
    SELECT count(*),
           (array_agg(tr.id ORDER BY tr.created_at DESC, tr.id DESC) FILTER (WHERE tr.status IN ('pending', 'in_doubt')))[1],
           (array_agg(tr.game_amount_minor ORDER BY tr.created_at DESC, tr.id DESC)
               FILTER (WHERE tr.status IN ('pending', 'in_doubt')))[1]
      INTO outs, open_id, open_amount FROM transfers tr WHERE tr.session_id = s.id AND tr.direction = 'OUT';
    policy_at := array_position(p_providers, s.provider);
    IF open_id IS NULL AND s.status IN ('active', 'closing') THEN
        IF policy_at IS NULL THEN
            reason := 'unknown provider'; RETURN;
        END IF;
        -- a zero settlement books nothing to review and nothing to conserve (it returns the mirrored 0)
        IF NOT p_withdraw_all[policy_at] AND s.game_balance_minor = 0
           AND (s.wallet_currency <> s.game_currency OR p_zero_review_flags[policy_at]) THEN
            reason := 'zero settlement'; RETURN;
        END IF;
    END IF;
    -- from here on the step writes: nothing below falls back
    IF p_key IS NOT NULL AND s.close_key IS NULL THEN
        UPDATE game_sessions SET close_key = p_key WHERE id = s.id;
    END IF;
    outcome := 'done';
    IF s.status = 'active' AND p_timeout AND s.deadline_at > p_now THEN
        view := tw_session_view(s.id);  -- play extended the session after the sweep picked it: not due any more
        RETURN;
    END IF;
    IF s.status IN ('closed', 'failed') THEN
        view := tw_session_view(s.id);
        RETURN;
    END IF;
    IF s.status = 'active' THEN
        UPDATE game_sessions SET status = 'closing', closing_at = p_now, close_reason = p_reason
         WHERE id = s.id RETURNING * INTO s;
    END IF;
    out_provider := s.provider;
    out_player_id := s.player_id;
    out_game_currency := s.game_currency;
    IF open_id IS NOT NULL THEN  -- re-send the same id with the same content: applied at most once
        outcome := 'send';
        out_transfer_id := open_id;
        out_game_amount_minor := open_amount;
        RETURN;
    END IF;
    out_transfer_id := s.id || '-out' || (outs + 1);
    out_game_amount_minor := CASE WHEN p_withdraw_all[policy_at] THEN NULL ELSE s.game_balance_minor END;
    INSERT INTO transfers (
        id, session_id, player_id, provider, direction, status, wallet_currency, game_currency,
        game_amount_minor, fx_residue_minor, attempts, created_at, updated_at)
    VALUES (out_transfer_id, s.id, s.player_id, s.provider, 'OUT', 'pending', s.wallet_currency, s.game_currency,
        out_game_amount_minor, 0, 0, p_now, p_now);
    IF out_game_amount_minor = 0 THEN
        -- everything of this session was lost at the provider: nothing to withdraw, settled here
        reason := tw_session_settle(s, out_transfer_id, 0, 'none', p_now, p_created_at);
        IF reason IS NOT NULL THEN
            RAISE EXCEPTION 'zero settlement of session % failed: %', s.id, reason USING ERRCODE = 'TW409';
        END IF;
        view := tw_session_view(s.id);
        RETURN;
    END IF;
    outcome := 'send';
END $$;
"""

FUNCTIONS = (
    "tw_session_close_intent(varchar, varchar, varchar, boolean, timestamptz, timestamptz, varchar[], boolean[], "
    "boolean[])",
    "tw_transfer_in_doubt(varchar, varchar, timestamptz, integer, integer, integer, boolean)",
    "tw_transfer_refused(varchar, varchar, timestamptz, timestamptz, integer, integer, integer, boolean)",
    "tw_transfer_applied(varchar, varchar, bigint, varchar, timestamptz, timestamptz, numeric, boolean, boolean)",
    "tw_session_settle_check(game_sessions, bigint, numeric, boolean)",
    "tw_session_settle(game_sessions, varchar, bigint, varchar, timestamptz, timestamptz)",
    "tw_session_open(varchar, varchar, varchar, varchar, integer, integer, bigint, varchar, varchar, varchar, "
    "integer, integer, integer, timestamptz, timestamptz, timestamptz)",
    "tw_session_view(varchar)",
    "tw_session_of_transfer(varchar)",
    "tw_session_backoff(integer, integer, integer, timestamptz)",
    "tw_entry_hash(varchar, varchar[], varchar[], bigint[])",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for body in (HELPERS, OPEN, SETTLE, APPLIED, REFUSED, IN_DOUBT, CLOSE_INTENT):
            op.execute(_literal_colons(body))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for signature in FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {signature}")


def _literal_colons(body: str) -> str:
    """``body`` with the colons of ``':lock'`` and friends escaped (``op.execute`` reads ``:name`` as a parameter)."""
    return re.sub(r"(?<![:\w]):(?=\w)", r"\\:", body)

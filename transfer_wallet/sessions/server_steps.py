"""PostgreSQL: each durable step of a session as one call of its server-side function (migrations 0008, 0010).

Open intent, open outcome, close intent and close outcome each cost one round trip
in autocommit on a pooled driver connection (``Database.on_driver``: the statement
prepared once per connection, no SQLAlchemy ``Connection`` per call): no BEGIN,
no COMMIT, no reads of their own. Python computes beforehand what needs no
database state (ids, the request digest, the lock entry's hash, deadlines, the
error text, the review-by-amount flag) and passes it in.

The functions do only the common path (same currency, no player limits, nothing
to flag). Anything else comes back as a *fallback reason* before the function has
written anything, and the caller runs the Python step (``opening``, ``outcomes``,
``closing``) in an ordinary transaction: the errors callers see and the findings
recorded for finance come from one place. ``FALLBACKS`` counts the reasons (the
tests use it to prove which path ran).

Each call returns ``None`` as its fallback reason when the step is done.

Switch and downgrade: ``SessionManager.server_steps = False`` (or ``TW_SESSION_SERVER_STEPS=0``)
runs the Python steps on PostgreSQL too. Set it before downgrading below migration 0008:
the downgrade drops the functions. A call that finds its function missing (a 0007 database,
psycopg ``UndefinedFunction``) fails before it writes anything, so it is logged and handed to
the Python step (fallback reason ``no server function``) rather than raised.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, Mapping, NoReturn

from sqlalchemy.exc import DBAPIError

from transfer_wallet import ledger, session_views
from transfer_wallet.errors import ConcurrencyError, InvalidStateError
from transfer_wallet.models import utc_now
from transfer_wallet.money import Money, currency
from transfer_wallet.session_views import SessionView
from transfer_wallet.sessions.settlement import amount_review_reason
from transfer_wallet.sessions.state import TIMEOUT_REASONS, SessionPolicy

if TYPE_CHECKING:
    from transfer_wallet.db import Database

#: Why a step took the Python path, by reason (``key used``, ``limits``, ``fx``, ...), for this process.
FALLBACKS: Counter[str] = Counter()
_LOG = logging.getLogger(__name__)
#: SQLSTATE of a call to a function that does not exist (``psycopg.errors.UndefinedFunction``).
_UNDEFINED_FUNCTION = "42883"
#: What a call whose function is missing answers: the Python step's turn (as wide as the widest row).
_NO_FUNCTION_ROW = ("python", "no server function", None, None, None, None, None, None)
#: SQLSTATEs the functions raise for what ``state.move`` / ``settlement`` raise in Python.
_STATE_ERRORS = {"TW409": InvalidStateError, "TWC01": ConcurrencyError}

OPEN_SQL = (
    "SELECT outcome, reason FROM tw_session_open(%(session_id)s, %(player_id)s, %(provider)s, %(currency)s, "
    "%(main_id)s::integer, %(locked_id)s::integer, %(amount)s::bigint, %(key)s, %(digest)s, %(entry_hash)s, "
    "%(max_open)s::integer, %(idle_timeout_s)s::integer, %(max_session_s)s::integer, %(now)s::timestamptz, "
    "%(deadline)s::timestamptz, %(created_at)s::timestamptz)"
)
APPLIED_SQL = (
    "SELECT outcome, reason, view FROM tw_transfer_applied(%(transfer_id)s, %(game_currency)s, "
    "%(game_amount)s::bigint, %(provider_tx_id)s, %(now)s::timestamptz, %(created_at)s::timestamptz, "
    "%(review_multiple)s::numeric, %(review_amount_flag)s::boolean, %(view)s::boolean)"
)
REFUSED_SQL = (
    "SELECT outcome, reason, view FROM tw_transfer_refused(%(transfer_id)s, %(error)s, %(now)s::timestamptz, "
    "%(created_at)s::timestamptz, %(stuck_after)s::integer, %(retry_base_s)s::integer, %(retry_max_s)s::integer, "
    "%(view)s::boolean)"
)
IN_DOUBT_SQL = (
    "SELECT outcome, reason, view FROM tw_transfer_in_doubt(%(transfer_id)s, %(error)s, %(now)s::timestamptz, "
    "%(stuck_after)s::integer, %(retry_base_s)s::integer, %(retry_max_s)s::integer, %(view)s::boolean)"
)
CLOSE_SQL = (
    "SELECT outcome, reason, out_transfer_id, out_provider, out_player_id, out_game_currency, out_game_amount_minor, view "
    "FROM tw_session_close_intent(%(session_id)s, %(key)s, %(reason)s, %(timeout)s::boolean, %(now)s::timestamptz, "
    "%(created_at)s::timestamptz, %(providers)s::varchar[], %(withdraw_all)s::boolean[], "
    "%(zero_review)s::boolean[])"
)

#: What the close intent hands to the provider call: provider, transfer id, player, game amount (None: all).
CloseStep = tuple[str, str, str, Money | None]


def open_intent(
    db: Database, *, session_id: str, player_id: str, provider: str, main: ledger.AccountRef,
    locked: ledger.AccountRef, money: Money, key: str, digest: str, policy: SessionPolicy, now: dt.datetime,
) -> str | None:
    """Step 1 of an open in the player's own currency: lock ``money``, write the session and its transfer-in."""
    amount = money.amount_minor
    entry_hash = ledger.request_hash("session_lock", [ledger.Leg(main, -amount), ledger.Leg(locked, amount)], None)
    deadline = min(now + dt.timedelta(seconds=policy.idle_timeout_s), now + dt.timedelta(seconds=policy.max_session_s))
    row = _call(db, OPEN_SQL, dict(
        session_id=session_id, player_id=player_id, provider=provider, currency=money.currency.code,
        main_id=main.id, locked_id=locked.id, amount=amount, key=key, digest=digest, entry_hash=entry_hash,
        max_open=policy.max_open_sessions, idle_timeout_s=policy.idle_timeout_s, max_session_s=policy.max_session_s,
        now=now, deadline=deadline, created_at=utc_now(),
    ))
    return _fallback(row)


def applied(
    db: Database, policy: SessionPolicy, transfer_id: str, game_amount: Money, provider_tx_id: str,
    now: dt.datetime, *, view: bool,
) -> tuple[str | None, SessionView | None]:
    """Step 3, applied: activate (transfer-in) or settle (transfer-out, same currency), once."""
    row = _call(db, APPLIED_SQL, dict(
        transfer_id=transfer_id, game_currency=game_amount.currency.code, game_amount=game_amount.amount_minor,
        provider_tx_id=provider_tx_id, now=now, created_at=utc_now(), review_multiple=policy.review_out_multiple,
        # the session settles in one currency here, so what goes to the wallet is the game amount
        review_amount_flag=amount_review_reason(policy, (game_amount,)) is not None, view=view,
    ))
    return _fallback(row), _view(row[2])


def refused(
    db: Database, policy: SessionPolicy, transfer_id: str, error_text: str, now: dt.datetime, *, view: bool,
) -> tuple[str | None, SessionView | None]:
    """Step 3, refused: a transfer-in gives every cent back; a transfer-out waits for its retry."""
    row = _call(db, REFUSED_SQL, dict(transfer_id=transfer_id, error=error_text, now=now, created_at=utc_now(),
                                              view=view, **_retry(policy)))
    return _fallback(row), _view(row[2])


def in_doubt(
    db: Database, policy: SessionPolicy, transfer_id: str, error_text: str, now: dt.datetime, *, view: bool,
) -> tuple[str | None, SessionView | None]:
    """Step 3, unknown: the money stays locked; the transfer waits for its backoff."""
    row = _call(db, IN_DOUBT_SQL, dict(transfer_id=transfer_id, error=error_text, now=now, view=view,
                                               **_retry(policy)))
    return _fallback(row), _view(row[2])


def close_intent(
    db: Database, providers: Mapping[str, object], policies: Mapping[str, SessionPolicy], session_id: str,
    key: str | None, reason: str, now: dt.datetime,
) -> tuple[str | None, CloseStep | None, SessionView | None]:
    """Step 1 of a close: (fallback reason, the transfer-out to send, or the session when there is none).

    Known to the function are the providers with a client *and* a policy (what ``_provider`` accepts): a
    session of any other provider is handed back before anything is written, and the Python step raises
    its ``NotFoundError`` inside its transaction (the session stays ACTIVE, no transfer-out).
    """
    names = [name for name in policies if name in providers]
    row = _call(db, CLOSE_SQL, dict(
        session_id=session_id, key=key, reason=reason, timeout=reason in TIMEOUT_REASONS, now=now,
        created_at=utc_now(), providers=names,
        withdraw_all=[policies[name].max_open_sessions == 1 for name in names],
        zero_review=[_zero_is_reviewed(policies[name]) for name in names],
    ))
    outcome, _, transfer_id, provider, player_id, game_currency, game_amount_minor, document = row
    if outcome == "send":
        amount = None if game_amount_minor is None else Money(game_amount_minor, currency(game_currency))
        return None, (provider, transfer_id, player_id, amount), None
    return _fallback(row), None, _view(document)


def _zero_is_reviewed(policy: SessionPolicy) -> bool:
    """Whether a transfer-out of nothing would be flagged for review (only a negative threshold does that)."""
    multiple = policy.review_out_multiple
    return (multiple is not None and multiple < 0) or any(limit < 0 for limit in policy.review_out_amounts.values())


def _retry(policy: SessionPolicy) -> dict[str, int]:
    return dict(stuck_after=policy.stuck_after_attempts, retry_base_s=policy.retry_base_s,
                retry_max_s=policy.retry_max_s)


def _call(db: Database, sql: str, params: dict[str, Any]) -> Any:
    """One call in autocommit on the driver; the functions' state errors become the exceptions the Python
    steps raise. Retried on contention (nothing committed then), never after a lost connection: a step
    that did commit may not be safe to repeat (a second in-doubt call counts a second attempt), and the
    Python steps do not repeat one either; the caller sees the error, the outcome unknown."""
    try:
        return db.on_driver(lambda cursor: cursor.execute(sql, params).fetchone(), again_if_disconnected=False)
    except DBAPIError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        if sqlstate == _UNDEFINED_FUNCTION:  # raised before the function ran: nothing was written
            _LOG.warning("session server-side function missing (database below migration 0008?): running the "
                         "Python step; set TW_SESSION_SERVER_STEPS=0 to stop trying: %s", exc.orig)
            return _NO_FUNCTION_ROW
        error = _STATE_ERRORS.get(sqlstate)
        if error is None:
            raise
        _raise_state(error, exc)


def _raise_state(error: type[Exception], exc: DBAPIError) -> NoReturn:
    diag = getattr(exc.orig, "diag", None)
    raise error(getattr(diag, "message_primary", None) or str(exc.orig)) from exc


def _fallback(row: Any) -> str | None:
    """The reason the Python step must run (counted), or None when the function did the step."""
    if row[0] != "python":
        return None
    FALLBACKS[row[1]] += 1
    return str(row[1])


def _view(document: dict[str, Any] | None) -> SessionView | None:
    if document is None:
        return None
    return session_views.to_view(document["session"], document["transfers"])

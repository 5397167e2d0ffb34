"""Transfer sessions: lock money in, move it to a provider, bring the rest back, exactly.

State machine (``TRANSITIONS`` is the whole table; anything else is refused)::

    OPENING --provider ok--> ACTIVE --close/timeout--> CLOSING --provider ok--> CLOSED
       |  \\--definitive refusal--> FAILED (funds back)      |  \\--unknown/refused--> CLOSING (retried, then stuck)
       \\--unknown--> OPENING (in doubt: resolve_in_doubt finishes it)

Every provider call follows the same three steps, so that a crash between any
two of them loses nothing (the next ``resolve_in_doubt`` / ``expire_sessions``
pass finishes the work):

1. one database transaction records the intent (funds locked, transfer PENDING);
2. the provider is called with our transfer id, **outside** any transaction;
3. one database transaction records the outcome, guarded by the transfer's
   state (``UPDATE ... WHERE status IN ('pending', 'in_doubt')``), so that two
   workers finishing the same transfer apply it once.

An unknown outcome is never refunded on a guess: the money stays locked until
the provider says what happened (``transfer_status``) or a re-send with the
same transfer id gives a definite answer.

On PostgreSQL steps 1 and 3 of the open and of the close are each one call of a
server-side function (``server_steps``, migration 0008) for the common path; any
other branch hands the step back to the Python step before writing anything, so
the errors and the findings come from one place. SQLite runs the Python steps.

The package, in lifecycle order: ``state`` (transitions, policy, guards),
``views`` (what callers see, read queries), ``server_steps`` (the PostgreSQL calls),
``opening``, ``outcomes`` (the provider call and what its answer does), ``settlement``,
``closing``, ``sweeps`` (timeouts, in doubt) and ``manager`` (the ``SessionManager`` facade).
"""

from __future__ import annotations

# Also imported from here by play mirroring: the request digest, the session row and its deadline rule.
from transfer_wallet.ledger import request_digest as request_digest
from transfer_wallet.sessions.manager import SessionManager
from transfer_wallet.sessions.state import TRANSITIONS, SessionPolicy, policies_from_config
from transfer_wallet.sessions.state import session_deadline as session_deadline
from transfer_wallet.sessions.state import session_row as _session_row  # noqa: F401
from transfer_wallet.sessions.views import SessionView, SweepReport, TransferView

__all__ = [
    "SessionManager",
    "SessionPolicy",
    "SessionView",
    "SweepReport",
    "TRANSITIONS",
    "TransferView",
    "policies_from_config",
]

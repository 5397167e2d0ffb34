"""Discrepancies: the only code that writes, lists and moves them through their workflow.

What finance must look at, whoever found it: sessions (conservation, transfer
conflicts, suspicious transfer-outs) and reconciliation (report against ledger).
A module per concern::

    recording.py   Finding, record (upsert by stable fingerprint), record_many, clear_absent   (the system)
    workflow.py    TRANSITIONS, transition, add_note: finance's moves, validated   (people)
    queries.py     list_discrepancies, count_discrepancies, get (with history), counts, count_for_sessions (read-only)
    views.py       DiscrepancyView, DiscrepancyEventView, DiscrepancyCount        (value objects)

``record``, ``record_many`` and ``clear_absent`` run inside the caller's transaction (a
connection); the workflow and query functions take the ``Database`` and run one
unit of work each. Every change, by the system or a person, leaves one row in
the append-only ``discrepancy_events`` (the database refuses UPDATE and DELETE).

    >>> from transfer_wallet import discrepancies                # doctest: +SKIP
    >>> [d] = discrepancies.list_discrepancies(db, status="unresolved", kind="AMOUNT_MISMATCH")
    >>> discrepancies.transition(db, d.id, to_status="resolved", note="provider credited 1.00", actor="anna")
"""

from __future__ import annotations

from transfer_wallet.discrepancies.queries import (
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    UNRESOLVED,
    count_discrepancies,
    count_for_sessions,
    counts,
    get,
    list_discrepancies,
)
from transfer_wallet.discrepancies.recording import (
    RECORD_BATCH,
    SYSTEM_ACTOR,
    Finding,
    clear_absent,
    record,
    record_many,
)
from transfer_wallet.discrepancies.views import DiscrepancyCount, DiscrepancyEventView, DiscrepancyView
from transfer_wallet.discrepancies.workflow import (
    CLOSED_STATUSES,
    FINANCE_STATUSES,
    TRANSITIONS,
    add_note,
    transition,
    validate_actor,
    validate_note,
)

__all__ = [
    "CLOSED_STATUSES",
    "DEFAULT_LIST_LIMIT",
    "FINANCE_STATUSES",
    "MAX_LIST_LIMIT",
    "RECORD_BATCH",
    "SYSTEM_ACTOR",
    "TRANSITIONS",
    "UNRESOLVED",
    "DiscrepancyCount",
    "DiscrepancyEventView",
    "DiscrepancyView",
    "Finding",
    "add_note",
    "clear_absent",
    "count_discrepancies",
    "count_for_sessions",
    "counts",
    "get",
    "list_discrepancies",
    "record",
    "record_many",
    "transition",
    "validate_actor",
    "validate_note",
]

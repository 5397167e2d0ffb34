"""Every type a discrepancy is recorded with: the one list the CLI validates against.

A plain module with no imports, so that ``tw discrepancy --help`` and ``--type``
validation do not load the database layer or pandas.
"""

from __future__ import annotations

#: Reconciliation: the provider's report against the ledger.
RECONCILE_KINDS: tuple[str, ...] = (
    "MISSING_IN_LEDGER", "MISSING_AT_PROVIDER", "AMOUNT_MISMATCH", "CURRENCY_MISMATCH", "STATUS_MISMATCH",
    "TYPE_MISMATCH", "PLAYER_MISMATCH", "DUPLICATE_AT_PROVIDER", "INVALID_RECORD", "TIMING_CUTOFF",
    "CONTROL_TOTAL_MISMATCH", "PENDING_IN_LEDGER", "DUPLICATE_FILE", "PROVIDER_TX_ID_MISMATCH",
)
#: The nightly job: no report for a window yet.
JOB_KINDS: tuple[str, ...] = ("FILE_MISSING",)
#: Sessions: conservation at close, outsized transfer-outs, answers that do not fit, transfer-id conflicts.
SESSION_KINDS: tuple[str, ...] = (
    "SESSION_CONSERVATION", "TRANSFER_OUT_REVIEW", "PROVIDER_ANSWER_MISMATCH", "TRANSFER_CONFLICT",
)
ALL_KINDS: tuple[str, ...] = RECONCILE_KINDS + JOB_KINDS + SESSION_KINDS

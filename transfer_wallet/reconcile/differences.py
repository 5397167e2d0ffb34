"""What differs in each matched pair, field by field, without building the pairs' rows (vectorised).

``differences(result)`` gives, per pair of a ``MatchResult`` (in the order of its position
arrays), a bool per compared field (``COMPARED``, then ``reference`` and ``provider_tx_id``)
and whether our side is still unsettled. Text fields are compared as integer codes (the
``MatchResult.column_codes`` classification and the control totals share), amounts as exact
int64 minor units. ``classify`` turns the pairs that differ into breaks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from transfer_wallet.reconcile.codes import shared_label_codes
from transfer_wallet.reconcile.frame import isin
from transfer_wallet.reconcile.ledger_side import APPLIED, UNSETTLED
from transfer_wallet.reconcile.match import METHODS, MatchResult

#: ``(name in a break's fields, column)`` of the fields compared, in the order ``fields`` lists them.
COMPARED = (("currency", "currency"), ("amount", "amount_minor"), ("status", "status"),
            ("type", "direction"), ("player", "player_id"))


def differences(result: MatchResult) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per matched pair (the pair arrays' order), whether each field differs, and whether our side is
    still unsettled: int codes and integer amounts compared through the position arrays, no pair
    rows built. A field NA on either side does not differ, except the amount (a missing amount differs).

    Currency, direction, player and status are packed into one signature per row on each side
    (``_suspects``): one gather per side finds the few pairs where any of them can differ, and
    only those are looked at field by field. A key is equal in the pairs found by it: it is
    compared in the other pairs only."""
    p, l = result.p_position, result.l_position
    report_fields, ledger_fields = _field_codes(result)
    suspect = _suspects(report_fields, ledger_fields, p, l)
    differs: dict[str, np.ndarray] = {}
    for name, _ in COMPARED:  # the order ``fields`` lists them in
        if name == "amount":
            differs[name] = _amounts_differ(result, p, l)
            continue
        left, right = report_fields[name][p[suspect]], ledger_fields[name][l[suspect]]
        differs[name] = np.zeros(len(p), dtype=bool)
        differs[name][suspect] = (left >= 0) & (right >= 0) & (left != right)
    unsettled = ledger_fields["status"][l] == _UNSETTLED
    keys = result.keys
    differs["reference"] = _key_differs(result, (keys.report_reference, keys.ledger_transfer_id), "reference")
    differs["provider_tx_id"] = _key_differs(result, (keys.report_tx, keys.ledger_tx), "provider_tx_id")
    return differs, unsettled


#: A status's code where it is not compared: NA on either side, or our side still unsettled.
_NA, _UNSETTLED = -1, -2


def _field_codes(result: MatchResult) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per side, for currency, direction (type), player and status, an int per row: equal on both
    sides exactly where the values are (the status: applied or not); negative where not compared."""
    report: dict[str, np.ndarray] = {}
    ledger: dict[str, np.ndarray] = {}
    for name, column in COMPARED:
        if name in ("currency", "type", "player"):
            (p_codes, p_labels), (l_codes, l_labels) = (result.column_codes("report", column),
                                                        result.column_codes("ledger", column))
            p_shared, l_shared = shared_label_codes(p_labels, l_labels)
            report[name], ledger[name] = p_shared[p_codes], l_shared[l_codes]
    p_codes, p_labels = result.column_codes("report", "status")
    l_codes, l_labels = result.column_codes("ledger", "status")
    p_state = np.where(pd.isna(p_labels), _NA, _equal(p_labels, "SUCCESS"))
    l_state = np.select([isin(pd.Series(l_labels), UNSETTLED).to_numpy(dtype=bool), pd.isna(l_labels)],
                        [_UNSETTLED, _NA], _equal(l_labels, APPLIED))
    report["status"], ledger["status"] = p_state[p_codes], l_state[l_codes]
    return report, ledger


def _suspects(report: dict[str, np.ndarray], ledger: dict[str, np.ndarray], p: np.ndarray, l: np.ndarray,
              *, limit: int = 1 << 62) -> np.ndarray:
    """The pairs (positions into ``p``/``l``) whose field codes (each >= -2) are not all equal.

    Each side's codes are packed into int64 signatures, as many fields into one as keep it below
    ``limit`` (usually all: one signature), with the same base per field on both sides: two rows
    have equal signatures exactly where their codes are equal in every field."""
    names = list(report)
    bases = {name: 3 + max(int(report[name].max(initial=0)), int(ledger[name].max(initial=0))) for name in names}
    groups: list[list[str]] = [[]]
    scale = 1
    for name in names:
        if groups[-1] and scale * bases[name] >= limit:
            groups.append([])
            scale = 1
        groups[-1].append(name)
        scale *= bases[name]
    differ = np.zeros(len(p), dtype=bool)
    for group in groups:
        left, right = np.zeros(len(report[names[0]]), np.int64), np.zeros(len(ledger[names[0]]), np.int64)
        for name in group:
            left = left * bases[name] + (report[name] + 2)
            right = right * bases[name] + (ledger[name] + 2)
        differ |= left[p] != right[l]
    return np.flatnonzero(differ)


def _amounts_differ(result: MatchResult, p: np.ndarray, l: np.ndarray) -> np.ndarray:
    """Whether each pair's amounts differ (exact int64 minor units; a missing amount differs)."""
    p_amount, p_missing = _minor(result.report["amount_minor"])
    l_amount, l_missing = _minor(result.ledger["amount_minor"])
    differ = p_amount[p] != l_amount[l]
    for missing, positions in ((p_missing, p), (l_missing, l)):
        if missing.any():
            differ |= missing[positions]
    return differ


def _key_differs(result: MatchResult, codes: tuple[np.ndarray, np.ndarray], method: str) -> np.ndarray:
    """Whether each pair's key (report and ledger codes) differs, compared where the pair was not found by it."""
    other = np.flatnonzero(result.method != METHODS.index(method))
    differ = np.zeros(len(result.p_position), dtype=bool)
    left, right = codes[0][result.p_position[other]], codes[1][result.l_position[other]]
    differ[other] = (left >= 0) & (right >= 0) & (left != right)
    return differ


def _minor(amounts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer amounts (NA as 0) and where they are NA."""
    missing = amounts.isna().to_numpy()
    return amounts.to_numpy(dtype="int64", na_value=0), missing


def _equal(values: Any, value: str) -> np.ndarray:
    """``values == value`` as a bool array (NA: False)."""
    return pd.Series(values == value).fillna(False).to_numpy(dtype=bool)

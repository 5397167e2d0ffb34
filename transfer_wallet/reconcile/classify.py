"""Classification: every difference the match left becomes one typed break (vectorised).

A *break* is one row of the breaks frame (``BREAK_COLUMNS``): its ``kind``, a
``key`` that is stable across re-runs of the same day, both sides' values
(``p_*`` provider, ``l_*`` ledger; NA where a side is missing) and ``fields``,
the names of the fields that differ joined by ``|``. ``findings`` turns breaks
into ``discrepancies.Finding`` values (one per break, so a loop over breaks
only, never over report rows).

Kinds (primary type of a pair, in this order: pending > duplicate across days > currency > amount >
status > type > player > provider tx id):

- ``MISSING_IN_LEDGER``: a SUCCESS report row with no ledger counterpart (a
  FAILED one moved no money and is only counted);
- ``MISSING_AT_PROVIDER``: a completed transfer of the day the report lacks;
- ``TIMING_CUTOFF``: as MISSING_AT_PROVIDER but within ``margin_s`` of the
  day's edge: its counterpart is expected in the neighbouring day's report; the
  run that pairs it across the cut-off clears it (see ``store``);
- ``AMOUNT_MISMATCH``, ``CURRENCY_MISMATCH``, ``STATUS_MISMATCH`` (applied on
  one side only), ``TYPE_MISMATCH`` (direction), ``PLAYER_MISMATCH``;
- ``DUPLICATE_AT_PROVIDER``: a later SUCCESS row repeating a provider tx id or reference (the
  SUCCESS row under our provider tx id is the one paired; a FAILED repeat moved no money and
  is only counted); or a
  row pairing a transfer of **another** business day (across the cut-off or found
  by reference) under another provider tx id than the one the provider confirmed to
  us: the same transfer applied a second time (key ``<transfer id>@<provider tx id>``);
- ``PROVIDER_TX_ID_MISMATCH``: a pair of the day whose provider tx id differs from
  the one the provider confirmed to us (re-keyed, or a second application whose
  first one lies in the neighbouring day's report);
- ``INVALID_RECORD``: a row ingest could not read (row number, column, raw value);
- ``PENDING_IN_LEDGER``: our side is still pending / in doubt: not a mismatch,
  looked at again by the next run (and cleared once it settled and matched).

Keys: our transfer id where the break has one, else the provider tx id
(``tx:``), ``tx:<id>#<n>`` / ``ref:<id>#<n>`` for the n-th duplicate, and
``row<N>:<column>`` for an unreadable row.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from transfer_wallet.discrepancies import Finding
from transfer_wallet.money import Money, MoneyError, currency
from transfer_wallet.reconcile.frame import isin
from transfer_wallet.reconcile.ledger_side import APPLIED, UNSETTLED
from transfer_wallet.reconcile.differences import COMPARED, differences
from transfer_wallet.reconcile.match import MatchResult
from transfer_wallet.discrepancy_kinds import RECONCILE_KINDS

SOURCE = "reconcile"
KINDS = RECONCILE_KINDS
_SIDE = ("amount_minor", "currency", "direction", "status", "player_id", "created_at")
BREAK_COLUMNS: tuple[str, ...] = (
    "kind", "key", "transfer_id", "provider_tx_id", "l_provider_tx_id", "reference", "row_number", "fields",
    "detail", *(f"p_{c}" for c in _SIDE), *(f"l_{c}" for c in _SIDE),
)


def classify(
    result: MatchResult, invalid: pd.DataFrame, *, margin_s: int, window: tuple[dt.datetime, dt.datetime],
    reconciled_elsewhere: Collection[str] = frozenset(), paired_in_own_day: Collection[str] = frozenset(),
) -> pd.DataFrame:
    """The breaks frame of one run. ``reconciled_elsewhere``: transfer ids a neighbouring day's
    run already paired across the cut-off (not reported again here); ``paired_in_own_day``: transfer ids
    of other days that their own day's latest run paired with a row of its own report."""
    parts = [_pairs(result, reconciled_elsewhere, paired_in_own_day), _report_only(result.report_only), _duplicates(result.duplicates),
             _ledger_only(result.ledger_only, margin_s, window, reconciled_elsewhere), _invalid(invalid)]
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in BREAK_COLUMNS})
    return pd.concat(parts, ignore_index=True)[list(BREAK_COLUMNS)]


def _claimed(result: MatchResult, in_window: np.ndarray, reconciled_elsewhere: Collection[str],
             paired_in_own_day: Collection[str]) -> np.ndarray:
    """Pairs whose transfer another day's report already claimed (see ``_pairs``)."""
    claimed = np.zeros(len(result.l_position), dtype=bool)
    transfer_ids = result.ledger["transfer_id"]
    if reconciled_elsewhere:
        claimed |= in_window & isin(transfer_ids, list(reconciled_elsewhere)).to_numpy()[result.l_position]
    if paired_in_own_day:
        claimed |= ~in_window & isin(transfer_ids, list(paired_in_own_day)).to_numpy()[result.l_position]
    return claimed


def _pairs(result: MatchResult, reconciled_elsewhere: Collection[str] = frozenset(),
           paired_in_own_day: Collection[str] = frozenset()) -> pd.DataFrame:
    differs, unsettled = differences(result)
    # Another day's transfer under a new provider id: the provider applied it a second time. Under the
    # same id, when its own day's report already had it (or, for one of this day, when another day's
    # report already had it): two reports claim the same money.
    in_window = result.ledger["in_window"].to_numpy(dtype=bool)[result.l_position]
    again = (differs["provider_tx_id"] & ~in_window) | _claimed(result, in_window, reconciled_elsewhere,
                                                                   paired_in_own_day)
    conditions = [unsettled, again] + [differs[name] for name, _ in COMPARED] + [differs["provider_tx_id"]]
    broken = np.flatnonzero(functools.reduce(np.logical_or, conditions))  # rows only for the pairs that break
    kinds = ["PENDING_IN_LEDGER", "DUPLICATE_AT_PROVIDER", *[f"{name.upper()}_MISMATCH" for name, _ in COMPARED],
             "PROVIDER_TX_ID_MISMATCH"]
    kind = np.select([c[broken] for c in conditions], kinds, default="")
    pairs = result.paired_rows(broken)
    fields = _joined({name: flag[broken] for name, flag in differs.items()}, len(pairs))
    frame = _sides(pairs, provider=True, ledger=True)
    frame["kind"], frame["fields"] = kind, fields
    frame["transfer_id"] = pairs["l_transfer_id"]
    rekeyed = np.isin(kind, ("DUPLICATE_AT_PROVIDER", "PROVIDER_TX_ID_MISMATCH"))
    frame["key"] = np.where(rekeyed, pairs["l_transfer_id"].astype(str) + "@" + pairs["p_provider_tx_id"].astype(str),
                            pairs["l_transfer_id"].astype(str))
    ids = ("the provider confirmed it to us as " + pairs["l_provider_tx_id"].astype(str) + ", the report has "
           + pairs["p_provider_tx_id"].astype(str))
    frame["detail"] = np.select(
        [kind == "PENDING_IN_LEDGER", kind == "DUPLICATE_AT_PROVIDER", kind == "PROVIDER_TX_ID_MISMATCH"],
        ["our side is still " + pairs["l_status"].astype(str) + ": looked at again on the next run",
         np.where(differs["provider_tx_id"][broken],
                  "our transfer of another business day reported again under a new provider id "
                  "(a second application?): " + ids,
                  "our transfer already in another business day's report, reported again here under "
                  + pairs["p_provider_tx_id"].astype(str) + " (its money claimed twice)"), ids],
        default="differs: " + pd.Series(fields, index=pairs.index))
    return frame


def _report_only(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows[rows["status"] == "SUCCESS"]
    frame = _sides(rows.add_prefix("p_"), provider=True, ledger=False)
    frame["kind"], frame["fields"] = "MISSING_IN_LEDGER", "presence"
    frame["transfer_id"] = pd.NA
    frame["key"] = "tx:" + rows["provider_tx_id"].astype(str)
    frame["detail"] = "the provider applied a transfer we have no record of"
    return frame


def _duplicates(rows: pd.DataFrame) -> pd.DataFrame:
    # A refused (FAILED) repeat moved no money: counted in the run's duplicates, not a discrepancy.
    rows = rows[rows["status"] == "SUCCESS"]
    frame = _sides(rows.add_prefix("p_"), provider=True, ledger=False)
    prefix = rows["duplicate_of"].map({"provider_tx_id": "tx:", "reference": "ref:"})
    frame["kind"], frame["fields"] = "DUPLICATE_AT_PROVIDER", "duplicate"
    frame["transfer_id"] = pd.NA
    frame["key"] = prefix + rows["duplicate_value"].astype(str) + "#" + rows["occurrence"].astype(str)
    frame["detail"] = ("occurrence " + rows["occurrence"].astype(str) + " of " + rows["duplicate_of"].astype(str)
                       + " " + rows["duplicate_value"].astype(str) + " in the report")
    return frame


def _ledger_only(rows: pd.DataFrame, margin_s: int, window: tuple[dt.datetime, dt.datetime],
                 reconciled_elsewhere: Collection[str]) -> pd.DataFrame:
    rows = rows[rows["in_window"] & ~isin(rows["transfer_id"], list(reconciled_elsewhere))]
    rows = rows[(rows["status"] == APPLIED) | isin(rows["status"], UNSETTLED)]
    margin = pd.Timedelta(seconds=margin_s)
    near_edge = (rows["created_at"] < pd.Timestamp(window[0]) + margin) | (rows["created_at"] >= pd.Timestamp(window[1]) - margin)
    kind = np.select([isin(rows["status"], UNSETTLED).to_numpy(), near_edge.to_numpy()],
                     ["PENDING_IN_LEDGER", "TIMING_CUTOFF"], default="MISSING_AT_PROVIDER")
    detail = np.select(
        [kind == "PENDING_IN_LEDGER", kind == "TIMING_CUTOFF"],
        ["our side is still " + rows["status"].astype(str) + ": looked at again on the next run",
         "not in this report, within the cut-off margin: expected in the neighbouring day's report"],
        default="a completed transfer the provider's report does not have")
    frame = _sides(rows.add_prefix("l_"), provider=False, ledger=True)
    frame["kind"], frame["detail"] = kind, detail
    frame["fields"] = np.where(kind == "PENDING_IN_LEDGER", "status", "presence")
    frame["transfer_id"] = frame["key"] = rows["transfer_id"]
    return frame


def _invalid(invalid: pd.DataFrame) -> pd.DataFrame:
    frame = pd.DataFrame(index=invalid.index)
    frame["kind"], frame["fields"] = "INVALID_RECORD", invalid["column"].astype(str)
    frame["row_number"] = invalid["row_number"]
    frame["key"] = "row" + invalid["row_number"].astype(str) + ":" + invalid["column"].astype(str)
    frame["detail"] = ("row " + invalid["row_number"].astype(str) + ", column " + invalid["column"].astype(str)
                       + ": " + invalid["raw_value"].astype(str).map(repr) + " (" + invalid["reason"].astype(str) + ")")
    missing = {column: _absent(column.partition("_")[2], len(frame)) for column in BREAK_COLUMNS if column not in frame}
    return pd.concat([frame, pd.DataFrame(missing, index=frame.index)], axis=1)


def _sides(frame: pd.DataFrame, *, provider: bool, ledger: bool) -> pd.DataFrame:
    columns: dict[str, Any] = {
        "provider_tx_id": frame["p_provider_tx_id"] if provider else frame["l_provider_tx_id"],
        "l_provider_tx_id": frame["l_provider_tx_id"] if ledger else pd.NA,
        "reference": frame["p_reference"] if provider else pd.NA,
        "row_number": frame["p_row_number"] if provider else pd.NA,
    }
    for side, present in (("p", provider), ("l", ledger)):
        for column in _SIDE:
            columns[f"{side}_{column}"] = frame[f"{side}_{column}"] if present else _absent(column, len(frame))
    return pd.DataFrame(columns, index=frame.index)


def _absent(column: str, length: int) -> Any:
    """The value of a side a break has no row of: NA, or NaT for a time (times stay datetime64 when
    the parts are concatenated, instead of every timestamp boxed into an object column)."""
    if column != "created_at":
        return pd.NA
    return pd.DatetimeIndex(np.full(length, np.datetime64("NaT"), dtype="datetime64[ns]"), tz="UTC").array


def _joined(flags: dict[str, Any], length: int) -> np.ndarray:
    """Per row, the names whose flag is set, joined by ``|``: one bit per name, each distinct set of bits
    (a handful) spelled once."""
    bits = np.zeros(length, dtype=np.int64)
    for bit, flag in enumerate(flags.values()):
        bits |= np.asarray(flag, dtype=np.int64) << bit
    distinct, inverse = np.unique(bits, return_inverse=True)
    names = list(flags)
    spelled = np.array(["|".join(n for b, n in enumerate(names) if value >> b & 1) for value in distinct.tolist()],
                       dtype=object)
    return spelled[inverse.reshape(-1)] if length else np.full(0, "", dtype=object)


def major(amount_minor: Any, code: Any) -> str | None:
    """Minor units as an exact major-unit string in ``code`` ("12.50"); None when missing."""
    if amount_minor is None or amount_minor is pd.NA or (isinstance(amount_minor, float) and np.isnan(amount_minor)):
        return None
    try:
        return Money(int(amount_minor), currency(str(code))).format()
    except MoneyError:
        return str(int(amount_minor))


def fingerprint(provider: str, business_date: dt.date, kind: str, key: str) -> str:
    """The stable identity of a break: the same break on a re-run is the same discrepancy."""
    text = f"{SOURCE}:{provider}:{business_date.isoformat()}:{kind}:{key}"
    return text if len(text) <= 200 else text[:160] + "~" + _digest(text)[:39]


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


_FIELD_COLUMNS = {"amount": "amount_minor", "currency": "currency", "status": "status", "type": "direction",
                  "player": "player_id", "presence": None}


def _value(row: dict[str, Any], key: str) -> Any:
    value = row.get(key)
    return None if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) else value


def _fields(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every differing field with both sides' values (amounts as major-unit strings)."""
    result: dict[str, dict[str, Any]] = {}
    names = [name for name in str(row["fields"]).split("|") if name]
    if row["kind"] == "INVALID_RECORD":  # the raw value is material: another value in that row is another break
        return {name: {"provider": str(row["detail"]).split(": ", 1)[-1], "ledger": None} for name in names}
    if row["kind"] in ("MISSING_IN_LEDGER", "MISSING_AT_PROVIDER", "TIMING_CUTOFF", "DUPLICATE_AT_PROVIDER"):
        names = ["amount", *[n for n in names if n != "amount"]]
    for name in names:
        if name == "reference":
            result[name] = {"provider": _value(row, "reference"), "ledger": _value(row, "transfer_id")}
        elif name == "provider_tx_id":
            result[name] = {"provider": _value(row, "provider_tx_id"), "ledger": _value(row, "l_provider_tx_id")}
        elif name == "amount":
            result[name] = {"provider": major(_value(row, "p_amount_minor"), _value(row, "p_currency")),
                            "ledger": major(_value(row, "l_amount_minor"), _value(row, "l_currency"))}
        elif _FIELD_COLUMNS.get(name):
            column = _FIELD_COLUMNS[name]
            result[name] = {"provider": _value(row, f"p_{column}"), "ledger": _value(row, f"l_{column}")}
    return result


def to_finding(row: dict[str, Any], *, provider: str, business_date: dt.date, run_id: int | None) -> Finding:
    """One break (a row of the breaks frame as a dict) as a ``Finding`` for ``discrepancies.record``."""
    provider_minor, ledger_minor = _value(row, "p_amount_minor"), _value(row, "l_amount_minor")
    code = _value(row, "p_currency") or _value(row, "l_currency")
    same_currency = _value(row, "p_currency") is None or _value(row, "l_currency") is None or \
        _value(row, "p_currency") == _value(row, "l_currency")
    difference = None
    if (provider_minor is not None or ledger_minor is not None) and same_currency:
        difference = int(provider_minor or 0) - int(ledger_minor or 0)
    player = _value(row, "p_player_id") or _value(row, "l_player_id")
    return Finding(
        kind=str(row["kind"]), detail=str(row["detail"]), source=SOURCE,
        fingerprint=fingerprint(provider, business_date, str(row["kind"]), str(row["key"])),
        provider=provider, business_date=business_date, run_id=run_id,
        transfer_id=_value(row, "transfer_id"), provider_tx_id=_value(row, "provider_tx_id"),
        player_id=None if player is None else str(player)[:64], currency=None if code is None else str(code)[:3],
        expected_minor=None if ledger_minor is None else int(ledger_minor),
        actual_minor=None if provider_minor is None else int(provider_minor),
        difference_minor=difference, fields=_fields(row) or None,
    )


def findings(breaks: pd.DataFrame, *, provider: str, business_date: dt.date, run_id: int | None) -> list[Finding]:
    """Every break of the frame as a ``Finding`` (one per break)."""
    return [to_finding(row, provider=provider, business_date=business_date, run_id=run_id)
            for row in breaks.to_dict("records")]

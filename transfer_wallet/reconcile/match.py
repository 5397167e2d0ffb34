"""Matching: pair report rows with ledger rows, vectorised (integer codes and lookup arrays, no row loop).

Order, each stage only on what the earlier ones left:

1. duplicates at the provider are set aside first: a row whose ``provider_tx_id``,
   or whose non-empty ``reference``, already appeared earlier in the file;
2. by our transfer id (the report's ``reference``);
3. by the provider's transaction id (ledger rows that stored it; an id stored on
   two ledger rows is ambiguous and not used);
4. for report rows without a reference: a **unique** candidate on player,
   direction, amount and currency within ``window_s`` of each other (unique both
   ways: one candidate for the report row, and that ledger row a candidate of
   no other report row).

Both key columns are coded once for both sides (``codes.joint_codes``: exact integer
codes); stages 1-3 are then lookups in int arrays. A million matched pairs stay two
position arrays (``MatchResult.p_position`` / ``l_position``, in ledger order):
classification compares fields through them and builds rows only for the pairs that
differ. ``MatchResult.pairs`` is a slim frame of the pairs (see there);
``MatchResult.paired_rows`` gives the full ``p_``/``l_`` rows of chosen pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from transfer_wallet.reconcile.codes import dictionary_codes, joint_codes

DEFAULT_MATCH_WINDOW_S = 900
METHODS = ("reference", "provider_tx_id", "candidate")
#: The columns of ``MatchResult.pairs``.
PAIR_COLUMNS = ("p_row_number", "l_position", "l_transfer_id", "l_in_window", "method")


@dataclass(frozen=True)
class KeyCodes:
    """The joint codes of both key columns (``codes.joint_codes``), by position in each frame."""

    report_reference: np.ndarray
    ledger_transfer_id: np.ndarray
    report_tx: np.ndarray
    ledger_tx: np.ndarray

    @classmethod
    def of(cls, report: pd.DataFrame, ledger: pd.DataFrame) -> KeyCodes:
        """Both key columns of ``report`` and ``ledger`` coded (two ``joint_codes`` calls: some tenths of a
        second at a million rows a side)."""
        return cls(*joint_codes(report["reference"], ledger["transfer_id"]),
                   *joint_codes(report["provider_tx_id"], ledger["provider_tx_id"]))


@dataclass(frozen=True)
class MatchResult:
    """What matching made of the two sides.

    ``report`` and ``ledger`` are the input frames (index reset); pair ``i`` is report row
    ``p_position[i]`` with ledger row ``l_position[i]`` (ascending), paired by
    ``METHODS[method[i]]``. ``duplicates``, ``report_only`` and ``ledger_only`` are frames
    of unprefixed rows. ``key_codes``: the frames' ``KeyCodes`` if the caller has them; if not (None),
    ``keys`` works them out on first use (a result built over a partitioned day's whole frames
    seldom needs them)."""

    report: pd.DataFrame
    ledger: pd.DataFrame
    p_position: np.ndarray
    l_position: np.ndarray
    method: np.ndarray
    duplicates: pd.DataFrame
    report_only: pd.DataFrame
    ledger_only: pd.DataFrame
    key_codes: KeyCodes | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def keys(self) -> KeyCodes:
        """The joint codes of both key columns: ``key_codes``, or worked out once from the frames."""
        if self.key_codes is not None:
            return self.key_codes
        if "keys" not in self._cache:
            self._cache["keys"] = KeyCodes.of(self.report, self.ledger)
        keys: KeyCodes = self._cache["keys"]
        return keys

    def column_codes(self, side: str, column: str) -> tuple[np.ndarray, Any]:
        """``codes.dictionary_codes`` of a low-cardinality column of the ``"report"`` or the ``"ledger"``,
        worked out once (classification and the control totals read the same ones)."""
        name = f"{side}:{column}"
        if name not in self._cache:
            frame = {"report": self.report, "ledger": self.ledger}[side]
            self._cache[name] = dictionary_codes(frame[column])
        codes: tuple[np.ndarray, Any] = self._cache[name]
        return codes

    @property
    def pairs(self) -> pd.DataFrame:
        """The pairs as a frame of ``PAIR_COLUMNS`` (what a run records), built once, in ledger order.

        Before the pairs were kept as positions it held every ``p_``/``l_`` column: those
        are ``paired_rows()``."""
        if "pairs" not in self._cache:
            taken = np.zeros(len(self.ledger), dtype=bool)
            taken[self.l_position] = True
            ledger = self.ledger
            self._cache["pairs"] = pd.DataFrame({
                "p_row_number": self.report["row_number"].to_numpy()[self.p_position],
                "l_position": self.l_position,
                "l_transfer_id": ledger["transfer_id"][taken].reset_index(drop=True),
                "l_in_window": ledger["in_window"].to_numpy(dtype=bool)[self.l_position],
                "method": pd.Categorical.from_codes(self.method, categories=list(METHODS)),
            })
        return self._cache["pairs"]

    def paired_rows(self, selection: Any = None) -> pd.DataFrame:
        """The report and ledger rows of the selected pairs (positions into the pair arrays; all if None),
        side by side with ``p_`` / ``l_`` prefixes, plus ``l_position`` and ``method``."""
        chosen = slice(None) if selection is None else selection
        p_rows, l_rows = self.p_position[chosen], self.l_position[chosen]
        frame = pd.concat([self.report.take(p_rows).add_prefix("p_").reset_index(drop=True),
                           self.ledger.take(l_rows).add_prefix("l_").reset_index(drop=True)], axis=1)
        frame["l_position"] = l_rows
        frame["method"] = np.asarray(METHODS, dtype=object)[self.method[chosen]]
        return frame

    def counts(self) -> dict[str, int]:
        """Rows per outcome and pairs per method (for the run record)."""
        by_method = np.bincount(self.method, minlength=len(METHODS))
        result = {f"matched_by_{m}": int(by_method[n]) for n, m in enumerate(METHODS)}
        result.update(duplicates=len(self.duplicates), report_only=len(self.report_only),
                      ledger_only=len(self.ledger_only))
        return result


def split_duplicates(report: pd.DataFrame, tx: pd.Series, reference: pd.Series, confirmed_tx: np.ndarray,
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(kept occurrences, later occurrences)``; the later ones carry ``duplicate_of``
    (``provider_tx_id`` or ``reference``), ``duplicate_value`` and ``occurrence`` (2, 3 ...).

    ``tx``/``reference``: the report's key codes (``codes.joint_codes``); ``confirmed_tx``: the codes of
    the provider tx ids our ledger holds. Among rows repeating a key, the one kept (paired) is a
    SUCCESS row under a provider tx id we hold, else a SUCCESS row, else the first: a refused
    (FAILED) attempt logged next to the applied one must not hide the applied one from the match.
    ``match`` calls it with the rows whose key repeats only (the answer is the same: a row's
    duplicates are among them)."""
    tx_repeats = tx.duplicated(keep=False) & (tx >= 0)
    reference_repeats = reference.duplicated(keep=False) & (reference >= 0)
    order = _preference_order(report, tx, tx_repeats | reference_repeats, confirmed_tx)
    if order is not None:
        report, tx, reference = report.iloc[order], tx.iloc[order], reference.iloc[order]
        tx_repeats, reference_repeats = tx_repeats.iloc[order], reference_repeats.iloc[order]
    by_tx = tx_repeats & tx.duplicated(keep="first")
    by_reference = reference_repeats & reference.duplicated(keep="first") & ~by_tx
    later = report[by_tx | by_reference].copy()
    later["duplicate_of"] = by_tx[by_tx | by_reference].map({True: "provider_tx_id", False: "reference"})
    later["duplicate_value"] = later["provider_tx_id"].where(later["duplicate_of"] == "provider_tx_id",
                                                             later["reference"])
    tx_occurrence = tx[tx_repeats].groupby(tx[tx_repeats]).cumcount() + 1
    reference_occurrence = reference[reference_repeats].groupby(reference[reference_repeats]).cumcount() + 1
    later["occurrence"] = tx_occurrence.reindex(later.index).where(
        later["duplicate_of"] == "provider_tx_id", reference_occurrence.reindex(later.index)).astype("int64")
    return report[~(by_tx | by_reference)].sort_index(), later.sort_index()


def _preference_order(report: pd.DataFrame, tx: pd.Series, repeated: pd.Series, confirmed_tx: np.ndarray,
                      ) -> np.ndarray | None:
    """Positions that put the rows of every repeated key in preference order (stable: file order
    otherwise); None when no key repeats."""
    if not repeated.any():
        return None
    rank = (report["status"] != "SUCCESS").astype("int64") * 2
    rank += (~tx.isin(confirmed_tx)).astype("int64")
    rank = rank.where(repeated, 0)
    return rank.to_numpy().argsort(kind="stable")


def _repeated(codes: np.ndarray) -> np.ndarray:
    """Rows whose (non-NA) code occurs more than once (a bool table per code: a cache-friendly lookup)."""
    present = codes[codes >= 0]
    repeats = np.bincount(present) > 1 if len(present) else np.zeros(1, dtype=bool)
    return repeats[np.maximum(codes, 0)] & (codes >= 0)


def _later_occurrences(report: pd.DataFrame, keys: KeyCodes) -> pd.DataFrame:
    """The duplicates frame (``split_duplicates``), worked out on the rows whose key repeats only."""
    rows = np.flatnonzero(_repeated(keys.report_tx) | _repeated(keys.report_reference))
    subset = report.take(rows)
    tx = pd.Series(keys.report_tx[rows], index=subset.index)
    held = np.zeros(1 + max(int(keys.report_tx.max(initial=-1)), int(keys.ledger_tx.max(initial=-1))), dtype=bool)
    held[keys.ledger_tx[keys.ledger_tx >= 0]] = True
    confirmed = np.unique(tx[held[tx.to_numpy()] & (tx.to_numpy() >= 0)].to_numpy())
    reference = pd.Series(keys.report_reference[rows], index=subset.index)
    return split_duplicates(subset, tx, reference, confirmed)[1]


class _Pairing:
    """The state of the stages: for each ledger row, the report row paired with it and how (-1: none)."""

    def __init__(self, report_rows: int, ledger_rows: int) -> None:
        self.report_of = np.full(ledger_rows, -1, dtype=np.int64)
        self.method_of = np.full(ledger_rows, -1, dtype=np.int8)
        self.report_free = np.ones(report_rows, dtype=bool)

    def add(self, report_rows: np.ndarray, ledger_rows: np.ndarray, method: int) -> None:
        self.report_of[ledger_rows], self.method_of[ledger_rows] = report_rows, method
        self.report_free[report_rows] = False

    @property
    def ledger_free(self) -> np.ndarray:
        return self.report_of < 0


def _lookup(codes: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """An array mapping each code of ``codes[rows]`` to its row (-1 elsewhere)."""
    table = np.full(size, -1, dtype=np.int64)
    table[codes[rows]] = rows
    return table


def _by_key(report_codes: np.ndarray, report_rows: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(report rows, ledger rows)`` whose codes meet in ``table``."""
    found = np.full(len(report_rows), -1, dtype=np.int64)
    coded = report_codes[report_rows] >= 0
    found[coded] = table[report_codes[report_rows][coded]]
    hit = found >= 0
    return report_rows[hit], found[hit]


def match(report: pd.DataFrame, ledger: pd.DataFrame, *, window_s: int = DEFAULT_MATCH_WINDOW_S) -> MatchResult:
    """Pair the canonical report rows with the ledger-side rows (see the module docstring)."""
    report, ledger = report.reset_index(drop=True), ledger.reset_index(drop=True)
    keys = KeyCodes.of(report, ledger)
    size = 1 + max(int(codes.max(initial=-1)) for codes in vars(keys).values())
    duplicates = _later_occurrences(report, keys)
    state = _Pairing(len(report), len(ledger))
    state.report_free[duplicates.index.to_numpy()] = False

    transfer_rows = np.flatnonzero(keys.ledger_transfer_id >= 0)
    state.add(*_by_key(keys.report_reference, np.flatnonzero(state.report_free),
                       _lookup(keys.ledger_transfer_id, transfer_rows, size)), 0)

    free = np.flatnonzero(state.ledger_free & (keys.ledger_tx >= 0))
    keyed = free[~_repeated(keys.ledger_tx[free])]
    state.add(*_by_key(keys.report_tx, np.flatnonzero(state.report_free), _lookup(keys.ledger_tx, keyed, size)), 1)

    without_reference = np.flatnonzero(state.report_free & (keys.report_reference < 0))
    state.add(*_unique_candidates(report, ledger, without_reference, np.flatnonzero(state.ledger_free), window_s), 2)

    l_position = np.flatnonzero(~state.ledger_free)
    report_only = report.take(np.flatnonzero(state.report_free)).reset_index(drop=True)
    ledger_only = ledger.take(np.flatnonzero(state.ledger_free)).reset_index(drop=True)
    return MatchResult(report, ledger, state.report_of[l_position], l_position, state.method_of[l_position],
                       duplicates, report_only, ledger_only, keys)


def _unique_candidates(report: pd.DataFrame, ledger: pd.DataFrame, report_rows: np.ndarray, ledger_rows: np.ndarray,
                       window_s: int) -> tuple[np.ndarray, np.ndarray]:
    """``(report rows, ledger rows)`` where each side is the other's only candidate within the window."""
    columns = ["player_id", "direction", "amount_minor", "currency", "created_at"]
    p = report.take(report_rows)[columns].add_prefix("p_").assign(p_at=report_rows)
    l = ledger.take(ledger_rows)[columns].add_prefix("l_").assign(l_at=ledger_rows)
    l = l[l["l_amount_minor"].notna()].astype({"l_amount_minor": "int64"})
    candidates = p.astype({"p_amount_minor": "int64"}).merge(
        l, left_on=["p_player_id", "p_direction", "p_amount_minor", "p_currency"],
        right_on=["l_player_id", "l_direction", "l_amount_minor", "l_currency"],
    )
    close = (candidates["p_created_at"] - candidates["l_created_at"]).abs() <= pd.Timedelta(seconds=window_s)
    candidates = candidates[close]
    per_report = candidates.groupby("p_at")["l_at"].transform("size")
    per_ledger = candidates.groupby("l_at")["p_at"].transform("size")
    unique = candidates[(per_report == 1) & (per_ledger == 1)]
    return unique["p_at"].to_numpy(dtype=np.int64), unique["l_at"].to_numpy(dtype=np.int64)

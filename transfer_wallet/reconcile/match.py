"""Matching: pair report rows with ledger rows, vectorised (merges and group counts, no row loop).

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

Report and ledger columns keep their names with a ``p_`` / ``l_`` prefix in the
pairs frame; ``method`` says which stage paired them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


DEFAULT_MATCH_WINDOW_S = 900
METHODS = ("reference", "provider_tx_id", "candidate")


@dataclass(frozen=True, slots=True)
class MatchResult:
    """What matching made of the two sides (``pairs`` prefixed ``p_``/``l_``, the rest unprefixed)."""

    pairs: pd.DataFrame
    duplicates: pd.DataFrame
    report_only: pd.DataFrame
    ledger_only: pd.DataFrame

    def counts(self) -> dict[str, int]:
        """Rows per outcome and pairs per method (for the run record)."""
        by_method = self.pairs["method"].value_counts()
        result = {f"matched_by_{m}": int(by_method.get(m, 0)) for m in METHODS}
        result.update(duplicates=len(self.duplicates), report_only=len(self.report_only),
                      ledger_only=len(self.ledger_only))
        return result


def _joint_codes(report_values: pd.Series, ledger_values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Integer codes of one factorisation of both sides' key column (NA: -1), each on its own index.

    Each key is hashed once, for both sides: the repeat tests, the lookup of confirmed ids
    and the merges then work on ints (pandas hashes text again on every ``duplicated``,
    ``isin`` and ``merge``: a second each at a million rows).
    """
    codes = pd.concat([report_values, ledger_values], ignore_index=True).factorize()[0]
    return (pd.Series(codes[:len(report_values)], index=report_values.index),
            pd.Series(codes[len(report_values):], index=ledger_values.index))


def split_duplicates(report: pd.DataFrame, tx: pd.Series, reference: pd.Series, confirmed_tx: np.ndarray,
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(kept occurrences, later occurrences)``; the later ones carry ``duplicate_of``
    (``provider_tx_id`` or ``reference``), ``duplicate_value`` and ``occurrence`` (2, 3 ...).

    ``tx``/``reference``: the report's key codes (``_joint_codes``); ``confirmed_tx``: the codes of
    the provider tx ids our ledger holds. Among rows repeating a key, the one kept (paired) is a
    SUCCESS row under a provider tx id we hold, else a SUCCESS row, else the first: a refused
    (FAILED) attempt logged next to the applied one must not hide the applied one from the match."""
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
    # Occurrence numbers only among the rows whose key repeats (a small set): cheap on a million rows.
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


def match(report: pd.DataFrame, ledger: pd.DataFrame, *, window_s: int = DEFAULT_MATCH_WINDOW_S) -> MatchResult:
    """Pair the canonical report rows with the ledger-side rows (see the module docstring).

    ``pairs`` also carries ``l_position``, the ledger row's position in ``ledger``.
    """
    report, ledger = report.reset_index(drop=True), ledger.reset_index(drop=True)
    reference, transfer_id = _joint_codes(report["reference"], ledger["transfer_id"])
    tx, ledger_tx = _joint_codes(report["provider_tx_id"], ledger["provider_tx_id"])
    first, duplicates = split_duplicates(report, tx, reference, ledger_tx[ledger_tx >= 0].to_numpy())
    p = first.add_prefix("p_").assign(p_tx_code=tx, p_reference_code=reference)
    l = ledger.add_prefix("l_").assign(l_position=np.arange(len(ledger)), l_tx_code=ledger_tx,
                                       l_reference_code=transfer_id)
    by_reference = p[p["p_reference_code"] >= 0].merge(l, left_on="p_reference_code", right_on="l_reference_code")
    p, l = _remaining(p, l, by_reference)

    keyed = l[(l["l_tx_code"] >= 0) & ~l["l_tx_code"].duplicated(keep=False)]
    by_tx = p.merge(keyed, left_on="p_tx_code", right_on="l_tx_code")
    p, l = _remaining(p, l, by_tx)

    by_candidate = _unique_candidates(p[p["p_reference"].isna()], l, window_s)
    p, l = _remaining(p, l, by_candidate)

    codes = ["p_tx_code", "p_reference_code", "l_tx_code", "l_reference_code"]
    pairs = pd.concat(
        [frame.assign(method=method) for frame, method in zip((by_reference, by_tx, by_candidate), METHODS)],
        ignore_index=True,
    ).drop(columns=codes)
    report_only = p.drop(columns=codes[:2]).rename(columns=lambda c: c.removeprefix("p_"))
    ledger_only = l.drop(columns=["l_position", *codes[2:]]).rename(columns=lambda c: c.removeprefix("l_"))
    return MatchResult(pairs, duplicates, report_only.reset_index(drop=True), ledger_only.reset_index(drop=True))


def _remaining(p: pd.DataFrame, l: pd.DataFrame, paired: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of each side that ``paired`` did not take (by row number and position: ints, not text)."""
    return (p[~p["p_row_number"].isin(paired["p_row_number"])],
            l[~l["l_position"].isin(paired["l_position"])])


def _unique_candidates(p: pd.DataFrame, l: pd.DataFrame, window_s: int) -> pd.DataFrame:
    """Pairs where each side is the other's only candidate within the window."""
    l = l[l["l_amount_minor"].notna()].astype({"l_amount_minor": "int64"})
    candidates = p.merge(
        l, left_on=["p_player_id", "p_direction", "p_amount_minor", "p_currency"],
        right_on=["l_player_id", "l_direction", "l_amount_minor", "l_currency"],
    )
    close = (candidates["p_created_at"] - candidates["l_created_at"]).abs() <= pd.Timedelta(seconds=window_s)
    candidates = candidates[close]
    per_report = candidates.groupby("p_row_number")["l_transfer_id"].transform("size")
    per_ledger = candidates.groupby("l_transfer_id")["p_row_number"].transform("size")
    return candidates[(per_report == 1) & (per_ledger == 1)].astype({"l_amount_minor": "Int64"})

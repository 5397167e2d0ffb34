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

import pandas as pd

from transfer_wallet.reconcile.frame import isin

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


def split_duplicates(report: pd.DataFrame, confirmed_tx_ids: pd.Series | None = None,
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(kept occurrences, later occurrences)``; the later ones carry ``duplicate_of``
    (``provider_tx_id`` or ``reference``), ``duplicate_value`` and ``occurrence`` (2, 3 ...).

    Among rows repeating a key, the one kept (paired) is a SUCCESS row under a provider tx id we
    hold (``confirmed_tx_ids``), else a SUCCESS row, else the first: a refused (FAILED) attempt
    logged next to the applied one must not hide the applied one from the match."""
    report = _preferred_first(report, confirmed_tx_ids)
    by_tx = report["provider_tx_id"].duplicated(keep="first")
    reference = report["reference"]
    by_reference = reference.notna() & reference.duplicated(keep="first") & ~by_tx
    later = report[by_tx | by_reference].copy()
    later["duplicate_of"] = by_tx[by_tx | by_reference].map({True: "provider_tx_id", False: "reference"})
    later["duplicate_value"] = later["provider_tx_id"].where(later["duplicate_of"] == "provider_tx_id",
                                                             later["reference"])
    # Occurrence numbers only among the rows whose key repeats (a small set): cheap on a million rows.
    tx_rows = report[report["provider_tx_id"].duplicated(keep=False)]
    reference_rows = report[reference.notna() & reference.duplicated(keep=False)]
    tx_occurrence = tx_rows.groupby("provider_tx_id").cumcount() + 1
    reference_occurrence = reference_rows.groupby("reference").cumcount() + 1
    later["occurrence"] = tx_occurrence.reindex(later.index).where(
        later["duplicate_of"] == "provider_tx_id", reference_occurrence.reindex(later.index)).astype("int64")
    return report[~(by_tx | by_reference)].sort_index(), later.sort_index()


def _preferred_first(report: pd.DataFrame, confirmed_tx_ids: pd.Series | None) -> pd.DataFrame:
    """``report`` with the rows of every repeated key in preference order (stable: file order otherwise)."""
    reference = report["reference"]
    repeated = report["provider_tx_id"].duplicated(keep=False) | (reference.notna() & reference.duplicated(keep=False))
    if not repeated.any():
        return report
    rank = (report["status"] != "SUCCESS").astype("int64") * 2
    if confirmed_tx_ids is not None:
        rank += (~isin(report["provider_tx_id"], confirmed_tx_ids.dropna())).astype("int64")
    rank = rank.where(repeated, 0)
    return report.iloc[rank.to_numpy().argsort(kind="stable")]
def match(report: pd.DataFrame, ledger: pd.DataFrame, *, window_s: int = DEFAULT_MATCH_WINDOW_S) -> MatchResult:
    """Pair the canonical report rows with the ledger-side rows (see the module docstring)."""
    first, duplicates = split_duplicates(report.reset_index(drop=True), ledger["provider_tx_id"])
    p = first.add_prefix("p_")
    l = ledger.add_prefix("l_")
    by_reference = p[p["p_reference"].notna()].merge(l, left_on="p_reference", right_on="l_transfer_id")
    p, l = _remaining(p, l, by_reference)

    keyed = l[l["l_provider_tx_id"].notna() & ~l["l_provider_tx_id"].duplicated(keep=False)]
    by_tx = p.merge(keyed, left_on="p_provider_tx_id", right_on="l_provider_tx_id")
    p, l = _remaining(p, l, by_tx)

    by_candidate = _unique_candidates(p[p["p_reference"].isna()], l, window_s)
    p, l = _remaining(p, l, by_candidate)

    pairs = pd.concat(
        [frame.assign(method=method) for frame, method in zip((by_reference, by_tx, by_candidate), METHODS)],
        ignore_index=True,
    )
    report_only = p.rename(columns=lambda c: c.removeprefix("p_"))
    ledger_only = l.rename(columns=lambda c: c.removeprefix("l_"))
    return MatchResult(pairs, duplicates, report_only.reset_index(drop=True), ledger_only.reset_index(drop=True))


def _remaining(p: pd.DataFrame, l: pd.DataFrame, paired: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (p[~p["p_row_number"].isin(paired["p_row_number"])],
            l[~isin(l["l_transfer_id"], paired["l_transfer_id"])])


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

"""A day matched in key-hash partitions finds exactly what one frame finds (``reconcile.partition``).

The benchmark's day (planted breaks of every type) plus rows whose keys cross partitions: a
duplicate by provider tx id whose first occurrence has a reference and whose repeat has none or
another one, a pair by provider tx id whose row names a reference of no transfer (it sits in
another partition than its counterpart), a pair by player + direction + amount in the window,
and two rows repeating a reference where the one kept depends on a provider tx id held by a
transfer that a third row references. A tiny ``partition_rows`` cuts it into many partitions.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

import transfer_wallet as tw
from transfer_wallet.bench import reconcile as bench
from transfer_wallet.reconcile import partition
from transfer_wallet.reconcile.ingest import ingest_report
from transfer_wallet.reconcile.ledger_side import read_ledger_side
from transfer_wallet.reconcile.run import compare, reconcile

ROWS = 3000
NOW = bench.DAY_START + dt.timedelta(days=1, hours=6)


def crossing_report(ledger: pd.DataFrame, text: pd.DataFrame) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """``text`` with the rows described in the module docstring; the breaks they must give."""
    by_reference = {ref: n for n, ref in text["reference"].items() if ref}
    plain = [t for t in ledger["id"] if t in by_reference and text.at[by_reference[t], "status"] == "SUCCESS"
             and text.at[by_reference[t], "provider_tx_id"] == "bx" + t[2:]][:8]
    a, b, c, d, r, m, _, _ = plain
    text = text.copy()
    repeat_a = text.loc[by_reference[a]].copy()
    repeat_a["reference"] = ""                        # the same tx id, no reference
    repeat_b = text.loc[by_reference[b]].copy()
    repeat_b["reference"] = d                         # the same tx id, another transfer's reference
    text.at[by_reference[c], "reference"] = "bt-none"  # no such transfer: paired by provider tx id
    window = by_reference[d]
    text.at[window, "reference"], text.at[window, "provider_tx_id"] = "", "bw-window"  # paired in the window
    text.at[by_reference[r], "provider_tx_id"] = "bw-first"  # a tx id we do not hold, first in the file ...
    repeat_r = text.loc[by_reference[r]].copy()
    repeat_r["provider_tx_id"] = "bx" + m[2:]          # ... repeated under the tx id transfer m holds
    text.at[by_reference[m], "provider_tx_id"] = "bw-m"  # while m's own row says another one
    text = pd.concat([text, pd.DataFrame([repeat_a, repeat_b, repeat_r])], ignore_index=True)
    expected = {("DUPLICATE_AT_PROVIDER", f"tx:bx{a[2:]}#2"), ("DUPLICATE_AT_PROVIDER", f"tx:bx{b[2:]}#2"),
                ("DUPLICATE_AT_PROVIDER", f"ref:{r}#2"), ("PROVIDER_TX_ID_MISMATCH", f"{r}@bx{m[2:]}"),
                ("PROVIDER_TX_ID_MISMATCH", f"{m}@bw-m")}
    return text, expected


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def day(request: pytest.FixtureRequest, new_database_url, tmp_path: Path):
    url = new_database_url(request.param)
    ledger, plants = bench.make_ledger(ROWS, 7)
    text, planted = bench.make_report(ledger, plants, 7)
    text, crossing = crossing_report(ledger, text)
    report = tmp_path / "bench-2026-12-01.csv"
    bench.write_report(text, report)
    bench.insert_ledger(url, ledger)
    return tw.open_database(url), report, crossing


def breaks_of(found: pd.DataFrame) -> list[tuple]:
    columns = ["kind", "key", "transfer_id", "provider_tx_id", "row_number", "fields", "detail", "p_amount_minor",
               "l_amount_minor", "p_status", "l_status"]
    return sorted(tuple(None if pd.isna(v) else str(v) for v in row) for row in found[columns].itertuples(index=False))


def test_the_partitions_find_what_one_frame_finds(day) -> None:
    db, report, crossing = day
    report_file = ingest_report(report, bench.bench_config().report)
    ledger = db.transaction(lambda c: read_ledger_side(c, bench.PROVIDER, bench.DAY, "UTC",
                                                       references=report_file.rows["reference"]), readonly=True)
    whole, whole_breaks, whole_controls = compare(report_file, ledger, set(), window_s=900, margin_s=3600)
    parts, part_breaks, part_controls = compare(report_file, ledger, set(), window_s=900, margin_s=3600,
                                                partition_rows=300)
    assert partition.count_for(len(report_file.rows), 300) >= 10
    assert breaks_of(part_breaks) == breaks_of(whole_breaks)
    assert crossing <= set(zip(whole_breaks["kind"], whole_breaks["key"]))
    pd.testing.assert_frame_equal(part_controls, whole_controls)
    assert parts.counts() == whole.counts()
    assert whole.counts()["matched_by_candidate"] >= 1 and whole.counts()["matched_by_provider_tx_id"] > 100
    in_window = lambda r: sorted(r.pairs.loc[r.pairs["l_in_window"].astype(bool), "l_transfer_id"].astype(str))
    assert in_window(parts) == in_window(whole)
    assert sorted(parts.pairs["l_position"]) == sorted(whole.pairs["l_position"])


def test_a_partitioned_run_stores_the_same_findings_and_a_rerun_keeps_their_ids(day, monkeypatch) -> None:
    db, report, crossing = day
    config = bench.bench_config()
    monkeypatch.setattr(partition, "ONE_FRAME_ROWS", 400)
    monkeypatch.setattr(partition, "PARTITION_ROWS", 400)
    first = reconcile(db, config, bench.DAY, report, now=NOW)
    found = set(zip(first.breaks["kind"].astype(str), first.breaks["key"].astype(str)))
    assert crossing <= found and first.counts["duplicates"] >= 3 + ROWS // 1000
    monkeypatch.setattr(partition, "PARTITION_ROWS", 10**9)
    again = reconcile(db, config, bench.DAY, report, now=NOW + dt.timedelta(hours=1))
    assert set(zip(again.breaks["kind"].astype(str), again.breaks["key"].astype(str))) == found
    assert again.open_count == first.open_count and again.kinds == first.kinds
    ids = lambda run_id: db.transaction(lambda c: sorted(r[0] for r in c.exec_driver_sql(
        f"SELECT id FROM discrepancies WHERE provider = 'bench' AND status = 'open'").all()))
    assert ids(first.run_id) and ids(first.run_id) == ids(again.run_id)


def test_equal_ids_fall_into_one_partition_however_their_arrays_are_cut() -> None:
    ids = pd.Series([f"bt{n:08d}" for n in range(5000)] + ["é-ünïcode", "", "x" * 300], dtype="string")
    whole = partition._spread(ids, 7)
    sliced = partition._spread(ids.iloc[1000:], 7)
    chunked = partition._spread(pd.concat([ids.iloc[:2500], ids.iloc[2500:]], ignore_index=True), 7)
    shuffled = ids.sample(frac=1, random_state=3)
    assert (sliced == whole[1000:]).all() and (chunked == whole).all()
    assert (partition._spread(shuffled, 7) == whole[shuffled.index.to_numpy()]).all()
    assert set(whole) == set(range(7)) and max(pd.Series(whole).value_counts()) < 1.2 * len(ids) / 7
    assert partition._spread(pd.Series([pd.NA, pd.NA], dtype="string"), 7).tolist() == [0, 0]
    assert partition._spread(pd.Series(["", pd.NA], dtype="string"), 7).tolist() == [0, 0]
    assert len(partition._spread(pd.Series([], dtype="string"), 7)) == 0


def test_repeats_are_exactly_the_values_pandas_finds_twice_also_when_ids_share_their_ends() -> None:
    ends = "a" * 20 + "{}" + "b" * 20  # one length, the same first and last bytes: the same hash
    values = pd.Series([ends.format("x"), ends.format("y"), ends.format("y"), "bt1", "bt2", "bt1", pd.NA, pd.NA, "",
                        "", "bt3"], dtype="string")
    assert partition._hashes(values)[0] == partition._hashes(values)[1]
    expected = (values.duplicated(keep=False) & values.notna()).tolist()
    assert expected == [False, True, True, True, False, True, False, False, True, True, False]
    assert partition._repeats(values).tolist() == expected
    shuffled = values.sample(frac=1, random_state=5)
    assert partition._repeats(shuffled).tolist() == [expected[n] for n in shuffled.index]
    assert not partition._repeats(pd.Series(["bt1", "bt2", pd.NA], dtype="string")).any()
    assert len(partition._repeats(pd.Series([], dtype="string"))) == 0


def test_the_whole_day_keys_of_a_partitioned_result_are_coded_when_read(day) -> None:
    db, report, _ = day
    report_file = ingest_report(report, bench.bench_config().report)
    ledger = db.transaction(lambda c: read_ledger_side(c, bench.PROVIDER, bench.DAY, "UTC",
                                                       references=report_file.rows["reference"]), readonly=True)
    parts, _, _ = compare(report_file, ledger, set(), window_s=900, margin_s=3600, partition_rows=300)
    assert parts.key_codes is None and "keys" not in parts._cache  # not coded by the match
    keys = parts.keys
    rows = ledger.rows
    for codes, text in ((keys.report_reference, report_file.rows["reference"]), (keys.report_tx,
                        report_file.rows["provider_tx_id"]), (keys.ledger_transfer_id, rows["transfer_id"]),
                        (keys.ledger_tx, rows["provider_tx_id"])):
        assert len(codes) == len(text) and ((codes < 0) == text.isna().to_numpy()).all()
    by_reference = pd.Series(keys.report_reference).where(report_file.rows["reference"].notna().to_numpy())
    paired = parts.pairs[parts.pairs["method"] == "reference"]
    report_rows = report_file.rows.reset_index(drop=True)
    positions = pd.Index(report_rows["row_number"]).get_indexer(paired["p_row_number"])
    assert (keys.report_reference[positions] == keys.ledger_transfer_id[paired["l_position"]]).all()
    assert by_reference.dropna().nunique() == report_file.rows["reference"].dropna().nunique()


def test_a_day_is_one_frame_up_to_one_frame_rows_then_partitions_of_partition_rows() -> None:
    one, size = partition.ONE_FRAME_ROWS, partition.PARTITION_ROWS
    assert partition.count_for(one) == 1
    assert partition.count_for(one + 1) == -(-(one + 1) // size) > 1
    assert partition.count_for(5_000_000) == -(-5_000_000 // size)
    assert partition.count_for(1_000, 300) == 4  # an explicit size cuts whatever the day's size
    assert partition.count_for(0, 300) == 1

"""Integer codes of text columns (``reconcile.codes``): the same code exactly for the same text, on either
side, whatever the storage, the length, or a hash that collides; and the matching built on them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile_support import at, report_frame
from transfer_wallet.reconcile import codes, differences
from transfer_wallet.reconcile.classify import classify
from transfer_wallet.reconcile.controls import control_totals
from transfer_wallet.reconcile.frame import INVALID_COLUMNS
from transfer_wallet.reconcile.ledger_side import business_window, ledger_frame
from transfer_wallet.reconcile.match import PAIR_COLUMNS, match

STORAGES = ["python"] + (["pyarrow"] if importlib.util.find_spec("pyarrow") else [])
WINDOW = business_window(dt.date(2026, 12, 1), "UTC")
#: Texts around the word edges (7/8/9, 15/16/17 bytes), the 64-byte limit and past it, NUL, multi-byte UTF-8.
TEXTS = ["", "a", "a\0", "\0", "IN", "OUT", "bt0000001", "bt00000001", "bt000000001", "x" * 15, "x" * 16,
         "x" * 17, "y" * 64, "y" * 65, "é", "e\u0301", "€uro", None]


def _agree(found: tuple[np.ndarray, np.ndarray], left: list[str | None], right: list[str | None]) -> None:
    """Codes are -1 exactly for NA, and equal exactly where the texts are equal (across both sides)."""
    values = left + right
    coded = np.concatenate(found)
    assert len(coded) == len(values)
    for i, value in enumerate(values):
        assert (coded[i] == -1) == (value is None)
        for j in range(i):
            if value is not None and values[j] is not None:
                assert (coded[i] == coded[j]) == (value == values[j]), (value, values[j])


def _hash_everything_alike(words: np.ndarray) -> np.ndarray:
    return np.zeros(words.shape[1], dtype=np.uint64)


@pytest.mark.parametrize("storage", STORAGES)
@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(TEXTS) | st.text(max_size=20), max_size=25),
       st.lists(st.sampled_from(TEXTS) | st.text(max_size=20), max_size=25), st.integers(0, 3))
def test_joint_and_value_codes_are_equal_exactly_for_equal_texts(storage, left, right, skip) -> None:
    if storage == "python":  # pandas' own hash table (the fallback) ends a text at NUL: "\0" == "" there
        left, right = [_no_nul(t) for t in left], [_no_nul(t) for t in right]
    a = pd.Series(left, dtype=pd.StringDtype(storage)).iloc[min(skip, len(left)):]  # a slice: an Arrow offset
    b = pd.Series(right, dtype=pd.StringDtype(storage))
    left = left[min(skip, len(left)):]
    _agree(codes.joint_codes(a, b), left, right)
    _agree(codes.value_codes(a, b), left, right)
    _agree(codes.joint_codes(a, b, hash_words=_hash_everything_alike), left, right)


def _no_nul(text: str | None) -> str | None:
    return None if text is None else text.replace("\0", "0")


def test_different_texts_under_one_hash_are_told_apart_by_their_bytes() -> None:
    left, right = ["bt1", "bt2", None, "bt1", "zz"], ["bt2", "bt3", "bt1", ""]
    a, b = pd.Series(left, dtype="string"), pd.Series(right, dtype="string")
    found = codes.joint_codes(a, b, hash_words=_hash_everything_alike)
    _agree(found, left, right)
    assert found[0][0] == found[0][3] == found[1][2] and found[0][1] == found[1][0]


def test_keys_longer_than_the_word_limit_are_coded_by_pandas_and_still_exact() -> None:
    long = "k" * (codes.MAX_KEY_BYTES + 1)
    left, right = [long, long + "x", "short"], [long + "x", "short", long]
    _agree(codes.joint_codes(pd.Series(left, dtype="string"), pd.Series(right, dtype="string")), left, right)


def test_dictionary_codes_keep_na_as_a_label_of_its_own() -> None:
    values = pd.Series(["EUR", None, "USD", "EUR"], dtype="string")
    found, labels = codes.dictionary_codes(values)
    assert [None if pd.isna(labels[c]) else labels[c] for c in found] == ["EUR", None, "USD", "EUR"]
    plain, plain_labels = codes.dictionary_codes(pd.Series(["EUR", None], dtype=pd.StringDtype("python")))
    assert plain_labels[plain[0]] == "EUR" and pd.isna(plain_labels[plain[1]])


def _ledger(*rows: tuple) -> pd.DataFrame:
    return ledger_frame(list(rows), *WINDOW)


def test_pairs_are_kept_as_positions_and_paired_rows_give_both_sides() -> None:
    side = _ledger(("t1", "px-1", "P1", "IN", 700, "EUR", "completed", at("2026-12-01 12:00")),
                   ("t2", "px-2", "P2", "OUT", 300, "EUR", "completed", at("2026-12-01 13:00")),
                   ("t3", None, "P3", "IN", 100, "EUR", "completed", at("2026-12-01 14:00")))
    report = report_frame([dict(provider_tx_id="px-2", player_id="P2", direction="OUT", amount_minor=300,
                                created_at=at("2026-12-01 13:00")),
                           dict(provider_tx_id="px-9", reference="t1", player_id="P1", direction="IN",
                                amount_minor=700, created_at=at("2026-12-01 12:00"))])
    result = match(report, side, window_s=900)
    assert list(result.pairs.columns) == list(PAIR_COLUMNS)
    assert result.pairs[["l_position", "l_transfer_id", "p_row_number"]].values.tolist() == [[0, "t1", 3], [1, "t2", 2]]
    assert result.pairs["method"].astype(str).tolist() == ["reference", "provider_tx_id"]
    rows = result.paired_rows(np.array([1]))
    assert rows[["p_provider_tx_id", "l_transfer_id", "l_position", "method"]].values.tolist() == [
        ["px-2", "t2", 1, "provider_tx_id"]]
    assert result.ledger_only["transfer_id"].tolist() == ["t3"] and result.report_only.empty


def test_a_provider_tx_id_on_two_ledger_rows_pairs_neither() -> None:
    side = _ledger(("t1", "px-1", "P1", "IN", 700, "EUR", "completed", at("2026-12-01 12:00")),
                   ("t2", "px-1", "P1", "IN", 700, "EUR", "completed", at("2026-12-01 15:00")))
    report = report_frame([dict(provider_tx_id="px-1", reference="t-unknown", player_id="P1", direction="IN",
                                amount_minor=700, created_at=at("2026-12-01 18:00"))])
    assert match(report, side, window_s=900).counts() == {
        "matched_by_reference": 0, "matched_by_provider_tx_id": 0, "matched_by_candidate": 0,
        "duplicates": 0, "report_only": 1, "ledger_only": 2}


def test_break_times_stay_datetimes_when_a_side_is_missing() -> None:
    side = _ledger(("t1", "px-1", "P1", "IN", 700, "EUR", "completed", at("2026-12-01 12:00")))
    report = report_frame([dict(provider_tx_id="px-2", player_id="P2", direction="IN", amount_minor=500,
                                created_at=at("2026-12-01 12:00"))])
    invalid = pd.DataFrame([{"row_number": 9, "column": "amount", "raw_value": "1.2.3", "reason": "not a number"}],
                           columns=list(INVALID_COLUMNS))
    breaks = classify(match(report, side, window_s=900), invalid, margin_s=3600, window=WINDOW)
    assert sorted(breaks["kind"]) == ["INVALID_RECORD", "MISSING_AT_PROVIDER", "MISSING_IN_LEDGER"]
    for column in ("p_created_at", "l_created_at"):
        assert isinstance(breaks[column].dtype, pd.DatetimeTZDtype)
    by_kind = breaks.set_index("kind")
    assert pd.isna(by_kind.loc["MISSING_IN_LEDGER", "l_created_at"])
    assert by_kind.loc["MISSING_AT_PROVIDER", "l_created_at"] == pd.Timestamp(at("2026-12-01 12:00"))


def test_control_totals_count_a_missing_amount_as_zero_and_a_missing_currency_as_its_own_group() -> None:
    side = _ledger(("t1", "px-1", "P1", "IN", 700, "EUR", "completed", at("2026-12-01 12:00")),
                   ("t2", "px-2", "P1", "OUT", None, "EUR", "completed", at("2026-12-01 12:05")),
                   ("t3", "px-3", "P1", "OUT", 50, None, "completed", at("2026-12-01 12:10")),
                   ("t4", "px-4", "P1", "OUT", 60, "EUR", "refused", at("2026-12-01 12:15")))
    report = report_frame([dict(provider_tx_id="px-1", reference="t1", player_id="P1", direction="IN",
                                amount_minor=700, created_at=at("2026-12-01 12:00"))])
    table = control_totals(report, side, classify(match(report, side, window_s=900),
                                                  pd.DataFrame(columns=list(INVALID_COLUMNS)),
                                                  margin_s=3600, window=WINDOW))
    rows = {(None if pd.isna(r["currency"]) else r["currency"], r["direction"]):
            (r["provider_count"], r["provider_sum_minor"], r["ledger_count"], r["ledger_sum_minor"])
            for r in table.to_dict("records")}
    assert rows == {("EUR", "IN"): (1, 700, 1, 700), ("EUR", "OUT"): (0, 0, 1, 0), (None, "OUT"): (0, 0, 1, 50)}


def test_control_totals_from_shared_codes_and_a_mask_equal_those_of_the_copied_rows() -> None:
    side = _ledger(("t1", "px-1", "P1", "IN", 700, "EUR", "completed", at("2026-12-01 12:00")),
                   ("t2", "px-2", "P1", "OUT", None, "EUR", "completed", at("2026-12-01 12:05")),
                   ("t3", "px-3", "P1", "OUT", 50, None, "completed", at("2026-12-01 12:10")),
                   ("t4", "px-4", "P2", "OUT", 60, "USD", "refused", at("2026-12-01 12:15")),
                   ("t5", "px-5", "P2", "IN", 80, "USD", "completed", at("2026-12-01 12:20")))
    report = report_frame([dict(provider_tx_id="px-1", reference="t1", player_id="P1", direction="IN",
                                amount_minor=900, created_at=at("2026-12-01 12:00")),
                           dict(provider_tx_id="px-5", player_id="P2", direction="IN", amount_minor=80,
                                currency="USD", created_at=at("2026-12-01 12:20"))])
    result = match(report, side, window_s=900)
    breaks = classify(result, pd.DataFrame(columns=list(INVALID_COLUMNS)), margin_s=3600, window=WINDOW)
    counted = np.array([True, True, False, True, True])
    shared = control_totals(result.report, result.ledger, breaks, counted=counted, codes=result.column_codes)
    copied = control_totals(report, side[counted].reset_index(drop=True), breaks)
    pd.testing.assert_frame_equal(shared, copied)
    assert shared.set_index(["currency", "direction"]).loc[("EUR", "IN"), "unexplained_minor"] == 0  # the amount break


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-2, 6), st.integers(-2, 6), st.integers(-2, 300)), min_size=1, max_size=30),
       st.data())
def test_pairs_whose_field_codes_differ_are_found_however_many_signatures_they_are_packed_into(rows, data) -> None:
    report = {name: np.array([row[n] for row in rows], dtype=np.int64) for n, name in enumerate(("a", "b", "c"))}
    ledger = {name: codes[::-1].copy() for name, codes in report.items()}
    p = np.array(data.draw(st.lists(st.integers(0, len(rows) - 1), max_size=20)), dtype=np.int64)
    l = np.array(data.draw(st.lists(st.integers(0, len(rows) - 1), min_size=len(p), max_size=len(p))), dtype=np.int64)
    expected = np.flatnonzero(np.any([report[n][p] != ledger[n][l] for n in report], axis=0)) if len(p) else []
    for limit in (1 << 62, 1 << 12, 2):  # one signature; two; one per field
        assert differences._suspects(report, ledger, p, l, limit=limit).tolist() == list(expected)


def test_a_match_result_without_key_codes_works_them_out_when_asked() -> None:
    side = _ledger(("t1", "px-1", "P1", "IN", 700, "EUR", "completed", at("2026-12-01 12:00")),
                   ("t2", "px-2", "P2", "OUT", 300, "EUR", "completed", at("2026-12-01 13:00")))
    report = report_frame([dict(provider_tx_id="px-2", reference="t1", player_id="P1", direction="IN",
                                amount_minor=700, created_at=at("2026-12-01 12:00"))])
    result = match(report, side, window_s=900)
    lazy = dataclasses.replace(result, key_codes=None, _cache={})
    for name in ("report_reference", "ledger_transfer_id", "report_tx", "ledger_tx"):
        assert np.array_equal(getattr(lazy.keys, name), getattr(result.keys, name))
    assert lazy.keys is lazy.keys  # worked out once
    assert classify(lazy, pd.DataFrame(columns=list(INVALID_COLUMNS)), margin_s=3600, window=WINDOW).equals(
        classify(result, pd.DataFrame(columns=list(INVALID_COLUMNS)), margin_s=3600, window=WINDOW))

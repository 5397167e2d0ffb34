"""Matching, classification and control totals on literal frames (no database): the rules one by one,
and a property: random ledger + report with random planted mutations -> exactly the planted breaks."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile_support import at, report_frame
from transfer_wallet.reconcile.classify import classify
from transfer_wallet.reconcile.controls import control_breaks, control_totals
from transfer_wallet.reconcile.frame import INVALID_COLUMNS
from transfer_wallet.reconcile.ledger_side import business_window, ledger_frame
from transfer_wallet.reconcile.match import match

DAY = dt.date(2026, 12, 1)
WINDOW = business_window(DAY, "UTC")
NO_INVALID = pd.DataFrame(columns=list(INVALID_COLUMNS))


def ledger(*rows: tuple) -> pd.DataFrame:
    return ledger_frame(list(rows), *WINDOW)


def breaks_of(report: pd.DataFrame, side: pd.DataFrame) -> pd.DataFrame:
    return classify(match(report, side, window_s=900), NO_INVALID, margin_s=3600, window=WINDOW)


def test_a_business_day_is_23_or_25_hours_across_a_dst_change_in_the_report_timezone():
    spring = business_window(dt.date(2026, 3, 29), "Europe/Malta")
    autumn = business_window(dt.date(2026, 10, 25), "Europe/Malta")
    assert spring[1] - spring[0] == dt.timedelta(hours=23) and autumn[1] - autumn[0] == dt.timedelta(hours=25)
    assert business_window(DAY, "America/New_York")[0] == at("2026-12-01 05:00")  # crosses UTC midnight


def test_a_row_without_reference_matches_its_unique_candidate_within_the_window():
    side = ledger(("t1", None, "P1", "IN", 700, "EUR", "completed", at("2026-12-01 12:00")))
    report = report_frame([dict(provider_tx_id="px", player_id="P1", direction="IN", amount_minor=700,
                                created_at=at("2026-12-01 12:10"))])
    result = match(report, side, window_s=900)
    assert result.counts()["matched_by_candidate"] == 1 and breaks_of(report, side).empty
    late = report.assign(created_at=pd.Timestamp(at("2026-12-01 12:20")))  # 20 minutes: outside the window
    assert match(late, side, window_s=900).counts()["matched_by_candidate"] == 0


def test_two_equal_candidates_are_not_guessed_between():
    side = ledger(("t1", None, "P1", "IN", 700, "EUR", "completed", at("2026-12-01 12:00")),
                  ("t2", None, "P1", "IN", 700, "EUR", "completed", at("2026-12-01 12:05")))
    report = report_frame([dict(provider_tx_id="px", player_id="P1", direction="IN", amount_minor=700,
                                created_at=at("2026-12-01 12:02"))])
    assert sorted(breaks_of(report, side)["kind"]) == ["MISSING_AT_PROVIDER", "MISSING_AT_PROVIDER",
                                                        "MISSING_IN_LEDGER"]


def test_a_row_matches_by_provider_tx_id_when_its_reference_is_unknown_and_names_the_reference():
    side = ledger(("t1", "px-1", "P1", "IN", 700, "EUR", "completed", at("2026-12-01 12:00")))
    report = report_frame([dict(provider_tx_id="px-1", reference="t-typo", player_id="P1", direction="IN",
                                amount_minor=800, created_at=at("2026-12-01 12:00"))])
    [row] = breaks_of(report, side).to_dict("records")
    assert row["kind"] == "AMOUNT_MISMATCH" and row["fields"] == "amount|reference"


def test_a_difference_no_break_explains_is_a_control_total_mismatch():
    side = ledger(("t1", "px-1", "P1", "IN", 700, "EUR", "completed", at("2026-12-01 12:00")))
    report = report_frame([dict(provider_tx_id="px-1", reference="t1", player_id="P1", direction="IN",
                                amount_minor=900, created_at=at("2026-12-01 12:00"))])
    breaks = breaks_of(report, side)
    assert control_breaks(control_totals(report, side, breaks)).empty  # the amount break explains the 2.00
    table = control_totals(report, side, breaks.iloc[0:0])  # as if classification had missed it
    [row] = control_breaks(table).to_dict("records")
    assert row["kind"] == "CONTROL_TOTAL_MISMATCH" and row["key"] == "totals:EUR:IN"
    assert "unexplained 0 rows, 200 minor units" in row["detail"]


MUTATIONS = ("AMOUNT_MISMATCH", "CURRENCY_MISMATCH", "STATUS_MISMATCH", "TYPE_MISMATCH", "PLAYER_MISMATCH",
             "MISSING_AT_PROVIDER", "MISSING_IN_LEDGER", "DUPLICATE_AT_PROVIDER", None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 500_00), st.sampled_from(["IN", "OUT"]), st.integers(0, 4),
                          st.integers(3600, 82_000), st.sampled_from(MUTATIONS)), min_size=1, max_size=40))
def test_exactly_the_planted_discrepancies_are_found_with_their_types(transfers):
    """Mid-day transfers (away from the cut-off), each mutated at most once in the report."""
    ledger_rows, report_rows, planted = [], [], {}
    for index, (amount, direction, player, second, mutation) in enumerate(transfers):
        created = at("2026-12-01 00:00") + dt.timedelta(seconds=second)
        transfer_id, tx = f"t{index}", f"px{index}"
        ledger_rows.append((transfer_id, tx, f"P{player}", direction, amount, "EUR", "completed", created))
        row = dict(provider_tx_id=tx, reference=transfer_id, player_id=f"P{player}", direction=direction,
                   amount_minor=amount, created_at=created)
        change = {"AMOUNT_MISMATCH": {"amount_minor": amount + 1}, "CURRENCY_MISMATCH": {"currency": "USD"},
                  "STATUS_MISMATCH": {"status": "FAILED"}, "TYPE_MISMATCH": {"direction": {"IN": "OUT", "OUT": "IN"}[direction]},
                  "PLAYER_MISMATCH": {"player_id": "Pzz"}}.get(mutation or "", {})
        if mutation != "MISSING_AT_PROVIDER":
            report_rows.append({**row, **change})
        if mutation == "DUPLICATE_AT_PROVIDER":
            report_rows.append(row)
            planted[f"tx:{tx}#2"] = mutation
        elif mutation == "MISSING_IN_LEDGER":
            report_rows.append({**row, "provider_tx_id": f"ghost{index}", "reference": None, "player_id": "Pghost"})
            planted[f"tx:ghost{index}"] = mutation
        elif mutation:
            planted[transfer_id] = mutation
    report = report_frame(report_rows)
    side = ledger(*ledger_rows)
    breaks = breaks_of(report, side)
    assert dict(zip(breaks["key"], breaks["kind"])) == planted and len(breaks) == len(planted)
    assert control_breaks(control_totals(report, side, breaks)).empty

"""``tw bench reconcile`` on a small day: every planted break found with its type, none invented.

The benchmark's own fixture (a bulk-inserted ledger and a report with planted breaks of
every type) doubles as a randomised end-to-end check on both databases.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import cli
from transfer_wallet.bench.reconcile import PLANTED_KINDS, accuracy, run_reconcile_benchmark


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_benchmark_day_finds_exactly_the_planted_breaks(new_database_url, backend):
    figures = run_reconcile_benchmark(new_database_url(backend), 3000, seed=5)
    assert figures["accuracy"] == {"planted": 3 * (len(PLANTED_KINDS) - 1) + 1,
                                   "found_right_type": figures["accuracy"]["planted"], "wrong_type": 0, "missed": 0,
                                   "invented": 0}
    assert figures["floor"]["ledger_rows"] == 3000
    assert set(figures["ours"]) == {"ingest", "ledger_read", "match_classify", "persist", "exports", "end_to_end"}
    assert figures["peak_rss_mb"] > 50


def test_accuracy_tells_a_wrong_type_a_miss_and_an_invention_apart():
    planted = {("AMOUNT_MISMATCH", "t1"), ("MISSING_AT_PROVIDER", "t2"), ("TIMING_CUTOFF", "t3")}
    found = [("AMOUNT_MISMATCH", "t1"), ("MISSING_AT_PROVIDER", "t3"), ("PLAYER_MISMATCH", "t9")]
    assert accuracy(planted, found) == {"planted": 3, "found_right_type": 1, "wrong_type": 1, "missed": 1,
                                        "invented": 1}


def test_tw_bench_reconcile_prints_one_json_document(tmp_path):
    result = CliRunner().invoke(cli, ["--json", "--db", f"sqlite:///{tmp_path / 'x.db'}", "bench", "reconcile",
                                      "--rows", "1000"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["accuracy"]["invented"] == 0 and document["accuracy"]["missed"] == 0

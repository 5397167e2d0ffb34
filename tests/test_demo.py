"""``tw demo``: the whole story, twice on one SQLite file; and the report mistakes it plants.

The demo runs as a real process (as ``make demo`` runs it) on a fresh SQLite file,
then again on the same file: both exit 0, the ledger check is clean, every planted
report mistake comes back as a discrepancy of its type at both providers, and the
CSV, XLSX and HTML files exist.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from transfer_wallet.money import Money, currency
from transfer_wallet.providers.protocol import Direction, TransferState
from transfer_wallet.simulator.report_faults import EXPECTED_KIND, plant_mistakes
from transfer_wallet.simulator.store import StoredTransfer

ROOT = Path(__file__).resolve().parents[1]
TW = [sys.executable, "-m", "cli"]
EUR = currency("EUR")
T0 = dt.datetime(2026, 11, 24, 0, 0, tzinfo=dt.timezone.utc)


def _demo(db_file: Path, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TW_")}  # throwaway secrets, no DB override
    env["TW_PROVIDERS_FILE"] = str(ROOT / "sample_data" / "providers.toml")
    done = subprocess.run([*TW, "--db", f"sqlite:///{db_file}", "--json", "demo", "--sessions", "30", "--players", "12",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    assert done.stderr == "", done.stderr  # no progress bar when stderr is not a terminal
    return json.loads(done.stdout)  # one document


def _check_story(story: dict, out: Path) -> None:
    assert story["ok"] is True and story["ledger_check"]["clean"] is True, story["ledger_check"]
    assert [day["provider"] for day in story["providers"]] == ["acme", "betsul"]
    for day in story["providers"]:
        assert day["sessions"] == 30 and set(day["sessions_by_state"]) <= {"closed", "failed"}, day
        # Only in the first half hour after the provider's midnight is the day compressed (nothing crosses it).
        assert day["crossing_midnight"] >= 1 or day["compressed"], day
        expected = {p["expected_kind"] for p in day["planted"]}
        assert expected == set(EXPECTED_KIND.values()), day["planted"]
        found = day["discrepancies_by_type"]
        assert all(found.get(kind, 0) >= 1 for kind in expected), (day["provider"], found, day["planted"])
        names = {Path(f).name for f in day["files"]}
        assert {"discrepancies.csv", "reconciliation.xlsx", "report.html"} <= names, names
        assert all(Path(f).is_file() and Path(f).stat().st_size > 0 for f in day["files"])
        assert all(Path(f).parent.parent == out for f in day["files"])
        business_date = dt.date.fromisoformat(day["business_date"])
        assert business_date < dt.datetime.now(dt.timezone.utc).date()  # yesterday somewhere: never today in UTC+
        assert dt.datetime.fromisoformat(day["simulated_to"]) <= dt.datetime.now(dt.timezone.utc)


def test_tw_demo_runs_twice_on_one_sqlite_file(tmp_path: Path) -> None:
    db_file, out = tmp_path / "transfer_wallet.db", tmp_path / "demo-out"
    first = _demo(db_file, out)
    _check_story(first, out)
    second = _demo(db_file, out)  # same file: new ids, the providers remember the first run
    _check_story(second, out)
    assert first["run_id"] != second["run_id"]
    checked = subprocess.run([*TW, "--db", f"sqlite:///{db_file}", "--json", "ledger", "check"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and json.loads(checked.stdout)["clean"] is True, checked.stdout


def _transfer(number: int, minute: int, direction: Direction = Direction.IN, amount_minor: int = 1000,
              state: TransferState = TransferState.APPLIED) -> StoredTransfer:
    return StoredTransfer(f"t{number}", f"acme-p{number}", f"P{number % 3}", direction, "fp", Money(amount_minor, EUR),
                          state, None, None, T0 + dt.timedelta(minutes=minute))


def test_each_mistake_is_planted_once_on_a_different_applied_transfer_inside_the_window() -> None:
    transfers = [_transfer(n, 60 * n) for n in range(10)] + [_transfer(99, 300, state=TransferState.FAILED)]
    inside = (T0 + dt.timedelta(hours=2), T0 + dt.timedelta(hours=8))
    rows, planted = plant_mistakes(transfers, seed=1, tag="run1", inside=inside)
    assert [p.mistake for p in planted] == ["missing_row", "changed_amount", "duplicate_row", "unknown_transfer"]
    touched = [p.transfer_id for p in planted[:3]]
    assert len(set(touched)) == 3 and all(t in {f"t{n}" for n in range(2, 8)} for t in touched)
    by_id = {t.transfer_id: t for t in transfers}
    ids = [r.transfer_id for r in rows]
    assert planted[0].transfer_id not in ids
    changed = next(r for r in rows if r.transfer_id == planted[1].transfer_id)
    assert changed.amount.amount_minor > by_id[planted[1].transfer_id].amount.amount_minor
    assert ids.count(planted[2].transfer_id) == 2
    assert planted[3].transfer_id.startswith("ghost-run1-") and planted[3].transfer_id in ids
    assert len(rows) == len(transfers) - 1 + 1 + 1


def test_planting_is_seeded_and_refuses_what_it_cannot_do() -> None:
    transfers = [_transfer(n, n) for n in range(6)]
    first = plant_mistakes(transfers, seed=4, tag="a")[1]
    assert [p.transfer_id for p in first] == [p.transfer_id for p in plant_mistakes(transfers, seed=4, tag="a")[1]]
    from transfer_wallet.errors import ValidationError

    with pytest.raises(ValidationError, match="unknown report mistake"):
        plant_mistakes(transfers, seed=1, tag="a", mistakes=["typo"])
    with pytest.raises(ValidationError, match="need more"):
        plant_mistakes(transfers[:2], seed=1, tag="a")

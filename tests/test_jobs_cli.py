"""``tw jobs`` for an operator: run a window by hand, see the history and next runs, key-age warnings."""

from __future__ import annotations

import datetime as dt
import json
import logging

from click.testing import CliRunner

from cli import cli
from jobs import key_age
from tests.jobs_support import drop, history, providers_file, report_bytes
from transfer_wallet.config import load_providers

UTC = dt.timezone.utc


def tw(db, providers, *args):
    url = db.engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(cli, ["--db", url, "--providers", str(providers), *args])


def test_a_window_run_by_hand_is_recorded_listed_and_not_repeated(db, tmp_path):
    providers = providers_file(tmp_path)
    report = drop(tmp_path, "acme", "2026-12-01", report_bytes("2026-12-01", ("acme-x1", "P9", "10.00")))
    first = tw(db, providers, "jobs", "run", "reconcile", "--provider", "acme", "--date", "2026-12-01",
               "--report", str(report))
    assert first.exit_code == 0, first.output
    assert first.output.startswith("reconcile acme:2026-12-01: run ")
    again = tw(db, providers, "--json", "jobs", "run", "reconcile", "--provider", "acme", "--date", "2026-12-01")
    assert again.exit_code == 0 and json.loads(again.output)["outcome"] == "done"
    listed = tw(db, providers, "--json", "jobs", "list")
    entries = {e["id"]: e for e in json.loads(listed.output)["jobs"]}
    assert set(entries) == {"timeouts", "in-doubt", "key-age", "reconcile:acme"}
    assert [r["outcome"] for r in entries["reconcile:acme"]["runs"]] == ["succeeded"]
    next_run = dt.datetime.fromisoformat(entries["reconcile:acme"]["next_run"])
    assert (next_run.hour, next_run.minute) == (6, 0) and next_run > dt.datetime.now(UTC)
    table = tw(db, providers, "jobs", "list")
    assert "reconcile:acme" in table.output and "acme:2026-12-01" in table.output


def test_a_missing_report_exits_3_and_bad_usage_exits_2_writing_nothing(db, tmp_path):
    providers = providers_file(tmp_path)
    missing = tw(db, providers, "jobs", "run", "reconcile", "--provider", "acme", "--date", "2026-12-01")
    assert missing.exit_code == 3 and "FILE_MISSING" in missing.output
    before = len(history(db))
    no_provider = tw(db, providers, "jobs", "run", "reconcile")
    assert no_provider.exit_code == 2 and "needs --provider" in no_provider.output
    misplaced = tw(db, providers, "jobs", "run", "timeouts", "--provider", "acme")
    assert misplaced.exit_code == 2 and "only for 'tw jobs run reconcile'" in misplaced.output
    unknown = tw(db, providers, "jobs", "run", "reconcile", "--provider", "nope")
    assert unknown.exit_code == 1 and unknown.output.strip().startswith("error: unknown provider 'nope'")
    assert len(history(db)) == before


def test_key_age_warns_once_a_day_about_old_keys_and_unset_secrets(db, tmp_path, monkeypatch, caplog):
    path = providers_file(tmp_path)
    path.write_text(path.read_text() + '\n[[providers.acme.keys]]\nkey_id = "old"\nsecret_env = "TW_T_OLD"\n'
                    'created = 2026-08-01\n\n[[providers.acme.keys]]\nkey_id = "new"\nsecret_env = "TW_T_NEW"\n'
                    'created = 2026-11-20\n')
    monkeypatch.setenv("TW_T_OLD", "s3cret")
    monkeypatch.delenv("TW_T_NEW", raising=False)
    providers = load_providers(path).values()
    now = dt.datetime(2026, 11, 1, 7, 0, tzinfo=UTC)  # 92 days after 2026-08-01
    with caplog.at_level(logging.WARNING, logger="transfer_wallet.jobs"):
        run = key_age.run(db, providers, now=now)
    assert run.summary() == ("key-age 2026-11-01: keys 2, too old 1, secret unset 1 (key old of acme is 92 days old "
                             "(rotate every 90 days); key new of acme: secret variable TW_T_NEW is not set)")
    assert [r.getMessage() for r in caplog.records] == [
        "key-age: key old of acme is 92 days old (rotate every 90 days)",
        "key-age: key new of acme: secret variable TW_T_NEW is not set"]
    assert "s3cret" not in run.summary()
    assert key_age.run(db, providers, now=now + dt.timedelta(hours=1)).outcome == "done"
    assert key_age.run(db, providers, now=now + dt.timedelta(days=1)).outcome == "succeeded"

"""An operator's session from open to close through ``tw``, against ``tw provider serve``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli

ROOT = Path(__file__).resolve().parents[1]
SECRETS = {
    "TW_ACME_SECRET_2026_09": "cli-test-old-secret-4411",
    "TW_ACME_SECRET_2026_11": "cli-test-new-secret-9902",
    "TW_BETSUL_SECRET_K1": "cli-test-betsul-secret-7713",
}


@pytest.fixture
def simulator(tmp_path, monkeypatch):
    """``tw provider serve acme --port 0`` as a real process; yields a providers file pointing at it."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    env = {**os.environ, **SECRETS}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "--providers", str(ROOT / "sample_data" / "providers.toml"), "--json",
         "provider", "serve", "acme", "--port", "0", "--store", str(tmp_path / "sim.db")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = process.stdout.readline()
        url = json.loads(line)["url"]
        text = (ROOT / "sample_data" / "providers.toml").read_text()
        text = re.sub(r'base_url = "http://127.0.0.1:8701"', f'base_url = "{url}"', text)
        providers = tmp_path / "providers.toml"
        providers.write_text(text)
        yield providers
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def tw(db, simulator):
    url = db.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(cli, ["--db", url, "--providers", str(simulator), *args], catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return result

    return run


def test_an_operator_opens_plays_and_closes_a_session(tw):
    tw("player", "create", "P1", "--currency", "EUR")
    tw("wallet", "deposit", "P1", "100.00", "--ref", "dep-1")
    opened = json.loads(tw("--json", "session", "open", "P1", "--provider", "acme", "--amount", "50.00", "--key", "open-1").output)
    session_id = opened["session_id"]
    assert (opened["status"], opened["amount_in"], opened["game_balance"]) == ("active", "50.00", "50.00")
    again = json.loads(tw("--json", "session", "open", "P1", "--provider", "acme", "--amount", "50.00", "--key", "open-1").output)
    assert again["session_id"] == session_id
    balance = json.loads(tw("--json", "wallet", "balance", "P1").output)
    assert (balance["available"], balance["locked"]) == ("50.00", "50.00")

    tw("play", "bet", session_id, "--tx", "b-1", "--round", "r-1", "--amount", "10.00", "--game", "acme-starfall")
    tw("play", "win", session_id, "--tx", "w-1", "--round", "r-1", "--amount", "0.00")
    bet = json.loads(tw("--json", "play", "bet", session_id, "--tx", "b-2", "--round", "r-2", "--amount", "5.00").output)
    assert bet["game_balance"] == "35.00"
    refund = json.loads(tw("--json", "play", "refund", session_id, "--tx", "x-2", "--round", "r-2", "--bet-tx", "b-2").output)
    assert refund["game_balance"] == "40.00"
    tw("play", "bet", session_id, "--tx", "b-3", "--round", "r-3", "--amount", "40.01", code=1)  # 402

    shown = tw("session", "show", session_id).output
    assert "round r-1 settled bet 10.00 win 0.00" in shown and "round r-2 refunded" in shown

    # the provider does not know about the mirrored play: it returns all 50.00, which is a discrepancy
    closed = json.loads(tw("--json", "session", "close", session_id, "--key", "close-1").output)
    assert (closed["status"], closed["amount_out"]) == ("closed", "50.00")
    balance = json.loads(tw("--json", "wallet", "balance", "P1").output)
    assert (balance["available"], balance["locked"]) == ("100.00", "0.00")
    [found] = json.loads(tw("--json", "discrepancy", "list").output)["discrepancies"]
    assert (found["kind"], found["expected"], found["actual"]) == ("SESSION_CONSERVATION", "40.00", "50.00")
    listed = json.loads(tw("--json", "session", "list", "--player", "P1").output)["sessions"]
    assert [s["session_id"] for s in listed] == [session_id]
    assert json.loads(tw("--json", "ledger", "check").output)["clean"] is True


def test_limits_refuse_a_session_and_say_what_is_left(tw):
    tw("player", "create", "P1", "--currency", "EUR")
    tw("wallet", "deposit", "P1", "100.00", "--ref", "dep-1")
    tw("limits", "set", "P1", "--transfer-in-day", "30.00")
    result = tw("session", "open", "P1", "--provider", "acme", "--amount", "30.01", code=1)
    assert "30.00 EUR left" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    shown = json.loads(tw("--json", "limits", "show", "P1").output)
    assert shown["limits"]["transfer_in_day"] == "30.00"


def test_the_jobs_run_once_from_the_cli(tw):
    tw("player", "create", "P1", "--currency", "EUR")
    tw("wallet", "deposit", "P1", "10.00", "--ref", "dep-1")
    session_id = json.loads(tw("--json", "session", "open", "P1", "--provider", "acme", "--amount", "10.00").output)["session_id"]
    report = json.loads(tw("--json", "jobs", "run", "timeouts", "--now", "2099-01-01T00:00:00+00:00").output)
    assert report["closed"] == 1
    assert json.loads(tw("--json", "session", "show", session_id).output)["close_reason"] == "idle_timeout"
    assert json.loads(tw("--json", "jobs", "run", "in-doubt").output)["examined"] == 0
    tw("jobs", "run", "timeouts", "--now", "tomorrow", code=1)


def test_session_commands_reject_bad_input_in_one_line(tw):
    tw("player", "create", "P1", "--currency", "EUR")
    for args, message in (
        (("session", "open", "P1", "--provider", "nope", "--amount", "1.00"), "unknown provider 'nope'"),
        (("session", "open", "P1", "--provider", "acme", "--amount", "1.234"), "EUR allows 2"),
        (("session", "open", "P1", "--provider", "acme", "--amount", "5.00"), "insufficient funds"),
        (("session", "show", "s-missing"), "unknown session"),
        (("play", "bet", "s-missing", "--tx", "b", "--round", "r", "--amount", "1.00"), "unknown session"),
    ):
        result = tw(*args, code=1)
        assert message in result.stderr and "Traceback" not in result.output

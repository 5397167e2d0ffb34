"""``tw provider ...`` as an operator runs it, against a real simulator; ``serve`` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from cli import cli
from transfer_wallet.providers.http import HttpProvider

from .conftest import SAMPLE_PROVIDERS, SECRETS, eur

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def providers_file(tmp_path: Path, simulator, secrets_env) -> Path:  # type: ignore[no-untyped-def]
    """The sample providers file with acme pointing at the test simulator."""
    text = SAMPLE_PROVIDERS.read_text().replace('"http://127.0.0.1:8701"', f'"{simulator.url}"')
    file = tmp_path / "providers.toml"
    file.write_text(text)
    return file


@pytest.fixture
def tw(providers_file: Path):  # type: ignore[no-untyped-def]
    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(cli, ["--providers", str(providers_file), *args])

    return run


def test_list_shows_both_providers_with_currency_and_report_format(tw) -> None:  # type: ignore[no-untyped-def]
    result = tw("--json", "provider", "list")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["providers"]}
    assert (rows["acme"]["currency"], rows["betsul"]["currency"]) == ("EUR", "BRL")
    assert (rows["betsul"]["delimiter"], rows["betsul"]["decimal_separator"]) == (";", ",")
    assert "acme" in tw("provider", "list").stdout


def test_status_and_games_answer_over_signed_requests(tw, simulator) -> None:  # type: ignore[no-untyped-def]
    status = tw("--json", "provider", "status", "acme")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["state"] == "UP"
    games = tw("--json", "provider", "games", "acme")
    assert [g["game_id"] for g in json.loads(games.stdout)["games"]][0] == "acme-starfall"
    assert all(e["key_id"] == "acme-2026-11" for e in simulator.request_log_snapshot())


def test_report_writes_the_providers_csv_to_the_file(tw, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client.transfer_in("tr-1", "P1", eur("12.50"))
    day = client.transfer_status("tr-1").created_at.date()
    out = tmp_path / "acme.csv"
    result = tw("--json", "provider", "report", "acme", "--date", day.isoformat(), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 1
    assert out.read_bytes() == client.transfer_report(day)
    assert ",tr-1,P1,IN,12.50,EUR,OK," in out.read_text()


def test_play_moves_the_game_balance(tw, client) -> None:  # type: ignore[no-untyped-def]
    client.transfer_in("tr-1", "P1", eur("10.00"))
    result = tw("--json", "provider", "play", "acme", "P1", "--rounds", "5", "--seed", "3")
    document = json.loads(result.stdout)
    assert len(document["rounds"]) == 5
    assert eur(document["balance"]) == client.balance("P1")


def test_keys_lists_ids_and_ages_and_warns_about_old_keys_without_showing_secrets(tw) -> None:  # type: ignore[no-untyped-def]
    with freeze_time("2026-12-05"):
        result = tw("--json", "provider", "keys")
    assert result.exit_code == 0
    rows = {r["key_id"]: r for r in json.loads(result.stdout)["keys"]}
    assert rows["acme-2026-09"]["age_days"] == 95 and rows["acme-2026-09"]["warning"]
    assert rows["acme-2026-11"]["warning"] is None and rows["acme-2026-11"]["secret_set"] is True
    assert "warning: key acme-2026-09 of acme is 95 days old" in result.stderr
    for secret in SECRETS.values():
        assert secret not in result.output


def test_a_wrong_secret_is_refused_with_one_line_and_exit_1(tw, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TW_ACME_SECRET_2026_11", "not-what-the-provider-has")
    result = tw("provider", "status", "acme")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "authentication failed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not-what-the-provider-has" not in result.output


def test_an_unknown_provider_is_one_line_and_exit_1(tw) -> None:  # type: ignore[no-untyped-def]
    result = tw("provider", "status", "nope")
    assert result.exit_code == 1 and "unknown provider 'nope'" in result.stderr


def test_serve_runs_in_the_foreground_answers_signed_requests_and_stops_on_sigterm(providers_file, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    command = [sys.executable, "cli.py", "--json", "--providers", str(providers_file), "provider", "serve", "betsul",
               "--port", "0", "--store", str(tmp_path / "sim-betsul.db"), "--fault", "games:latency=1:1"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **SECRETS}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        announced = json.loads(process.stdout.readline())  # type: ignore[union-attr]
        assert announced["provider"] == "betsul" and announced["url"].startswith("http://127.0.0.1:")
        assert announced["faults"]["rules"] == ["games:latency=1:1"]
        from transfer_wallet.config import load_providers

        betsul = load_providers(providers_file)["betsul"]
        with HttpProvider(betsul, base_url=announced["url"]) as provider:
            assert provider.status().currency == "BRL"
            assert len(provider.games()) == 4
        refused = httpx.get(announced["url"] + "/v1/status", headers={"X-TW-Key-Id": "betsul-k1"})
        assert refused.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "GET /v1/status -> 200" in stderr and "GET /v1/status -> 401" in stderr
    for secret in SECRETS.values():
        assert secret not in stderr

"""Secrets never leave the environment: not in logs (ours, httpx's, the simulator's), errors,
reprs, the simulator's request log, or ``--json`` output."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from transfer_wallet.errors import AuthenticationFailedError, OutcomeUnknownError, TransferWalletError
from transfer_wallet.providers.signing import KeyRing
from transfer_wallet.simulator import FaultPlan

from .conftest import SAMPLE_PROVIDERS, SECRETS, eur


def assert_no_secret(text: str) -> None:
    for name, secret in SECRETS.items():
        assert secret not in text, f"the secret of {name} leaked"


def test_no_secret_appears_in_any_log_error_or_repr_over_a_busy_session(start_simulator, make_client, acme, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    server = start_simulator(acme, faults=FaultPlan.parse(["transfer:lost=0.3", "balance:500=0.3", "games:429=0.3:0"], seed=3))
    provider = make_client(acme, server)
    errors: list[TransferWalletError] = []
    for index in range(20):
        for call in (
            lambda: provider.transfer_in(f"tr-{index}", "P1", eur("1.00")),
            lambda: provider.balance("P1"),
            lambda: provider.games(),
        ):
            try:
                call()
            except TransferWalletError as exc:
                errors.append(exc)
    monkeypatch.setenv("TW_ACME_SECRET_2026_11", "wrong-" + SECRETS["TW_ACME_SECRET_2026_11"][:3])
    with pytest.raises(AuthenticationFailedError) as refused:
        make_client(acme, server).status()
    errors.append(refused.value)
    assert any(isinstance(e, OutcomeUnknownError) for e in errors)

    assert "acme-2026-11" in caplog.text  # the logs do name keys, by id
    assert_no_secret(caplog.text)
    assert_no_secret(" ".join(f"{e!r} {e} {e.__cause__!r}" for e in errors))
    assert_no_secret(json.dumps(server.request_log_snapshot()))
    assert_no_secret(repr(provider) + repr(server.ring) + repr(KeyRing.from_config(acme)) + repr(acme))


def test_no_secret_appears_in_json_output_of_any_provider_command(secrets_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cli import cli

    for args in (["provider", "list"], ["provider", "keys"], ["provider", "keys", "betsul"]):
        result = CliRunner().invoke(cli, ["--json", "--providers", str(SAMPLE_PROVIDERS), *args])
        assert result.exit_code == 0, result.output
        json.loads(result.stdout)
        assert_no_secret(result.output)

"""Fault injection in the real simulator, and how the client maps and retries each kind."""

from __future__ import annotations

import dataclasses
import socket
import time

import httpx
import pytest

from transfer_wallet.errors import (
    ConfigError,
    OutcomeUnknownError,
    ProviderUnavailableError,
    RateLimitedError,
    RejectedError,
)
from transfer_wallet.providers import TransferState
from transfer_wallet.simulator import FaultPlan, parse_rule
from transfer_wallet.simulator.faults import choose_plan, split_rules
from transfer_wallet.simulator.server import open_simulator
from transfer_wallet.simulator.admin import SimulatorAdmin

from .conftest import eur


def faulty(start_simulator, make_client, config, *rules: str, **client_options):  # type: ignore[no-untyped-def]
    server = start_simulator(config, faults=FaultPlan.parse(rules, seed=7))
    return server, make_client(config, server, **client_options)


def outcomes(server) -> list[object]:  # type: ignore[no-untyped-def]
    return [entry["status"] for entry in server.request_log_snapshot()]


def test_rules_parse_with_defaults_and_refuse_nonsense() -> None:
    assert parse_rule("transfer:500=0.2") == parse_rule("transfer:500=0.2:0")
    assert parse_rule("games:latency=1").param == 100.0
    assert parse_rule("*:429=0.5:3").param == 3.0
    for bad in ("transfer:500", "nowhere:500=1", "transfer:explode=1", "transfer:500=1.5", "transfer:500=x"):
        with pytest.raises(ConfigError):
            parse_rule(bad)


def test_a_seeded_plan_injects_the_same_faults_every_time() -> None:
    draws = []
    for _ in range(2):
        plan = FaultPlan.parse(["transfer:500=0.3", "transfer:latency=0.5:20"], seed=11)
        draws.append([plan.decide("transfer_in") for _ in range(50)])
    assert draws[0] == draws[1]
    assert {d.kind for d in draws[0]} == {None, "500"}
    assert plan.decide("games").kind is None  # rules apply to their endpoints only


def test_faults_come_from_the_providers_file_table() -> None:
    plan = FaultPlan.from_config({"seed": 3, "rules": ["transfer:lost=0.05"]})
    assert plan.describe() == {"seed": 3, "rules": ["transfer:lost=0.05:0"]}
    with pytest.raises(ConfigError):
        FaultPlan.from_config({"rules": "transfer:lost=0.05"})


def test_500_on_a_read_is_retried_with_backoff_then_raised_as_unavailable(start_simulator, make_client, acme, sleeps) -> None:  # type: ignore[no-untyped-def]
    server, provider = faulty(start_simulator, make_client, acme, "balance:500=1")
    with pytest.raises(ProviderUnavailableError, match="500"):
        provider.balance("P1")
    assert outcomes(server) == [500, 500, 500]  # max_attempts = 3
    assert len(sleeps) == 2 and 0.1 <= sleeps[0] <= 0.2 and 0.2 <= sleeps[1] <= 0.4


def test_500_on_a_transfer_becomes_outcome_unknown_after_the_retries(start_simulator, make_client, acme) -> None:  # type: ignore[no-untyped-def]
    server, provider = faulty(start_simulator, make_client, acme, "transfer:500=1")
    with pytest.raises(OutcomeUnknownError) as caught:
        provider.transfer_in("tr-1", "P1", eur("5.00"))
    assert isinstance(caught.value.__cause__, ProviderUnavailableError)
    assert "3 attempt" in str(caught.value)
    assert provider.transfer_status("tr-1").state is TransferState.NOT_FOUND


def test_429_honours_retry_after_and_a_read_raises_rate_limited(start_simulator, make_client, acme, sleeps) -> None:  # type: ignore[no-untyped-def]
    server, provider = faulty(start_simulator, make_client, acme, "games:429=1:2")
    with pytest.raises(RateLimitedError) as caught:
        provider.games()
    assert caught.value.retry_after_s == 2.0
    assert outcomes(server) == [429, 429, 429]
    assert sleeps and all(s >= 2.0 for s in sleeps)


def test_a_transfer_retried_after_429_goes_through_with_the_same_id(start_simulator, make_client, acme) -> None:  # type: ignore[no-untyped-def]
    server = start_simulator(acme, faults=FaultPlan.parse(["transfer:429=1:1"]))
    recovered = lambda seconds: server.faults.replace([], 0)  # the provider calms down while we wait
    provider = make_client(acme, server, sleep=recovered)
    result = provider.transfer_in("tr-1", "P1", eur("5.00"))
    assert (result.amount, result.replayed) == (eur("5.00"), False)
    log = server.request_log_snapshot()
    assert [e["status"] for e in log] == [429, 201]
    assert log[0]["request_id"] != log[1]["request_id"]


def test_a_connection_reset_is_unavailable_for_reads_and_unknown_for_transfers(start_simulator, make_client, acme) -> None:  # type: ignore[no-untyped-def]
    server, provider = faulty(start_simulator, make_client, acme, "status:reset=1", "transfer:reset=1")
    with pytest.raises(ProviderUnavailableError, match="network error"):
        provider.status()
    with pytest.raises(OutcomeUnknownError):
        provider.transfer_in("tr-1", "P1", eur("5.00"))
    assert outcomes(server) == ["reset"] * 6
    server.faults.replace([], 0)
    assert provider.transfer_status("tr-1").state is TransferState.NOT_FOUND


def test_a_read_timeout_is_unavailable_for_reads_and_unknown_for_transfers(start_simulator, make_client, acme) -> None:  # type: ignore[no-untyped-def]
    quick = dataclasses.replace(acme, read_timeout_s=0.15, max_attempts=2)
    server, provider = faulty(start_simulator, make_client, quick, "status:timeout=1:5", "transfer:timeout=1:5")
    with pytest.raises(ProviderUnavailableError, match="timed out") as caught:
        provider.status()
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    with pytest.raises(OutcomeUnknownError):
        provider.transfer_in("tr-1", "P1", eur("5.00"))


def test_latency_delays_the_answer_but_it_arrives(start_simulator, make_client, acme) -> None:  # type: ignore[no-untyped-def]
    server, provider = faulty(start_simulator, make_client, acme, "games:latency=1:80")
    started = time.perf_counter()
    assert provider.games()
    assert time.perf_counter() - started >= 0.08
    assert server.request_log_snapshot()[0]["fault"] == "latency"


def test_applied_but_response_lost_then_status_shows_it_applied_and_a_resend_does_not_apply_it_twice(start_simulator, make_client, acme) -> None:  # type: ignore[no-untyped-def]
    server, provider = faulty(start_simulator, make_client, acme, "transfer:lost=1")
    with pytest.raises(OutcomeUnknownError) as caught:
        provider.transfer_in("tr-1", "P1", eur("25.00"))
    assert isinstance(caught.value.__cause__, ProviderUnavailableError)
    log = server.request_log_snapshot()
    assert [e["status"] for e in log] == ["lost (applied, would have been 201)"] + ["lost (applied, would have been 200)"] * 2
    assert len({e["request_id"] for e in log}) == 3  # a new request id per attempt, one transfer id

    status = provider.transfer_status("tr-1")
    assert (status.state, status.amount) == (TransferState.APPLIED, eur("25.00"))
    server.faults.replace([], 0)
    again = provider.transfer_in("tr-1", "P1", eur("25.00"))
    assert again.replayed and again.provider_tx_id == status.provider_tx_id
    assert provider.balance("P1") == eur("25.00")


def test_a_lost_response_is_recovered_by_the_retry_which_replays_the_applied_transfer(start_simulator, make_client, acme) -> None:  # type: ignore[no-untyped-def]
    server = start_simulator(acme, faults=FaultPlan.parse(["transfer:lost=1"]))
    provider = make_client(acme, server, sleep=lambda seconds: server.faults.replace([], 0))
    provider.transfer_in("tr-0", "P1", eur("30.00"))  # lost, then replayed by the retry
    result = provider.transfer_out("tr-1", "P1", None)
    assert result.amount == eur("30.00")
    assert provider.balance("P1") == eur("0.00")


def test_faults_can_be_set_at_runtime_through_the_signed_admin_endpoint(client, admin, simulator) -> None:  # type: ignore[no-untyped-def]
    assert admin.set_faults(["balance:500=1"], seed=5) == {"seed": 5, "rules": ["balance:500=1:0"]}
    assert admin.faults() == {"seed": 5, "rules": ["balance:500=1:0"]}
    with pytest.raises(ProviderUnavailableError):
        client.balance("P1")
    with pytest.raises(RejectedError, match="BAD_FAULT"):
        admin.set_faults(["balance:explode=1"])
    admin.set_faults([])
    assert client.balance("P1") == eur("0.00")
    assert admin.request_log()[-1]["endpoint"] == "balance"


def test_play_is_not_idempotent_so_it_is_never_retried(start_simulator, make_client, acme, sleeps) -> None:  # type: ignore[no-untyped-def]
    server, provider = faulty(start_simulator, make_client, acme, "play:lost=1")
    provider.transfer_in("tr-1", "P1", eur("10.00"))
    with pytest.raises(ProviderUnavailableError):
        SimulatorAdmin(provider).play("P1", 3, seed=1)
    assert outcomes(server)[1:] == ["lost (applied, would have been 200)"] and sleeps == []


def test_the_serve_plan_takes_the_files_rules_unless_the_operator_replaces_or_drops_them() -> None:
    table = {"seed": 9, "rules": ["transfer:500=0.2", "games:latency=1:50"]}
    from_file = choose_plan(table)
    assert from_file.describe() == {"seed": 9, "rules": ["transfer:500=0.2:0", "games:latency=1:50"]}
    assert choose_plan(table, seed=3).describe() == {"seed": 3, "rules": ["transfer:500=0.2:0", "games:latency=1:50"]}
    replaced = choose_plan(table, ["balance:429=1:2"])
    assert replaced.describe() == {"seed": 9, "rules": ["balance:429=1:2"]}  # rules replaced, the file's seed kept
    assert choose_plan(table, no_faults=True).describe() == {"seed": 0, "rules": []}
    assert choose_plan(table, no_faults=True, seed=4).describe() == {"seed": 4, "rules": []}
    assert choose_plan(None).describe() == {"seed": 0, "rules": []}


@pytest.mark.parametrize(
    ("table", "rules"),
    [({"rules": ["transfer:explode=1"]}, []), (None, ["nowhere:500=1"]), ({"seed": "x"}, []), ({"rule": []}, [])],
    ids=["bad-file-rule", "bad-operator-rule", "bad-seed", "unknown-key"],
)
def test_a_bad_rule_or_table_is_a_config_error_before_anything_listens(table, rules) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="fault"):
        choose_plan(table, rules)


def test_rules_split_on_commas_and_repeats_and_drop_blanks() -> None:
    assert split_rules(["transfer:500=0.2, transfer:429=0.1", "", "play:lost=1,"]) == (
        "transfer:500=0.2", "transfer:429=0.1", "play:lost=1",
    )
    assert split_rules([]) == ()


def test_open_simulator_uses_the_base_url_port_and_the_default_store(acme, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    with socket.socket() as probe:  # a port that is free right now
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    config = dataclasses.replace(acme, base_url=f"http://127.0.0.1:{free_port}", extra={"faults": {"seed": 2, "rules": []}})
    server = open_simulator(config, fault_rules=["status:500=1"])
    try:
        assert (server.server_port, server.store.path) == (free_port, "sim-acme.db")
        assert server.faults.describe() == {"seed": 2, "rules": ["status:500=1:0"]}
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{free_port}.*choose another --port"):
            open_simulator(config, store=tmp_path / "other.db")  # the port is taken by the first
    finally:
        server.stop()

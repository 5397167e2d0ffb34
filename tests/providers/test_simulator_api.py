"""The HTTP client against the real simulator: every endpoint, idempotency, refusals, reports."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from transfer_wallet.errors import (
    ProviderInsufficientFundsError,
    RejectedError,
    TransferConflictError,
    ValidationError,
)
from transfer_wallet.providers import Direction, Provider, ProviderState, TransferState
from transfer_wallet.providers.http import HttpProvider
from transfer_wallet.simulator.admin import SimulatorAdmin

from .conftest import brl, eur

EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)


def test_a_session_story_in_then_play_then_everything_out(client: HttpProvider, admin: SimulatorAdmin) -> None:
    assert isinstance(client, Provider)
    moved_in = client.transfer_in("tr-in-1", "P1", eur("50.00"))
    assert (moved_in.direction, moved_in.amount, moved_in.balance_after, moved_in.replayed) == (
        Direction.IN, eur("50.00"), eur("50.00"), False,
    )
    played = admin.play("P1", 20, seed=7)
    assert len(played) == 20
    after_play = client.balance("P1")
    assert after_play == eur("50.00") + sum((r.net for r in played), eur("0.00"))
    assert client.rounds("P1", EPOCH) == played

    moved_out = client.transfer_out("tr-out-1", "P1", None)
    assert moved_out.amount == after_play
    assert moved_out.balance_after == eur("0.00")
    assert client.balance("P1") == eur("0.00")


def test_a_partial_transfer_out_leaves_the_rest_in_the_game_wallet(client: HttpProvider) -> None:
    client.transfer_in("tr-in-1", "P1", eur("20.00"))
    result = client.transfer_out("tr-out-1", "P1", eur("7.25"))
    assert (result.amount, result.balance_after) == (eur("7.25"), eur("12.75"))


def test_the_same_transfer_id_with_the_same_body_replays_the_first_result(client: HttpProvider) -> None:
    first = client.transfer_in("tr-1", "P1", eur("10.00"))
    again = client.transfer_in("tr-1", "P1", eur("10.00"))
    assert again.replayed and not first.replayed
    assert (again.provider_tx_id, again.amount, again.balance_after, again.created_at) == (
        first.provider_tx_id, first.amount, first.balance_after, first.created_at,
    )
    assert client.balance("P1") == eur("10.00")


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.transfer_in("tr-1", "P1", eur("10.01")),  # other amount
        lambda c: c.transfer_in("tr-1", "P2", eur("10.00")),  # other player
        lambda c: c.transfer_out("tr-1", "P1", eur("10.00")),  # other direction
    ],
)
def test_the_same_transfer_id_with_other_content_is_a_conflict_and_is_not_retried(client, simulator, sleeps, call) -> None:  # type: ignore[no-untyped-def]
    client.transfer_in("tr-1", "P1", eur("10.00"))
    with pytest.raises(TransferConflictError, match="409"):
        call(client)
    assert [e["status"] for e in simulator.request_log_snapshot()] == [201, 409]
    assert sleeps == []
    assert client.balance("P1") == eur("10.00")


def test_withdrawing_more_than_the_game_balance_is_402_recorded_as_failed_and_never_retried(client, simulator, sleeps) -> None:  # type: ignore[no-untyped-def]
    client.transfer_in("tr-in", "P1", eur("5.00"))
    with pytest.raises(ProviderInsufficientFundsError):
        client.transfer_out("tr-out", "P1", eur("5.01"))
    assert [e["status"] for e in simulator.request_log_snapshot()] == [201, 402]
    assert sleeps == []
    status = client.transfer_status("tr-out")
    assert (status.state, status.amount, status.error_code) == (TransferState.FAILED, eur("5.01"), "INSUFFICIENT_FUNDS")
    with pytest.raises(ProviderInsufficientFundsError):  # the stored failure replays too
        client.transfer_out("tr-out", "P1", eur("5.01"))
    assert client.balance("P1") == eur("5.00")


def test_transfer_status_says_applied_or_not_found(client: HttpProvider) -> None:
    result = client.transfer_in("tr-1", "P1", eur("3.00"))
    status = client.transfer_status("tr-1")
    assert (status.state, status.direction, status.player_id, status.amount, status.provider_tx_id) == (
        TransferState.APPLIED, Direction.IN, "P1", eur("3.00"), result.provider_tx_id,
    )
    assert client.transfer_status("never-sent").state is TransferState.NOT_FOUND


def test_an_unknown_player_has_a_zero_balance_and_no_rounds(client: HttpProvider) -> None:
    assert client.balance("nobody") == eur("0.00")
    assert client.rounds("nobody", EPOCH) == []


def test_rounds_are_filtered_by_end_time_and_limited(client: HttpProvider, admin: SimulatorAdmin) -> None:
    client.transfer_in("tr-1", "P1", eur("100.00"))
    played = admin.play("P1", 10, seed=1)
    assert client.rounds("P1", played[4].ended_at) == played[4:]
    assert client.rounds("P1", EPOCH, limit=3) == played[:3]
    assert client.rounds("P1", played[-1].ended_at + dt.timedelta(seconds=1)) == []


def test_play_is_seeded_and_never_bets_more_than_the_balance(start_simulator, make_client, acme) -> None:  # type: ignore[no-untyped-def]
    outcomes = []
    for _ in range(2):
        provider = make_client(acme, start_simulator(acme))
        provider.transfer_in("tr-1", "P1", eur("1.00"))
        outcomes.append([(r.bet, r.win, r.refund) for r in SimulatorAdmin(provider).play("P1", 200, seed=42)])
        assert provider.balance("P1").amount_minor >= 0
    assert outcomes[0] == outcomes[1]


def test_status_and_games(client: HttpProvider) -> None:
    status = client.status()
    assert (status.provider, status.state, status.currency) == ("acme", ProviderState.UP, "EUR")
    games = client.games()
    assert [g.game_id for g in games][:2] == ["acme-starfall", "acme-jungle-reels"]


def test_amounts_in_another_currency_are_refused_before_anything_is_sent(client, simulator) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="EUR"):
        client.transfer_in("tr-1", "P1", brl("10.00"))
    with pytest.raises(ValidationError, match="transfer id"):
        client.transfer_in("bad id with spaces", "P1", eur("1.00"))
    assert simulator.request_log_snapshot() == []


def test_a_client_outside_the_allow_list_is_refused_with_403(start_simulator, make_client, acme, sleeps) -> None:  # type: ignore[no-untyped-def]
    server = start_simulator(dataclasses.replace(acme, allowed_ips=("10.0.0.0/8",)))
    with pytest.raises(RejectedError, match="403"):
        make_client(acme, server).status()
    assert sleeps == []


def _local(day: dt.date, hour: int, minute: int, zone: str) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZoneInfo(zone)).astimezone(dt.timezone.utc)


def test_the_acme_report_uses_its_columns_codes_and_utc_dates(start_simulator, make_client, acme) -> None:  # type: ignore[no-untyped-def]
    times = iter([
        dt.datetime(2026, 11, 23, 23, 59, 59, tzinfo=dt.timezone.utc),  # the day before
        dt.datetime(2026, 11, 24, 0, 0, 0, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 11, 24, 9, 30, 0, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 11, 24, 23, 59, 59, 999999, tzinfo=dt.timezone.utc),
    ])
    server = start_simulator(acme, now=lambda: next(times))
    provider = make_client(acme, server)
    provider.transfer_in("tr-0", "P1", eur("1.00"))
    first = provider.transfer_in("tr-1", "P1", eur("12.50"))
    with pytest.raises(ProviderInsufficientFundsError):
        provider.transfer_out("tr-2", "P1", eur("100.00"))
    last = provider.transfer_out("tr-3", "P1", None)
    report = provider.transfer_report(dt.date(2026, 11, 24)).decode()
    failed = provider.transfer_status("tr-2").provider_tx_id
    assert report.splitlines() == [
        "tx_id,operator_ref,player,direction,amount,currency,status,created_at_utc",
        f"{first.provider_tx_id},tr-1,P1,IN,12.50,EUR,OK,2026-11-24T00:00:00",
        f"{failed},tr-2,P1,OUT,100.00,EUR,FAILED,2026-11-24T09:30:00",
        f"{last.provider_tx_id},tr-3,P1,OUT,13.50,EUR,OK,2026-11-24T23:59:59",
    ]


def test_the_betsul_report_is_latin_1_with_sao_paulo_days_decimal_commas_thousands_dots_and_a_trailer(start_simulator, make_client, betsul) -> None:  # type: ignore[no-untyped-def]
    day = dt.date(2026, 11, 24)
    times = iter([
        _local(day, 0, 5, "America/Sao_Paulo"),  # 03:05 UTC on the 24th
        _local(day, 22, 30, "America/Sao_Paulo"),  # 01:30 UTC on the 25th: still the 24th in Sao Paulo
        _local(day + dt.timedelta(days=1), 0, 0, "America/Sao_Paulo"),  # the next business day
    ])
    server = start_simulator(betsul, now=lambda: next(times))
    provider = make_client(betsul, server)
    a = provider.transfer_in("tr-a", "P1", brl("1234.56"))
    b = provider.transfer_out("tr-b", "P1", brl("0.06"))
    provider.transfer_out("tr-c", "P1", brl("1.00"))
    report = provider.transfer_report(day).decode("latin-1")
    assert report.splitlines() == [
        "id_transacao;referencia_operador;jogador;tipo;valor;moeda;situação;data_hora;sessao",
        f"{a.provider_tx_id};tr-a;P1;DEPOSITO;1.234,56;BRL;APROVADO;24/11/2026 00:05:00;",
        f"{b.provider_tx_id};tr-b;P1;SAQUE;0,06;BRL;APROVADO;24/11/2026 22:30:00;",
        "TOTAL;2;;;1.234,62;BRL;;;",
    ]
    assert provider.transfer_report(day + dt.timedelta(days=1)).decode("latin-1").splitlines()[2:] == ["TOTAL;1;;;1,00;BRL;;;"]


def test_a_bad_report_date_is_rejected(client: HttpProvider) -> None:
    with pytest.raises(RejectedError, match="400"):
        client._call("GET", "/v1/reports/transfers", query={"date": "24/11/2026"})

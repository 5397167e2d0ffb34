"""``SimulatorAdmin``: the simulator-only calls ride on ``HttpProvider``'s signed, verified exchange."""

from __future__ import annotations

import httpx
import pytest

from transfer_wallet.errors import AuthenticationFailedError, ProviderUnavailableError, ValidationError
from transfer_wallet.providers.http import HttpProvider
from transfer_wallet.providers.signing import HEADER_SIGNATURE, KeyRing
from transfer_wallet.simulator.admin import SimulatorAdmin

from .conftest import eur, signed_response


def test_the_provider_client_no_longer_carries_simulator_only_calls() -> None:
    for name in ("play", "set_faults", "request_log"):
        assert not hasattr(HttpProvider, name)


def test_play_through_the_admin_moves_the_game_balance_the_provider_then_reports(client, admin) -> None:  # type: ignore[no-untyped-def]
    client.transfer_in("tr-1", "P1", eur("20.00"))
    played = admin.play("P1", 4, seed=11)
    assert len(played) == 4
    assert client.balance("P1") == eur("20.00") + sum((r.net for r in played), eur("0.00"))
    assert [e["endpoint"] for e in admin.request_log()] == ["transfer_in", "play", "balance"]


def test_connect_builds_its_own_client_and_closes_it(acme, simulator) -> None:  # type: ignore[no-untyped-def]
    with SimulatorAdmin.connect(acme, base_url=simulator.url) as admin:
        assert admin.faults() == {"seed": 0, "rules": []}
    with pytest.raises(RuntimeError):  # the pool is closed
        admin.faults()


def test_an_unreadable_signed_answer_is_provider_unavailable(mock_client, acme) -> None:  # type: ignore[no-untyped-def]
    ring = KeyRing.from_config(acme)
    admin = SimulatorAdmin(mock_client(lambda request: signed_response(ring, request, 200, {"no_rounds": []})))
    with pytest.raises(ProviderUnavailableError, match="play: unreadable response"):
        admin.play("P1", 3, seed=1)


def test_an_unsigned_answer_is_refused_like_any_provider_answer(mock_client) -> None:  # type: ignore[no-untyped-def]
    def forged(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"seed": 0, "rules": []}, headers={HEADER_SIGNATURE: "0" * 64})

    with pytest.raises(AuthenticationFailedError):
        SimulatorAdmin(mock_client(forged)).faults()


def test_a_bad_player_id_is_refused_before_anything_is_sent(mock_client) -> None:  # type: ignore[no-untyped-def]
    sent: list[httpx.Request] = []
    admin = SimulatorAdmin(mock_client(lambda request: sent.append(request) or httpx.Response(500)))
    with pytest.raises(ValidationError, match="player id"):
        admin.play("P 1", 1)
    assert sent == []

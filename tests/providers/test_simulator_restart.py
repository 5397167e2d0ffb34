"""The simulator across restarts: replay protection lives in its store, not in one process's memory.

The attack this guards against: a signed ``play`` (or transfer) request is captured on the
wire, ``tw provider serve`` is restarted, and the same bytes are sent again inside the
five-minute signature window. The restarted simulator must refuse them.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import httpx

from transfer_wallet.config import ProviderConfig
from transfer_wallet.providers import wire
from transfer_wallet.providers.signing import KeyRing, sign_request
from transfer_wallet.simulator import FaultPlan, SimulatorServer, SimulatorStore
from transfer_wallet.simulator.store import PRUNE_EVERY_S

from .conftest import SECRETS, eur

NEW_KEY = {"acme-2026-11": SECRETS["TW_ACME_SECRET_2026_11"].encode()}
PLAY_TARGET = "/v1/players/P1/play"
PLAY_BODY = wire.dumps({"rounds": 5, "seed": 3})
EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)


def captured_play() -> dict[str, str]:
    """The signature headers of one ``play`` request, as an eavesdropper would record them."""
    return sign_request(KeyRing.from_secrets(NEW_KEY), "POST", PLAY_TARGET, PLAY_BODY, now_s=time.time())


def serve(config: ProviderConfig, store: Path) -> SimulatorServer:
    return SimulatorServer(config, store, port=0, faults=FaultPlan()).start()


def test_a_captured_play_request_is_refused_after_the_simulator_restarts_on_the_same_store(
    acme: ProviderConfig, make_client, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    store = tmp_path / "sim-acme.db"
    headers = captured_play()
    first = serve(acme, store)
    try:
        make_client(acme, first).transfer_in("tr-1", "P1", eur("10.00"))
        accepted = httpx.post(first.url + PLAY_TARGET, content=PLAY_BODY, headers=headers)
        assert accepted.status_code == 200 and len(accepted.json()["rounds"]) == 5
        balance_after_play = wire.parse_money(accepted.json()["balance"])
    finally:
        first.stop()

    restarted = serve(acme, store)
    try:
        replay = httpx.post(restarted.url + PLAY_TARGET, content=PLAY_BODY, headers=headers)
        assert replay.status_code == 401 and replay.json()["error"]["code"] == "REPLAYED_REQUEST"
        client = make_client(acme, restarted)
        assert client.balance("P1") == balance_after_play  # the replay moved nothing
        assert len(client.rounds("P1", EPOCH)) == 5  # and played nothing
        fresh = httpx.post(restarted.url + PLAY_TARGET, content=PLAY_BODY, headers=captured_play())
        assert fresh.status_code == 200  # a new request id is still welcome
    finally:
        restarted.stop()


def test_a_captured_transfer_is_refused_after_a_restart_and_the_money_moves_once(
    acme: ProviderConfig, make_client, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    store = tmp_path / "sim-acme.db"
    body = wire.dumps({"transfer_id": "tr-9", "player_id": "P1", "amount": "7.50", "currency": "EUR"})
    headers = sign_request(KeyRing.from_secrets(NEW_KEY), "POST", "/v1/transfers/in", body, now_s=time.time())
    first = serve(acme, store)
    try:
        assert httpx.post(first.url + "/v1/transfers/in", content=body, headers=headers).status_code == 201
    finally:
        first.stop()
    restarted = serve(acme, store)
    try:
        replay = httpx.post(restarted.url + "/v1/transfers/in", content=body, headers=headers)
        assert replay.status_code == 401 and replay.json()["error"]["code"] == "REPLAYED_REQUEST"
        assert make_client(acme, restarted).balance("P1") == eur("7.50")
    finally:
        restarted.stop()


def test_the_store_forgets_a_request_id_once_its_window_is_over(tmp_path: Path) -> None:
    store = SimulatorStore(tmp_path / "sim.db", "acme", eur("0.00").currency)
    try:
        assert store.remember_request("req-1", now_s=1000.0, expires_at_s=1600.0)
        assert not store.remember_request("req-1", now_s=1599.0, expires_at_s=2199.0)  # inside the window
        assert store.remember_request("req-2", now_s=1001.0, expires_at_s=1601.0)
        # At 1600.5 req-1's window is over and the last prune is more than PRUNE_EVERY_S ago:
        # req-1 is deleted, req-2 (until 1601) is kept.
        assert 1600.5 - 1599.0 >= PRUNE_EVERY_S
        assert store.remember_request("req-3", now_s=1600.5, expires_at_s=2200.5)
        assert store.seen_request_count() == 2
        assert not store.remember_request("req-2", now_s=1600.6, expires_at_s=2200.6)
    finally:
        store.close()


def test_an_expired_id_that_was_not_pruned_yet_is_accepted_again(tmp_path: Path) -> None:
    store = SimulatorStore(tmp_path / "sim.db", "acme", eur("0.00").currency)
    try:
        assert store.remember_request("req-1", now_s=1000.0, expires_at_s=1000.5)
        # Within the prune interval, so the row is still there, but its window is over.
        assert store.remember_request("req-1", now_s=1000.6, expires_at_s=1600.6)
        assert not store.remember_request("req-1", now_s=1000.7, expires_at_s=1600.7)
    finally:
        store.close()


"""Signatures on the wire: the simulator refuses what is not signed right, with 401, and the
client never retries a 401. Keys rotate with an overlap."""

from __future__ import annotations

import dataclasses
import time

import httpx
import pytest

from transfer_wallet.errors import AuthenticationFailedError, OutcomeUnknownError
from transfer_wallet.providers import wire
from transfer_wallet.providers.signing import HEADER_REQUEST_ID, KeyRing, sign_request

from .conftest import SECRETS, eur

BODY = wire.dumps({"transfer_id": "tr-1", "player_id": "P1", "amount": "10.00", "currency": "EUR"})
NEW_KEY = {"acme-2026-11": SECRETS["TW_ACME_SECRET_2026_11"].encode()}


def post(server, body: bytes, headers: dict[str, str], target: str = "/v1/transfers/in") -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(server.url + target, content=body, headers=headers)


def signed(body: bytes = BODY, *, now_s: float | None = None, keys: dict[str, bytes] = NEW_KEY, target: str = "/v1/transfers/in") -> dict[str, str]:
    return sign_request(KeyRing.from_secrets(keys), "POST", target, body, now_s=time.time() if now_s is None else now_s)


def test_a_correctly_signed_raw_request_is_applied(simulator) -> None:  # type: ignore[no-untyped-def]
    response = post(simulator, BODY, signed())
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (BODY.replace(b"10.00", b"99.00"), signed(BODY), "BAD_SIGNATURE"),  # tampered body
        (BODY, signed(keys={"acme-2026-11": b"not-the-secret"}), "BAD_SIGNATURE"),  # wrong key
        (BODY, signed(keys={"acme-2099-01": b"whatever"}), "UNKNOWN_KEY"),  # key id it does not know
        (BODY, signed(now_s=time.time() - 301), "STALE_TIMESTAMP"),  # stale timestamp
        (BODY, {}, "MISSING_HEADERS"),  # unsigned
    ],
    ids=["tampered-body", "wrong-key", "unknown-key", "stale-timestamp", "unsigned"],
)
def test_badly_signed_requests_are_refused_with_401_and_nothing_moves(simulator, client, body, headers, code) -> None:  # type: ignore[no-untyped-def]
    response = post(simulator, body, headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert client.balance("P1") == eur("0.00")


def test_a_signature_for_another_endpoint_is_refused(simulator) -> None:  # type: ignore[no-untyped-def]
    response = post(simulator, BODY, signed(target="/v1/transfers/in"), target="/v1/transfers/out")
    assert response.status_code == 401


def test_a_replayed_request_is_refused_even_though_its_signature_is_valid(simulator, client) -> None:  # type: ignore[no-untyped-def]
    headers = signed()
    assert post(simulator, BODY, headers).status_code == 201
    replay = post(simulator, BODY, headers)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "REPLAYED_REQUEST"
    assert client.balance("P1") == eur("10.00")


def test_the_client_maps_401_to_authentication_failed_and_never_retries(simulator, make_client, acme, monkeypatch, sleeps) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TW_ACME_SECRET_2026_11", "a-wrong-secret")
    provider = make_client(acme, simulator)
    # With a wrong secret the client cannot verify the refusal either: for a transfer an
    # unverifiable 401 proves nothing (a forged one would make us refund an applied transfer).
    with pytest.raises(OutcomeUnknownError, match="BAD_SIGNATURE.*check credentials"):
        provider.transfer_in("tr-1", "P1", eur("1.00"))
    with pytest.raises(AuthenticationFailedError):
        provider.status()
    assert [e["status"] for e in simulator.request_log_snapshot()] == [401, 401]
    assert sleeps == []


def test_a_rotated_key_is_accepted_during_the_overlap_and_refused_once_retired(start_simulator, make_client, acme) -> None:  # type: ignore[no-untyped-def]
    old_key, new_key = acme.keys
    server = start_simulator(acme)  # knows both keys: the overlap
    old_client = make_client(dataclasses.replace(acme, keys=(old_key,)), server)
    new_client = make_client(dataclasses.replace(acme, keys=(new_key,)), server)
    assert old_client.transfer_in("tr-old", "P1", eur("1.00")).amount == eur("1.00")
    assert new_client.transfer_in("tr-new", "P1", eur("2.00")).balance_after == eur("3.00")
    assert [e["key_id"] for e in server.request_log_snapshot()] == ["acme-2026-09", "acme-2026-11"]

    retired = start_simulator(dataclasses.replace(acme, keys=(new_key,)))
    with pytest.raises(AuthenticationFailedError):
        make_client(dataclasses.replace(acme, keys=(old_key,)), retired).status()
    assert make_client(acme, retired).status().provider == "acme"  # the client signs with the newest


def test_a_server_with_another_secret_for_the_same_key_id_refuses_the_client(start_simulator, make_client, acme) -> None:  # type: ignore[no-untyped-def]
    impostor = KeyRing.from_secrets({"acme-2026-11": b"impostor-secret"})
    server = start_simulator(acme, keyring=impostor)
    with pytest.raises(AuthenticationFailedError, match="BAD_SIGNATURE"):
        make_client(acme, server).games()


def test_every_response_is_signed_for_the_request_it_answers(simulator) -> None:  # type: ignore[no-untyped-def]
    headers = signed()
    response = post(simulator, BODY, headers)
    assert response.headers[HEADER_REQUEST_ID] == headers[HEADER_REQUEST_ID]
    assert {"x-tw-key-id", "x-tw-timestamp", "x-tw-signature"} <= set(response.headers.keys())

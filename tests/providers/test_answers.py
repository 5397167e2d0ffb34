"""A provider's answer is trusted only as far as it proves something.

Every answer here is validly signed (``httpx.MockTransport`` handlers sign as the
simulator does), so the signature check passes and what is tested is how far the
*content* is believed: a transfer counts as applied only when its answer says
APPLIED; FAILED is a definitive refusal; anything malformed, oversized or in an
unknown state leaves a transfer's outcome unknown and a read unavailable.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Callable, Iterator

import httpx
import pytest

from transfer_wallet.errors import (
    OutcomeUnknownError,
    ProviderError,
    ProviderRefusedError,
    ProviderUnavailableError,
    RejectedError,
    TransferWalletError,
)
from transfer_wallet.providers.http import MAX_RESPONSE_BYTES
from transfer_wallet.providers.signing import HEADER_KEY_ID, HEADER_REQUEST_ID, HEADER_SIGNATURE, KeyRing, sign_response

from .conftest import SECRETS, eur

RING = KeyRing.from_secrets({"acme-2026-11": SECRETS["TW_ACME_SECRET_2026_11"].encode()})


def signed(request: httpx.Request, status: int, body: bytes) -> httpx.Response:
    """``body`` as the answer to ``request``, signed with the acme key."""
    headers = sign_response(RING, request.headers.get(HEADER_KEY_ID, ""), status, body,
                            request.headers[HEADER_REQUEST_ID], now_s=time.time())
    return httpx.Response(status, content=body, headers=headers)


def transfer_answer(request: httpx.Request, **changes: object) -> dict[str, object]:
    """The documented transfer answer to ``request`` (state APPLIED), with ``changes`` to its transfer object."""
    sent = json.loads(request.content)
    transfer = {"transfer_id": sent["transfer_id"], "provider_tx_id": "acme-1", "player_id": sent["player_id"],
                "direction": "IN" if request.url.path.endswith("/in") else "OUT",
                "amount": {"amount": sent["amount"] or "10.00", "currency": "EUR"}, "state": "APPLIED",
                "created_at": "2026-11-24T10:00:00.000000Z"}
    transfer.update(changes)
    return {"transfer": transfer, "balance": {"amount": "10.00", "currency": "EUR"}}


class Answer:
    """A handler that answers every request with one status and body, counting requests."""

    def __init__(self, status: int, body: bytes | Callable[[httpx.Request], bytes]) -> None:
        self.status, self.body, self.requests = status, body, 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        body = self.body(request) if callable(self.body) else self.body
        return signed(request, self.status, body)


def test_an_applied_answer_is_booked_as_applied(mock_client) -> None:  # type: ignore[no-untyped-def]
    client = mock_client(Answer(201, lambda r: json.dumps(transfer_answer(r)).encode()))
    result = client.transfer_in("t-1", "P1", eur("10.00"))
    assert (result.transfer_id, result.amount, result.replayed) == ("t-1", eur("10.00"), False)


def test_a_signed_answer_saying_failed_is_a_definitive_refusal_with_the_providers_code(mock_client) -> None:  # type: ignore[no-untyped-def]
    handler = Answer(201, lambda r: json.dumps(transfer_answer(r, state="FAILED", error_code="LIMIT_REACHED")).encode())
    client = mock_client(handler)
    with pytest.raises(RejectedError, match="FAILED .LIMIT_REACHED.") as refused:
        client.transfer_in("t-1", "P1", eur("10.00"))
    assert isinstance(refused.value, ProviderRefusedError)
    assert refused.value.error_code == "LIMIT_REACHED"
    assert handler.requests == 1  # a refusal is never retried


@pytest.mark.parametrize("state", ["PENDING", "NOT_FOUND", "applied", ""])
def test_a_transfer_answer_in_any_other_state_is_outcome_unknown(mock_client, state: str) -> None:  # type: ignore[no-untyped-def]
    client = mock_client(Answer(201, lambda r: json.dumps(transfer_answer(r, state=state)).encode()))
    with pytest.raises(OutcomeUnknownError):
        client.transfer_out("t-2", "P1", None)


def test_an_answer_for_another_transfer_id_is_outcome_unknown(mock_client) -> None:  # type: ignore[no-untyped-def]
    client = mock_client(Answer(201, lambda r: json.dumps(transfer_answer(r, transfer_id="t-other")).encode()))
    with pytest.raises(OutcomeUnknownError, match="another transfer"):
        client.transfer_in("t-1", "P1", eur("10.00"))


MALFORMED = {
    "transfer null": b'{"transfer": null}',
    "transfer a list": b'{"transfer": []}',
    "transfer a string": b'{"transfer": "APPLIED"}',
    "state missing": b'{"transfer": {}}',
    "state a number": b'{"transfer": {"state": 1}}',
    "balance missing": b'{"transfer": {"state": "APPLIED", "transfer_id": "t-1"}}',
    "error code an object": b'{"transfer": {"state": "FAILED", "error_code": {}}}',
    "a list": b"[]",
    "null": b"null",
    "not JSON": b"<html>",
    "not UTF-8": b'{"transfer": "\xff"}',
    "nested 100000 deep": b"[" * 100_000 + b"]" * 100_000,
    "nested objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "a float": b'{"transfer": {"state": "APPLIED"}, "balance": 1.5}',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_signed_transfer_answer_is_outcome_unknown(mock_client, body: bytes) -> None:  # type: ignore[no-untyped-def]
    client = mock_client(Answer(201, body))
    with pytest.raises(OutcomeUnknownError, match="unreadable response"):
        client.transfer_in("t-1", "P1", eur("10.00"))


READS: dict[str, Callable[..., object]] = {
    "balance": lambda c: c.balance("P1"),
    "transfer_status": lambda c: c.transfer_status("t-1"),
    "rounds": lambda c: c.rounds("P1", dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)),
    "games": lambda c: c.games(),
    "status": lambda c: c.status(),
}
READ_BODIES = {
    **MALFORMED,
    "balance a string": b'{"balance": "10.00"}',
    "rounds a string": b'{"rounds": "abc"}',
    "rounds of numbers": b'{"rounds": [1, 2]}',
    "games an object": b'{"games": {"g": 1}}',
    "games of strings": b'{"games": ["g"]}',
    "version a list": b'{"provider": "acme", "state": "UP", "currency": "EUR", '
                      b'"server_time": "2026-11-24T10:00:00Z", "version": []}',
    "time at the calendar limit": b'{"provider": "acme", "state": "UP", "currency": "EUR", '
                                  b'"server_time": "0001-01-01T00:00:00+01:00"}',
}


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
@pytest.mark.parametrize("body", READ_BODIES.values(), ids=READ_BODIES.keys())
def test_a_malformed_signed_read_answer_is_provider_unavailable_never_a_foreign_error(
        mock_client, read: Callable[..., object], body: bytes) -> None:  # type: ignore[no-untyped-def]
    client = mock_client(Answer(200, body))
    with pytest.raises(ProviderUnavailableError, match="unreadable response"):
        read(client)


@pytest.mark.parametrize("body", [b'{"error": "no"}', b'{"error": null}', b"[" * 100_000, b"\xff\xfe"],
                         ids=["error a string", "error null", "deep", "not UTF-8"])
def test_a_malformed_refusal_body_still_maps_to_a_refusal(mock_client, body: bytes) -> None:  # type: ignore[no-untyped-def]
    client = mock_client(Answer(422, body))
    with pytest.raises(RejectedError) as refused:
        client.transfer_in("t-1", "P1", eur("10.00"))
    assert "\n" not in str(refused.value)


def test_an_oversized_transfer_answer_is_outcome_unknown_and_not_read_whole(mock_client) -> None:  # type: ignore[no-untyped-def]
    handler = Answer(201, b" " * (20 << 20))
    client = mock_client(handler)
    with pytest.raises(OutcomeUnknownError, match="larger than 1048576 bytes"):
        client.transfer_in("t-1", "P1", eur("10.00"))
    assert handler.requests == 1


def test_an_oversized_streamed_answer_stops_at_the_cap(mock_client) -> None:  # type: ignore[no-untyped-def]
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(100):  # 100 x 64 KiB, no Content-Length
            sent.append(1)
            yield b" " * (64 << 10)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks(), headers={"Transfer-Encoding": "chunked"})

    client = mock_client(handler)
    with pytest.raises(ProviderError, match="larger than") as refused:
        client.balance("P1")
    assert not isinstance(refused.value, ProviderUnavailableError)  # not retried three times over
    assert len(sent) == MAX_RESPONSE_BYTES // (64 << 10) + 1


def test_an_answer_just_under_the_cap_is_read(mock_client) -> None:  # type: ignore[no-untyped-def]
    document = b'{"balance": {"amount": "1.00", "currency": "EUR"}}'
    padded = document[:-1] + b" " * (MAX_RESPONSE_BYTES - len(document)) + b"}"
    assert len(padded) == MAX_RESPONSE_BYTES
    client = mock_client(Answer(200, padded))
    assert client.balance("P1") == eur("1.00")


def test_no_malformed_answer_escapes_the_error_tree(mock_client) -> None:  # type: ignore[no-untyped-def]
    """Every body above, for every call and status, raises an error of the tree and nothing else."""
    calls = {**READS, "transfer_in": lambda c: c.transfer_in("t-1", "P1", eur("1.00"))}
    for status in (200, 201, 404, 409, 422):
        for body in READ_BODIES.values():
            client = mock_client(Answer(status, body))
            for name, call in calls.items():
                if status == 404 and name == "transfer_status":
                    continue  # a signed 404 there means NOT_FOUND, whatever the body
                with pytest.raises(TransferWalletError):
                    call(client)


# -- the whole story: what a session books from such answers (both databases) ------------------


def _session_over(db, client):  # type: ignore[no-untyped-def]
    from transfer_wallet.sessions import SessionManager, SessionPolicy
    from transfer_wallet.wallet import Wallet

    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="dep-1")
    return wallet, SessionManager(db, {"acme": client}, {"acme": SessionPolicy("EUR")})


def test_a_session_whose_transfer_in_answer_says_failed_is_failed_and_its_money_back(db, mock_client) -> None:  # type: ignore[no-untyped-def]
    from transfer_wallet.ledger import check_ledger

    answer = Answer(201, lambda r: json.dumps(transfer_answer(r, state="FAILED", error_code="PLAYER_BLOCKED")).encode())
    wallet, manager = _session_over(db, mock_client(answer))
    session = manager.open_session("P1", "acme", "30.00")
    assert (session.status, session.transfers[0].status) == ("failed", "refused")
    assert "PLAYER_BLOCKED" in (session.failure_reason or "")
    balance = wallet.balance("P1")
    assert (balance.available.format(), balance.locked.format()) == ("100.00", "0.00")
    assert check_ledger(db).clean


def test_a_session_whose_transfer_in_answer_is_malformed_stays_in_doubt_with_the_money_locked(db, mock_client) -> None:  # type: ignore[no-untyped-def]
    wallet, manager = _session_over(db, mock_client(Answer(201, b'{"transfer": null}')))
    session = manager.open_session("P1", "acme", "30.00")
    assert (session.status, session.transfers[0].status) == ("opening", "in_doubt")
    balance = wallet.balance("P1")
    assert (balance.available.format(), balance.locked.format()) == ("70.00", "30.00")


@pytest.mark.parametrize("signature", ["é".encode("latin-1") * 64, b"\xff" * 64, b"abc"],
                         ids=["latin-1", "0xff", "short"])
def test_a_signature_header_with_odd_characters_is_an_invalid_signature_not_a_type_error(
        mock_client, signature: bytes) -> None:  # type: ignore[no-untyped-def]
    def handler(request: httpx.Request) -> httpx.Response:
        document = transfer_answer(request) if request.method == "POST" else {"balance": {"amount": "1.00", "currency": "EUR"}}
        good = signed(request, 201 if request.method == "POST" else 200, json.dumps(document).encode())
        headers = [(k.encode(), signature if k.lower() == HEADER_SIGNATURE.lower() else v.encode())
                   for k, v in good.headers.items()]
        return httpx.Response(good.status_code, content=good.content, headers=headers)

    client = mock_client(handler)
    with pytest.raises(OutcomeUnknownError, match="signature invalid"):
        client.transfer_in("t-1", "P1", eur("10.00"))
    with pytest.raises(ProviderError, match="signature invalid"):
        client.balance("P1")

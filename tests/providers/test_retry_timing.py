"""Retry timing and caching, to the millisecond, over ``httpx.MockTransport`` with a fake clock.

Nobody sleeps: the client's sleep advances the fake clock and is recorded."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from email.utils import format_datetime

import httpx
import pytest

from transfer_wallet.errors import (
    AuthenticationFailedError,
    OutcomeUnknownError,
    ProviderInsufficientFundsError,
    ProviderUnavailableError,
    RateLimitedError,
    RejectedError,
    TransferConflictError,
)
from transfer_wallet.providers.http import GAMES_TTL_S, STATUS_TTL_S, parse_retry_after
from transfer_wallet.providers.signing import HEADER_REQUEST_ID, KeyRing

from .conftest import SECRETS, eur, signed_response

RING = KeyRing.from_secrets({"acme-2026-11": SECRETS["TW_ACME_SECRET_2026_11"].encode()})
NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone.utc)


def transfer_ok(request: httpx.Request, status: int = 201) -> httpx.Response:
    sent = json.loads(request.content)
    transfer = {"transfer_id": sent["transfer_id"], "provider_tx_id": "acme-1", "player_id": sent["player_id"],
                "direction": "IN", "amount": {"amount": sent["amount"], "currency": "EUR"}, "state": "APPLIED",
                "created_at": "2026-11-24T10:00:00.000000Z"}
    return signed_response(RING, request, status, {"transfer": transfer, "balance": {"amount": sent["amount"], "currency": "EUR"}})


class Script:
    """A handler answering from a list of statuses (the last one repeats), recording requests."""

    def __init__(self, *statuses: int, headers: dict[str, str] | None = None, clock=None, takes_s: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        self.statuses, self.headers, self.clock, self.takes_s = list(statuses), headers or {}, clock, takes_s
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.clock is not None:
            self.clock.advance(self.takes_s)
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        if status in (200, 201):
            return transfer_ok(request, status)
        body = {"error": {"code": f"E{status}", "message": "scripted"}}
        return signed_response(RING, request, status, body, self.headers if status == 429 else None)


def test_backoff_grows_exponentially_with_jitter_between_half_and_full_step(mock_client, clock) -> None:  # type: ignore[no-untyped-def]
    handler = Script(503)
    config = dataclasses.replace(mock_client(handler).config, max_attempts=5, max_retry_s=60.0)
    provider = mock_client(handler, config)
    with pytest.raises(ProviderUnavailableError):
        provider.balance("P1")
    assert len(handler.requests) == 5
    for index, slept in enumerate(clock.sleeps):
        step = 0.2 * 2**index
        assert step / 2 <= slept <= step
    assert len(set(clock.sleeps)) == 4


def test_the_backoff_step_is_capped(mock_client, clock, acme) -> None:  # type: ignore[no-untyped-def]
    provider = mock_client(Script(500), dataclasses.replace(acme, max_attempts=8, max_retry_s=600.0), backoff_max_s=1.0)
    with pytest.raises(ProviderUnavailableError):
        provider.status()
    assert max(clock.sleeps) <= 1.0 and clock.sleeps[-1] >= 0.5


def test_retry_after_is_honoured_when_longer_than_the_backoff(mock_client, clock, acme) -> None:  # type: ignore[no-untyped-def]
    handler = Script(429, 429, 200, headers={"Retry-After": "3"})
    provider = mock_client(handler, dataclasses.replace(acme, max_retry_s=10.0))
    assert provider.transfer_in("tr-1", "P1", eur("1.00")).replayed  # 200: the provider's replay
    assert clock.sleeps == [3.0, 3.0]


def test_retry_after_as_an_http_date_is_understood() -> None:
    later = dt.datetime.fromtimestamp(1_800_000_042, dt.timezone.utc)
    assert parse_retry_after(format_datetime(later, usegmt=True), 1_800_000_000.0) == pytest.approx(42.0)
    assert parse_retry_after("soon", 0.0) is None and parse_retry_after(None, 0.0) is None


def test_a_wait_that_would_cross_the_total_budget_is_not_taken(mock_client, clock, acme) -> None:  # type: ignore[no-untyped-def]
    handler = Script(429, headers={"Retry-After": "30"})  # max_retry_s = 5
    provider = mock_client(handler)
    with pytest.raises(RateLimitedError) as caught:
        provider.games()
    assert caught.value.retry_after_s == 30.0
    assert len(handler.requests) == 1 and clock.sleeps == []


def test_the_total_time_including_slow_answers_bounds_the_retries(mock_client, clock, acme) -> None:  # type: ignore[no-untyped-def]
    handler = Script(502, clock=clock, takes_s=2.0)  # each answer takes 2 s of fake time
    provider = mock_client(handler, dataclasses.replace(acme, max_attempts=10, max_retry_s=5.0))
    with pytest.raises(ProviderUnavailableError):
        provider.status()
    # Attempts at 0 s and ~2.1 s and ~4.4 s (each answer takes 2 s, plus the backoff); the next
    # wait would start a fourth attempt after the 5 s budget, so it is not taken.
    assert len(handler.requests) == 3
    assert clock.now_s - 1000.0 <= 5.0 + 2.0


def test_every_attempt_of_a_transfer_resends_the_same_transfer_id_and_body_with_a_new_request_id(mock_client) -> None:  # type: ignore[no-untyped-def]
    handler = Script(500, 503, 201)
    provider = mock_client(handler)
    assert provider.transfer_in("tr-7", "P1", eur("9.99")).amount == eur("9.99")
    bodies = {r.content for r in handler.requests}
    assert bodies == {b'{"amount":"9.99","currency":"EUR","player_id":"P1","transfer_id":"tr-7"}'}
    assert len({r.headers[HEADER_REQUEST_ID] for r in handler.requests}) == 3


def test_a_transfer_still_rate_limited_after_the_last_retry_is_outcome_unknown(mock_client, clock) -> None:  # type: ignore[no-untyped-def]
    provider = mock_client(Script(429, headers={"Retry-After": "1"}))
    with pytest.raises(OutcomeUnknownError) as caught:
        provider.transfer_in("tr-1", "P1", eur("1.00"))
    assert isinstance(caught.value.__cause__, RateLimitedError)
    assert clock.sleeps == [1.0, 1.0]


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationFailedError), (402, ProviderInsufficientFundsError), (409, TransferConflictError),
     (400, RejectedError), (404, RejectedError), (422, RejectedError)],
)
def test_definitive_refusals_are_raised_at_once_and_never_retried(mock_client, clock, status, error) -> None:  # type: ignore[no-untyped-def]
    handler = Script(status)
    with pytest.raises(error):
        mock_client(handler).transfer_out("tr-1", "P1", eur("1.00"))
    assert len(handler.requests) == 1 and clock.sleeps == []


def test_a_network_error_is_retried_like_a_5xx(mock_client, clock) -> None:  # type: ignore[no-untyped-def]
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(calls) == 2:
            raise httpx.ReadTimeout("slow", request=request)
        return transfer_ok(request)

    assert mock_client(handler).transfer_in("tr-1", "P1", eur("1.00")).amount == eur("1.00")
    assert len(calls) == 3 and len(clock.sleeps) == 2


def test_an_unsigned_or_tampered_success_is_outcome_unknown_for_a_transfer_and_refused_for_a_read(mock_client, clock) -> None:  # type: ignore[no-untyped-def]
    def tampered(request: httpx.Request) -> httpx.Response:
        genuine = transfer_ok(request)
        return httpx.Response(201, content=genuine.content.replace(b"1.00", b"9.00"), headers=genuine.headers)

    with pytest.raises(OutcomeUnknownError, match="signature"):
        mock_client(tampered).transfer_in("tr-1", "P1", eur("1.00"))
    unsigned = lambda request: httpx.Response(200, json={"balance": {"amount": "1.00", "currency": "EUR"}})
    with pytest.raises(AuthenticationFailedError, match="signature"):
        mock_client(unsigned).balance("P1")
    assert clock.sleeps == []


def test_an_unsigned_refusal_of_a_transfer_is_not_trusted(mock_client) -> None:  # type: ignore[no-untyped-def]
    forged = lambda request: httpx.Response(402, json={"error": {"code": "INSUFFICIENT_FUNDS", "message": "x"}})
    with pytest.raises(OutcomeUnknownError):
        mock_client(forged).transfer_out("tr-1", "P1", eur("1.00"))


def test_the_game_list_is_cached_for_an_hour_and_the_status_for_five_minutes(mock_client, clock) -> None:  # type: ignore[no-untyped-def]
    served: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        served.append(request.url.path)
        if request.url.path == "/v1/games":
            return signed_response(RING, request, 200, {"games": [{"game_id": "g1", "name": "G", "category": "slots"}]})
        return signed_response(RING, request, 200, {"provider": "acme", "state": "UP", "currency": "EUR",
                                                     "server_time": "2026-11-24T10:00:00Z", "version": "1"})

    provider = mock_client(handler)
    for _ in range(3):
        provider.games(), provider.status()
    assert served == ["/v1/games", "/v1/status"]
    clock.advance(STATUS_TTL_S + 1)
    provider.games(), provider.status()
    assert served[2:] == ["/v1/status"]
    clock.advance(GAMES_TTL_S)
    provider.games()
    assert served[3:] == ["/v1/games"]


def test_errors_are_not_cached(mock_client) -> None:  # type: ignore[no-untyped-def]
    handler = Script(401)
    provider = mock_client(handler)
    for _ in range(2):
        with pytest.raises(AuthenticationFailedError):
            provider.status()
    assert len(handler.requests) == 2


@pytest.mark.parametrize("refusal", [401, 402, 409, 422])
def test_a_refusal_after_an_attempt_that_may_have_applied_is_outcome_unknown(mock_client, clock, refusal) -> None:  # type: ignore[no-untyped-def]
    # attempt 1 may have been applied (500); attempt 2 is refused: refunding on that would create money
    handler = Script(500, refusal)
    with pytest.raises(OutcomeUnknownError, match="outcome is unknown") as caught:
        mock_client(handler).transfer_in("tr-1", "P1", eur("1.00"))
    assert len(handler.requests) == 2
    assert caught.value.__cause__ is not None and caught.value.__cause__.__class__.__name__ != "OutcomeUnknownError"


def test_a_refusal_after_only_rate_limits_is_still_definitive(mock_client, clock) -> None:  # type: ignore[no-untyped-def]
    handler = Script(429, 402, headers={"Retry-After": "0"})  # a 429 is refused before anything is applied
    with pytest.raises(ProviderInsufficientFundsError):
        mock_client(handler).transfer_out("tr-1", "P1", eur("1.00"))

"""Signing and verification without a network: the seed's HMAC, strengthened, checked strictly."""

from __future__ import annotations

import datetime as dt

import pytest

from transfer_wallet.errors import ConfigError
from transfer_wallet.providers.signing import (
    HEADER_REQUEST_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    KeyRing,
    SignatureError,
    Verifier,
    hmac_hex,
    key_ages,
    request_message,
    sign_request,
    sign_response,
    verify_response,
)

NOW = 1_800_000_000.0
BODY = b'{"amount":"12.50","currency":"EUR","player_id":"P1","transfer_id":"t-1"}'


def ring(**secrets: bytes) -> KeyRing:
    return KeyRing.from_secrets(secrets)


def verifier(keys: KeyRing, now: float = NOW, **options: float) -> Verifier:
    return Verifier(keys, clock=lambda: now, **options)  # type: ignore[arg-type]


def reason(check) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(SignatureError) as caught:
        check()
    return caught.value.reason


def test_the_signature_is_the_seed_hmac_of_body_and_timestamp_followed_by_the_request_binding() -> None:
    headers = sign_request(ring(k1=b"s3cret"), "POST", "/v1/transfers/in", BODY, now_s=NOW, request_id="r-1")
    seed_prefix = BODY + b"1800000000"
    message = request_message(BODY, "1800000000", "POST", "/v1/transfers/in", "r-1")
    assert message.startswith(seed_prefix)
    assert message == seed_prefix + b"\nPOST\n/v1/transfers/in\nr-1"
    assert headers[HEADER_SIGNATURE] == hmac_hex(b"s3cret", message)
    assert headers[HEADER_TIMESTAMP] == "1800000000"


def test_a_correctly_signed_request_is_accepted_and_names_its_key() -> None:
    keys = ring(k1=b"s3cret")
    headers = sign_request(keys, "POST", "/v1/transfers/in", BODY, now_s=NOW)
    assert verifier(keys).verify_request("POST", "/v1/transfers/in", BODY, headers) == "k1"


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("POST", "/v1/transfers/in", BODY.replace(b"12.50", b"99.50")),  # tampered body
        ("POST", "/v1/transfers/out", BODY),  # signature moved to another endpoint
        ("GET", "/v1/transfers/in", BODY),  # another method
    ],
)
def test_a_request_that_differs_from_what_was_signed_is_refused(method: str, target: str, body: bytes) -> None:
    keys = ring(k1=b"s3cret")
    headers = sign_request(keys, "POST", "/v1/transfers/in", BODY, now_s=NOW)
    assert reason(lambda: verifier(keys).verify_request(method, target, body, headers)) == "bad_signature"


def test_a_query_string_is_covered_by_the_signature() -> None:
    keys = ring(k1=b"s3cret")
    headers = sign_request(keys, "GET", "/v1/reports/transfers?date=2026-11-24", b"", now_s=NOW)
    check = lambda: verifier(keys).verify_request("GET", "/v1/reports/transfers?date=2026-11-25", b"", headers)
    assert reason(check) == "bad_signature"


def test_a_request_signed_with_the_wrong_secret_is_refused() -> None:
    headers = sign_request(ring(k1=b"guessed"), "POST", "/v1/transfers/in", BODY, now_s=NOW)
    assert reason(lambda: verifier(ring(k1=b"s3cret")).verify_request("POST", "/v1/transfers/in", BODY, headers)) == "bad_signature"


def test_an_unknown_key_id_is_refused() -> None:
    headers = sign_request(ring(k9=b"s3cret"), "POST", "/v1/transfers/in", BODY, now_s=NOW)
    assert reason(lambda: verifier(ring(k1=b"s3cret")).verify_request("POST", "/v1/transfers/in", BODY, headers)) == "unknown_key"


@pytest.mark.parametrize(("skew_s", "accepted"), [(-299, True), (299, True), (-301, False), (301, False)])
def test_timestamps_outside_the_300_second_window_are_refused(skew_s: int, accepted: bool) -> None:
    keys = ring(k1=b"s3cret")
    headers = sign_request(keys, "GET", "/v1/status", b"", now_s=NOW + skew_s)
    check = lambda: verifier(keys).verify_request("GET", "/v1/status", b"", headers)
    if accepted:
        assert check() == "k1"
    else:
        assert reason(check) == "stale_timestamp"


def test_a_replayed_request_id_is_refused_even_with_a_valid_signature() -> None:
    keys = ring(k1=b"s3cret")
    check = verifier(keys)
    headers = sign_request(keys, "POST", "/v1/transfers/in", BODY, now_s=NOW)
    check.verify_request("POST", "/v1/transfers/in", BODY, headers)
    assert reason(lambda: check.verify_request("POST", "/v1/transfers/in", BODY, headers)) == "replayed_request"


def test_request_ids_are_forgotten_only_after_they_could_no_longer_pass_the_window() -> None:
    keys = ring(k1=b"s3cret")
    now = [NOW]
    check = Verifier(keys, clock=lambda: now[0], window_s=300)
    first = sign_request(keys, "GET", "/v1/status", b"", now_s=NOW, request_id="same")
    check.verify_request("GET", "/v1/status", b"", first)
    now[0] += 599  # a re-signed request with the same id and a fresh timestamp: still remembered
    again = sign_request(keys, "GET", "/v1/status", b"", now_s=now[0], request_id="same")
    assert reason(lambda: check.verify_request("GET", "/v1/status", b"", again)) == "replayed_request"


def test_the_replay_memory_is_bounded_and_refuses_rather_than_forgets() -> None:
    keys = ring(k1=b"s3cret")
    check = verifier(keys, max_request_ids=2)
    for _ in range(2):
        check.verify_request("GET", "/v1/status", b"", sign_request(keys, "GET", "/v1/status", b"", now_s=NOW))
    third = sign_request(keys, "GET", "/v1/status", b"", now_s=NOW)
    assert reason(lambda: check.verify_request("GET", "/v1/status", b"", third)) == "replay_cache_full"


def test_missing_headers_are_refused() -> None:
    keys = ring(k1=b"s3cret")
    headers = sign_request(keys, "GET", "/v1/status", b"", now_s=NOW)
    del headers[HEADER_SIGNATURE]
    assert reason(lambda: verifier(keys).verify_request("GET", "/v1/status", b"", headers)) == "missing_headers"


def test_during_a_rotation_both_keys_verify_and_the_newest_signs() -> None:
    keys = KeyRing.from_secrets(
        {"k-old": b"old", "k-new": b"new"}, created={"k-old": dt.date(2026, 9, 1), "k-new": dt.date(2026, 11, 1)}
    )
    assert keys.signing_key()[0] == "k-new"
    old_only = ring(**{"k-old": b"old"})
    headers = sign_request(old_only, "GET", "/v1/status", b"", now_s=NOW)
    assert verifier(keys).verify_request("GET", "/v1/status", b"", headers) == "k-old"


def test_the_signing_key_skips_keys_whose_secret_is_not_in_the_environment(acme, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    keys = KeyRing.from_config(acme)
    assert keys.signing_key()[0] == "acme-2026-11"
    monkeypatch.delenv("TW_ACME_SECRET_2026_11")
    assert keys.signing_key()[0] == "acme-2026-09"
    monkeypatch.delenv("TW_ACME_SECRET_2026_09")
    with pytest.raises(ConfigError, match="set one of TW_ACME_SECRET_2026_09, TW_ACME_SECRET_2026_11"):
        keys.signing_key()


def test_a_response_is_bound_to_its_request_and_status() -> None:
    keys = ring(k1=b"s3cret")
    headers = sign_response(keys, "k1", 201, b'{"ok":1}', "req-1", now_s=NOW)
    verify_response(keys, 201, b'{"ok":1}', headers, "req-1", now_s=NOW)
    assert reason(lambda: verify_response(keys, 201, b'{"ok":2}', headers, "req-1", now_s=NOW)) == "bad_signature"
    assert reason(lambda: verify_response(keys, 402, b'{"ok":1}', headers, "req-1", now_s=NOW)) == "bad_signature"
    assert reason(lambda: verify_response(keys, 201, b'{"ok":1}', headers, "req-2", now_s=NOW)) == "wrong_request"
    unsigned = {HEADER_REQUEST_ID: "req-1"}
    assert reason(lambda: verify_response(keys, 201, b"", unsigned, "req-1", now_s=NOW)) == "missing_headers"


def test_key_ages_flag_keys_older_than_90_days(acme, betsul) -> None:  # type: ignore[no-untyped-def]
    ages = {a.key_id: a for a in key_ages([acme, betsul], dt.date(2026, 12, 5))}
    assert ages["acme-2026-09"].age_days == 95 and ages["acme-2026-09"].too_old
    assert ages["acme-2026-11"].age_days == 34 and not ages["acme-2026-11"].too_old
    assert ages["betsul-k1"].secret_set


def test_reprs_show_key_ids_never_secrets(acme, secrets_env) -> None:  # type: ignore[no-untyped-def]
    texts = [repr(KeyRing.from_config(acme)), repr(acme), repr(acme.keys), repr(ring(k1=b"s3cret-value"))]
    for text in texts:
        assert "s3cret-value" not in text
        for secret in secrets_env.values():
            assert secret not in text
    assert "acme-2026-11" in texts[0]

"""One request digest for ledger entries, session opens and play; every stored hash still matches.

The literal digests below were computed with the two functions this one replaced
(``ledger.request_hash`` with compact JSON, ``sessions.request_digest`` with JSON's
default spacing): a replay of a key stored before the change must still match.
"""

from __future__ import annotations

import datetime as dt

from transfer_wallet import ledger, sessions
from transfer_wallet.ledger import AccountRef, Leg, request_digest, request_hash


def test_session_open_digests_are_the_ones_stored_before():
    document = {"player_id": "P1", "provider": "acme", "amount": "50"}
    assert request_digest(document) == "57abf650f5489c1c574c827a1f7a5a82a57645a6c4d094ce6dd9d38d7c6d63e3"


def test_play_digests_are_the_ones_stored_before_even_with_a_datetime():
    document = dict(kind="bet", session="s1", round="r1", tx="t1", amount=500,
                    at=dt.datetime(2026, 11, 24, 12, tzinfo=dt.timezone.utc))
    assert request_digest(document) == "8ebcf8fad1e4c6fad13a1a74ce4342e95bedc5423529abd5eb3082e451562d7e"


def test_ledger_entry_digests_are_the_ones_stored_before():
    legs = [Leg(AccountRef(2, "main:P1", "EUR", True), 1000), Leg(AccountRef(1, "cashier:EUR", "EUR", False), -1000)]
    expected = "8e515509aa87cc2ac8c086f39ac67bc55f039eab8ecb108fe83b067cc0067253"
    assert request_hash("deposit", legs, {"reference": "dep-1"}) == expected
    assert request_digest({"kind": "deposit", "legs": [("cashier:EUR", "EUR", -1000), ("main:P1", "EUR", 1000)],
                           "request": {"reference": "dep-1"}}, compact=True) == expected


def test_sessions_and_play_use_the_ledgers_digest():
    assert sessions.request_digest is ledger.request_digest


def test_a_different_request_has_a_different_digest():
    assert request_digest({"amount": "50"}) != request_digest({"amount": "50.01"})
    assert request_digest({"amount": "50"}) != request_digest({"amount": "50"}, compact=True)

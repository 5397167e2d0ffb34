"""Invariants of game wallets under any sequence of operations (hypothesis), for the simulator's
store and the in-memory fake alike, plus concurrent re-sends of one transfer over HTTP."""

from __future__ import annotations

import datetime as dt
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transfer_wallet.errors import ProviderInsufficientFundsError, TransferConflictError
from transfer_wallet.money import Money, currency
from transfer_wallet.providers import Direction, InMemoryProvider
from transfer_wallet.simulator.play import simulate_rounds
from transfer_wallet.simulator.store import SimulatorStore

from .conftest import eur

EUR = currency("EUR")
T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)

operation = st.one_of(
    st.tuples(st.just("in"), st.integers(0, 5), st.integers(1, 10_000)),
    st.tuples(st.just("out"), st.integers(0, 5), st.integers(1, 10_000)),
    st.tuples(st.just("out_all"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("play"), st.integers(0, 5), st.integers(0, 2**32)),
)


@settings(max_examples=60, deadline=None)
@given(operations=st.lists(operation, max_size=30))
def test_the_store_balance_is_transfers_plus_rounds_never_negative_and_replays_move_nothing(operations) -> None:  # type: ignore[no-untyped-def]
    store = SimulatorStore(":memory:", "acme", EUR)  # the same SQL as a file, one fresh database per example
    expected = 0
    try:
        for kind, id_slot, value in operations:
            transfer_id = f"tr-{id_slot}-{kind}-{value}"  # the same slot and value re-sends the same transfer
            if kind == "play":
                rounds, after = store.play("P1", lambda b, first: simulate_rounds(random.Random(value), "acme", EUR, "P1", b, first, 5, T0))
                expected += sum(r.net.amount_minor for r in rounds)
            else:
                direction = Direction.IN if kind == "in" else Direction.OUT
                amount = None if kind == "out_all" else value
                outcome = store.apply_transfer(direction, transfer_id, "P1", amount, T0)
                if outcome.kind == "applied":
                    moved = outcome.transfer.amount.amount_minor  # type: ignore[union-attr]
                    expected += moved if direction is Direction.IN else -moved
            assert store.balance("P1").amount_minor == expected >= 0
    finally:
        store.close()


@settings(max_examples=60, deadline=None)
@given(operations=st.lists(operation, max_size=30))
def test_the_fake_keeps_the_same_invariant(operations) -> None:  # type: ignore[no-untyped-def]
    fake = InMemoryProvider(clock=lambda: T0)
    applied: dict[str, int] = {}
    for kind, id_slot, value in operations:
        transfer_id = f"tr-{id_slot}"
        try:
            if kind == "in":
                result = fake.transfer_in(transfer_id, "P1", Money(value, EUR))
            elif kind in ("out", "out_all"):
                result = fake.transfer_out(transfer_id, "P1", None if kind == "out_all" else Money(value, EUR))
            else:
                balance = fake.balance("P1").amount_minor
                bet = balance * (value % 100) // 100
                fake.play("P1", Money(bet, EUR), Money(bet * (value % 3) // 2, EUR))
                continue
        except (ProviderInsufficientFundsError, TransferConflictError):
            continue
        sign = 1 if result.direction is Direction.IN else -1
        applied.setdefault(transfer_id, sign * result.amount.amount_minor)
        assert applied[transfer_id] == sign * result.amount.amount_minor  # a replay reports the first result
    net_rounds = sum(r.net.amount_minor for r in fake.rounds("P1", T0))
    assert fake.balance("P1").amount_minor == sum(applied.values()) + net_rounds >= 0


def test_concurrent_resends_of_one_transfer_apply_it_exactly_once(client, simulator) -> None:  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: client.transfer_in("tr-1", "P1", eur("10.00")), range(16)))
    assert sum(not r.replayed for r in results) == 1
    assert len({r.provider_tx_id for r in results}) == 1
    assert client.balance("P1") == eur("10.00")


def test_one_client_is_safe_to_share_between_threads(client) -> None:  # type: ignore[no-untyped-def]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: client.transfer_in(f"tr-{i}", f"P{i % 4}", eur("1.00")), range(40)))
    assert [client.balance(f"P{i}") for i in range(4)] == [eur("10.00")] * 4


@pytest.mark.parametrize("amount_minor", [1, 99, 10**12])
def test_amounts_survive_the_wire_exactly(client, amount_minor: int) -> None:  # type: ignore[no-untyped-def]
    result = client.transfer_in("tr-1", "P1", Money(amount_minor, EUR))
    assert result.amount.amount_minor == amount_minor == client.balance("P1").amount_minor

"""Property: any sequence of deposits, withdrawals and transfers (and replays) keeps every ledger invariant."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transfer_wallet.errors import IdempotencyConflictError, InsufficientFundsError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.wallet import Wallet

PLAYERS = ("A", "B", "C")
amounts = st.integers(min_value=1, max_value=5_000)
operation = st.one_of(
    st.tuples(st.just("deposit"), st.sampled_from(PLAYERS), amounts),
    st.tuples(st.just("withdraw"), st.sampled_from(PLAYERS), amounts),
    st.tuples(st.just("transfer"), st.sampled_from(list(itertools.permutations(PLAYERS, 2))), amounts),
    st.tuples(st.just("replay"), st.integers(min_value=0, max_value=50), amounts),
)
_run = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=25))
def test_any_sequence_of_operations_keeps_every_invariant(db, operations):
    run = next(_run)
    wallet = Wallet(db)
    players = {p: f"r{run}-{p}" for p in PLAYERS}
    for player_id in players.values():
        wallet.create_player(player_id, "EUR")
    available = {p: 0 for p in PLAYERS}
    locked = {p: 0 for p in PLAYERS}
    done: list[tuple[str, object, int, str]] = []

    def cents(value: int) -> str:
        return f"{value // 100}.{value % 100:02d}"

    for step, (kind, who, amount) in enumerate(operations):
        reference = f"r{run}-{step}"
        try:
            if kind == "deposit":
                wallet.deposit(players[who], cents(amount), reference=reference)
                available[who] += amount
            elif kind == "withdraw":
                wallet.withdraw(players[who], cents(amount), reference=reference)
                available[who] -= amount
            elif kind == "transfer":
                payer, payee = who
                wallet.transfer(players[payer], players[payee], cents(amount), reference=reference)
                available[payer] -= amount
                available[payee] += amount
            else:  # replay an earlier successful operation: same result, nothing moves
                if not done:
                    continue
                old_kind, old_who, old_amount, old_reference = done[who % len(done)]
                if old_kind == "transfer":
                    payer, payee = old_who
                    result = wallet.transfer(players[payer], players[payee], cents(old_amount), reference=old_reference)
                else:
                    result = getattr(wallet, old_kind)(players[old_who], cents(old_amount), reference=old_reference)
                assert result.replayed
                if amount != old_amount:  # the same key with another amount is a conflict
                    try:
                        if old_kind == "transfer":
                            wallet.transfer(players[payer], players[payee], cents(amount), reference=old_reference)
                        else:
                            getattr(wallet, old_kind)(players[old_who], cents(amount), reference=old_reference)
                    except IdempotencyConflictError:
                        pass
                    else:
                        raise AssertionError("a reused key with another amount was accepted")
                continue
            done.append((kind, who, amount, reference))
        except InsufficientFundsError:
            pass
        for p in PLAYERS:
            assert available[p] >= 0 and locked[p] >= 0
    for p in PLAYERS:
        balance = wallet.balance(players[p])
        assert (balance.available.amount_minor, balance.locked.amount_minor) == (available[p], locked[p])
    report = check_ledger(db)
    assert report.clean, report.findings
    assert all(total == 0 for total in report.totals.values())

"""``InMemoryProvider``: the same contract as the simulator, in process, with scripted failures."""

from __future__ import annotations

import datetime as dt

import pytest

from transfer_wallet.errors import (
    OutcomeUnknownError,
    ProviderInsufficientFundsError,
    ProviderUnavailableError,
    RateLimitedError,
    TransferConflictError,
    ValidationError,
)
from transfer_wallet.providers import InMemoryProvider, Provider, TransferState

from .conftest import brl, eur

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def fake() -> InMemoryProvider:
    return InMemoryProvider(name="fake", currency_code="EUR", clock=lambda: T0)


def test_it_is_a_provider(fake: InMemoryProvider) -> None:
    assert isinstance(fake, Provider)
    assert fake.status().currency == "EUR" and fake.games()


def test_in_play_and_everything_out(fake: InMemoryProvider) -> None:
    fake.transfer_in("tr-in", "P1", eur("50.00"))
    fake.play("P1", bet=eur("10.00"), win=eur("25.00"))
    fake.play("P1", bet=eur("5.00"), win=eur("0.00"), refund=eur("5.00"))
    out = fake.transfer_out("tr-out", "P1", None)
    assert out.amount == eur("65.00") and out.balance_after == eur("0.00")
    assert [r.net for r in fake.rounds("P1", T0)] == [eur("15.00"), eur("0.00")]


def test_replay_conflict_and_402_behave_like_the_simulator(fake: InMemoryProvider) -> None:
    first = fake.transfer_in("tr-1", "P1", eur("10.00"))
    again = fake.transfer_in("tr-1", "P1", eur("10.00"))
    assert again.replayed and again.provider_tx_id == first.provider_tx_id
    assert fake.balance("P1") == eur("10.00")
    with pytest.raises(TransferConflictError):
        fake.transfer_in("tr-1", "P1", eur("10.01"))
    with pytest.raises(ProviderInsufficientFundsError):
        fake.transfer_out("tr-2", "P1", eur("10.01"))
    assert fake.transfer_status("tr-2").state is TransferState.FAILED
    with pytest.raises(ProviderInsufficientFundsError):
        fake.transfer_out("tr-2", "P1", eur("10.01"))
    with pytest.raises(ProviderInsufficientFundsError):
        fake.play("P1", bet=eur("10.01"), win=eur("0.00"))
    assert fake.transfer_status("never").state is TransferState.NOT_FOUND


def test_a_scripted_unknown_outcome_can_apply_the_transfer_first(fake: InMemoryProvider) -> None:
    fake.fail_next(OutcomeUnknownError("response lost"), apply=True)
    with pytest.raises(OutcomeUnknownError):
        fake.transfer_in("tr-1", "P1", eur("20.00"))
    assert fake.transfer_status("tr-1").state is TransferState.APPLIED
    assert fake.transfer_in("tr-1", "P1", eur("20.00")).replayed
    assert fake.balance("P1") == eur("20.00")


def test_a_scripted_failure_that_does_not_apply_leaves_nothing_behind(fake: InMemoryProvider) -> None:
    fake.fail_next(ProviderUnavailableError("down"), times=2)
    for _ in range(2):
        with pytest.raises(ProviderUnavailableError):
            fake.transfer_in("tr-1", "P1", eur("20.00"))
    assert fake.transfer_status("tr-1").state is TransferState.NOT_FOUND
    assert fake.transfer_in("tr-1", "P1", eur("20.00")).replayed is False


def test_scripts_wait_for_the_operations_they_target(fake: InMemoryProvider) -> None:
    fake.fail_next(RateLimitedError("slow", 2.0), operations={"balance"})
    fake.transfer_in("tr-1", "P1", eur("1.00"))  # not a balance call: unaffected
    with pytest.raises(RateLimitedError):
        fake.balance("P1")
    assert fake.balance("P1") == eur("1.00")
    assert [c[0] for c in fake.calls] == ["transfer_in", "balance", "balance"]


def test_wrong_currency_and_bad_ids_are_validation_errors(fake: InMemoryProvider) -> None:
    with pytest.raises(ValidationError):
        fake.transfer_in("tr-1", "P1", brl("1.00"))
    with pytest.raises(ValidationError):
        fake.transfer_in("", "P1", eur("1.00"))


def test_a_script_with_apply_still_raises_on_a_read(fake: InMemoryProvider) -> None:
    fake.fail_next(OutcomeUnknownError("lost"), apply=True, operations={"transfer_in", "transfer_status"}, times=2)
    with pytest.raises(OutcomeUnknownError):
        fake.transfer_status("tr-1")
    with pytest.raises(OutcomeUnknownError):
        fake.transfer_in("tr-1", "P1", eur("1.00"))
    assert fake.transfer_status("tr-1").state is TransferState.APPLIED

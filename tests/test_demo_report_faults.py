"""Planting report mistakes never fails on small days: a seeded property over many seeds and few candidates.

``tw demo --sessions 10 --players 2`` used to end in a traceback: the invented
(``unknown_transfer``) row copied a transfer that ``missing_row`` had left out
or ``changed_amount`` had replaced, and then looked for it in the rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from transfer_wallet.money import Money, currency
from transfer_wallet.providers.protocol import Direction, TransferState
from transfer_wallet.simulator.report_faults import plant_mistakes
from transfer_wallet.simulator.store import StoredTransfer

EUR = currency("EUR")
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)


def _transfers(count: int) -> list[StoredTransfer]:
    return [StoredTransfer(f"t{i}", f"px{i}", f"P{i % 3}", Direction.IN if i % 2 else Direction.OUT, "f",
                           Money(100 + i, EUR), TransferState.APPLIED, None, None, T0 + dt.timedelta(minutes=i))
            for i in range(count)]


@pytest.mark.parametrize("count", [3, 4, 5, 6, 8, 10, 40])
def test_every_seed_plants_all_four_mistakes_on_a_small_day(count: int) -> None:
    transfers = _transfers(count)
    for seed in range(300):
        rows, planted = plant_mistakes(transfers, seed=seed, tag="x")
        by_mistake = {p.mistake: p for p in planted}
        ids = [r.transfer_id for r in rows]
        assert by_mistake["missing_row"].transfer_id not in ids, seed
        changed = [r for r in rows if r.transfer_id == by_mistake["changed_amount"].transfer_id]
        original = next(t for t in transfers if t.transfer_id == by_mistake["changed_amount"].transfer_id)
        assert len(changed) == 1 and changed[0].amount.amount_minor > original.amount.amount_minor, seed
        assert ids.count(by_mistake["duplicate_row"].transfer_id) == 2, seed
        [ghost] = [r for r in rows if r.transfer_id == by_mistake["unknown_transfer"].transfer_id]
        assert ghost.player_id in {t.player_id for t in transfers}, seed
        assert len(rows) == count + 1, seed  # one left out, one repeated, one invented


def test_the_invented_row_copies_a_row_still_in_the_report() -> None:
    transfers = _transfers(3)
    for seed in range(200):
        rows, planted = plant_mistakes(transfers, seed=seed, tag="x")
        index = next(i for i, r in enumerate(rows) if r.transfer_id.startswith("ghost-"))
        before = rows[index - 1]
        ghost = rows[index]
        assert before in transfers, seed  # inserted after an unaltered row it copies
        assert (ghost.player_id, ghost.direction) == (before.player_id, before.direction), seed


def test_with_no_unaltered_row_left_the_invented_row_goes_last() -> None:
    [only] = _transfers(1)
    rows, planted = plant_mistakes([only], seed=3, tag="x", mistakes=("missing_row", "unknown_transfer"))
    assert [p.mistake for p in planted] == ["missing_row", "unknown_transfer"]
    assert len(rows) == 1 and rows[0].transfer_id == planted[1].transfer_id
    assert dataclasses.replace(rows[0], transfer_id="t0", provider_tx_id="px0") != only  # a new amount and time

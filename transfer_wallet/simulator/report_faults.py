"""The mistakes real providers make in their daily reports, planted on purpose (seeded).

``plant_mistakes(transfers, seed=..., tag=...)`` takes the transfers a report is made
from (before ``report.render_report``) and returns the transfers to render plus the
list of what was planted, so a test or the demo can check that reconciliation finds
exactly those:

=================  =====================================================  =========================
mistake            what the report then shows                             reconciliation finds
=================  =====================================================  =========================
missing_row        a completed transfer is left out                       ``MISSING_AT_PROVIDER``
changed_amount     a completed transfer with its amount raised            ``AMOUNT_MISMATCH``
duplicate_row      a completed transfer reported twice                    ``DUPLICATE_AT_PROVIDER``
unknown_transfer   a transfer we never sent (ids unknown to us)           ``MISSING_IN_LEDGER``
=================  =====================================================  =========================

Each mistake uses a different transfer, chosen among the applied ones created
inside ``inside`` (e.g. the business day less the reconciliation's cut-off margin,
so that a missing row is not taken for a timing break). ``tag`` makes the invented
ids unique per run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from dataclasses import dataclass
from typing import Sequence

from transfer_wallet.errors import ValidationError
from transfer_wallet.money import Money
from transfer_wallet.providers.protocol import TransferState
from transfer_wallet.simulator.store import StoredTransfer

#: Mistake -> the discrepancy type reconciliation reports for it.
EXPECTED_KIND: dict[str, str] = {
    "missing_row": "MISSING_AT_PROVIDER",
    "changed_amount": "AMOUNT_MISMATCH",
    "duplicate_row": "DUPLICATE_AT_PROVIDER",
    "unknown_transfer": "MISSING_IN_LEDGER",
}
MISTAKES: tuple[str, ...] = tuple(EXPECTED_KIND)


@dataclass(frozen=True, slots=True)
class PlantedMistake:
    """One planted mistake: which, on which transfer (ours and the provider's id), and in words."""

    mistake: str
    transfer_id: str
    provider_tx_id: str
    what: str

    @property
    def expected_kind(self) -> str:
        """The discrepancy type reconciliation should report."""
        return EXPECTED_KIND[self.mistake]

    def as_dict(self) -> dict[str, str]:
        """The mistake as JSON-ready values."""
        return {"mistake": self.mistake, "expected_kind": self.expected_kind, "transfer_id": self.transfer_id,
                "provider_tx_id": self.provider_tx_id, "what": self.what}


def plant_mistakes(
    transfers: Sequence[StoredTransfer], *, seed: int, tag: str, mistakes: Sequence[str] = MISTAKES,
    inside: tuple[dt.datetime, dt.datetime] | None = None,
) -> tuple[list[StoredTransfer], list[PlantedMistake]]:
    """The transfers with ``mistakes`` planted (same order otherwise) and what was planted.

    ``ValidationError`` for an unknown mistake or too few applied transfers to choose from.
    """
    unknown = [m for m in mistakes if m not in EXPECTED_KIND]
    if unknown:
        raise ValidationError(f"unknown report mistake(s): {', '.join(unknown)} (known: {', '.join(MISTAKES)})")
    rng = random.Random(seed)
    candidates = [t for t in transfers if t.state is TransferState.APPLIED and t.amount.amount_minor > 0
                  and (inside is None or inside[0] <= t.created_at < inside[1])]
    needed = sum(m != "unknown_transfer" for m in mistakes)
    if len(candidates) < max(needed, 1):
        raise ValidationError(f"{len(candidates)} applied transfers to plant {len(mistakes)} mistakes in; need more")
    chosen = iter(rng.sample(candidates, needed))
    rows = list(transfers)
    planted = []
    for mistake in mistakes:
        if mistake == "unknown_transfer":
            planted.append(_invent(rows, candidates, rng, tag))
        else:
            planted.append(_alter(rows, next(chosen), mistake, rng))
    return rows, planted


def _alter(rows: list[StoredTransfer], target: StoredTransfer, mistake: str, rng: random.Random) -> PlantedMistake:
    """Drop, change or repeat ``target`` in ``rows``."""
    index = rows.index(target)
    if mistake == "missing_row":
        del rows[index]
        what = f"{target.direction.value} of {target.amount} for {target.player_id} left out"
    elif mistake == "changed_amount":
        raised = Money(target.amount.amount_minor + rng.randint(1, 500), target.amount.currency)
        rows[index] = dataclasses.replace(target, amount=raised)
        what = f"{target.direction.value} of {target.amount} for {target.player_id} reported as {raised}"
    else:
        rows.insert(index + 1, target)
        what = f"{target.direction.value} of {target.amount} for {target.player_id} reported twice"
    return PlantedMistake(mistake, target.transfer_id, target.provider_tx_id, what)


def _invent(rows: list[StoredTransfer], candidates: list[StoredTransfer], rng: random.Random,
            tag: str) -> PlantedMistake:
    """Add a transfer we never sent, for a known player, at a time of the day, with an odd amount.

    The model is a candidate still in ``rows`` as it was (not one another mistake
    left out or replaced); if none is left, any candidate, and the row goes last.
    """
    present = {id(row) for row in rows}
    pool = [t for t in candidates if id(t) in present]
    model = rng.choice(pool or candidates)
    invented = dataclasses.replace(
        model, transfer_id=f"ghost-{tag}-{rng.getrandbits(32):08x}",
        provider_tx_id=f"ghost-{tag}-{rng.getrandbits(32):08x}",
        amount=Money(rng.randint(1, 9_999) * 10 + 7, model.amount.currency),
        created_at=model.created_at + dt.timedelta(seconds=rng.randint(1, 59)),
    )
    rows.insert(rows.index(model) + 1 if pool else len(rows), invented)
    return PlantedMistake("unknown_transfer", invented.transfer_id, invented.provider_tx_id,
                          f"{invented.direction.value} of {invented.amount} for {invented.player_id} we never sent")

"""The sample day in ``sample_data/reconcile``: reconciling it finds exactly the planted discrepancies."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from transfer_wallet.config import load_providers
from transfer_wallet.errors import OutcomeUnknownError
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.reconcile.run import reconcile
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "reconcile"
#: acme as the sample providers file describes it: its report is read with acme's own profile.
CONFIG = load_providers(SAMPLE.parent / "providers.toml")["acme"]


def build_ledger(db) -> None:
    """Run ``ledger.csv`` through the library: deposits, sessions opened (and closed) at their times."""
    clock = [dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)]
    provider = InMemoryProvider(name="acme", currency_code="EUR", clock=lambda: clock[0])
    policy = SessionPolicy("EUR", idle_timeout_s=900, max_session_s=86_400, stuck_after_attempts=3, retry_base_s=30)
    manager = SessionManager(db, {"acme": provider}, {"acme": policy}, clock=lambda: clock[0])
    wallet = Wallet(db)
    with (SAMPLE / "ledger.csv").open(newline="") as handle:
        sessions = list(csv.DictReader(handle))
    for player in sorted({s["player_id"] for s in sessions}):
        wallet.create_player(player, "EUR")
        wallet.deposit(player, "500.00", reference=f"dep-{player}")
    for session in sessions:
        clock[0] = dt.datetime.fromisoformat(session["opened_at"])
        if session["outcome"] == "in_doubt":
            provider.fail_next(OutcomeUnknownError("answer lost"), apply=True)
        view = manager.open_session(session["player_id"], "acme", session["amount"], now=clock[0])
        if session["closed_at"]:
            clock[0] = dt.datetime.fromisoformat(session["closed_at"])
            manager.close_session(view.id, now=clock[0])


def test_the_sample_day_finds_exactly_the_planted_discrepancies(db):
    build_ledger(db)
    result = reconcile(db, CONFIG, dt.date(2026, 12, 1), SAMPLE / "acme-2026-12-01.csv",
                       now=dt.datetime(2026, 12, 2, 6, tzinfo=dt.timezone.utc))
    with (SAMPLE / "planted.csv").open(newline="") as handle:
        planted = sorted((p["type"], p["key"] or p["provider_tx_id"] or "") for p in csv.DictReader(handle))
    breaks = result.breaks.to_dict("records")
    found = sorted((b["kind"], b["key"] if b["kind"] in ("DUPLICATE_AT_PROVIDER", "INVALID_RECORD")
                    else ("" if b["kind"] == "PENDING_IN_LEDGER" else str(b["provider_tx_id"]))) for b in breaks)
    assert found == planted
    assert result.open_count == len(planted)

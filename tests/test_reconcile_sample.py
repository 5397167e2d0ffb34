"""The sample days in ``sample_data/reconcile``: reconciling each finds exactly its planted discrepancies.

Two providers, each in its own report format (``sample_data/providers.toml``): acme (UTF-8,
commas, ISO dates in UTC) and betsul (Latin-1, semicolons, decimal comma with thousands dot,
day-first dates in Sao Paulo time, a trailer line). The ledger is built through the library
from ``<provider>-ledger.csv``; ``<provider>-planted.csv`` lists what the report has wrong.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest

from transfer_wallet.config import load_providers
from transfer_wallet.errors import OutcomeUnknownError
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.reconcile.run import reconcile
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "reconcile"
#: The providers as the sample providers file describes them: each report is read with its own profile.
PROVIDERS = load_providers(SAMPLE.parent / "providers.toml")
DAY = dt.date(2026, 12, 1)
#: Kinds whose planted line names the break key rather than the provider transaction id.
KEYED = ("DUPLICATE_AT_PROVIDER", "INVALID_RECORD", "CONTROL_TOTAL_MISMATCH")


def build_ledger(db, provider_name: str) -> None:
    """Run ``<provider>-ledger.csv`` through the library: deposits, sessions opened (and closed) at
    their times, against the in-memory provider (transaction ids ``<provider>-tx1``, ``-tx2`` ...)."""
    code = PROVIDERS[provider_name].currency
    clock = [dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)]
    provider = InMemoryProvider(name=provider_name, currency_code=code, clock=lambda: clock[0])
    policy = SessionPolicy(code, idle_timeout_s=900, max_session_s=86_400, stuck_after_attempts=3, retry_base_s=30)
    manager = SessionManager(db, {provider_name: provider}, {provider_name: policy}, clock=lambda: clock[0])
    wallet = Wallet(db)
    with (SAMPLE / f"{provider_name}-ledger.csv").open(newline="") as handle:
        sessions = list(csv.DictReader(handle))
    for player in sorted({s["player_id"] for s in sessions}):
        wallet.create_player(player, code)
        wallet.deposit(player, "5000.00", reference=f"dep-{player}")
    for session in sessions:
        clock[0] = dt.datetime.fromisoformat(session["opened_at"])
        if session["outcome"] == "in_doubt":
            provider.fail_next(OutcomeUnknownError("answer lost"), apply=True)
        view = manager.open_session(session["player_id"], provider_name, session["amount"], now=clock[0])
        if session["closed_at"]:
            clock[0] = dt.datetime.fromisoformat(session["closed_at"])
            manager.close_session(view.id, now=clock[0])


def planted(provider_name: str) -> list[tuple[str, str]]:
    """``(type, provider tx id or break key)`` of every planted discrepancy, sorted."""
    with (SAMPLE / f"{provider_name}-planted.csv").open(newline="") as handle:
        return sorted((p["type"], p["key"] or p["provider_tx_id"] or "") for p in csv.DictReader(handle))


def found(breaks) -> list[tuple[str, str]]:
    """The same pairs for what a run found."""
    return sorted((b["kind"], b["key"] if b["kind"] in KEYED
                   else ("" if b["kind"] == "PENDING_IN_LEDGER" else str(b["provider_tx_id"])))
                  for b in breaks.to_dict("records"))


@pytest.mark.parametrize("provider_name", ["acme", "betsul"])
def test_the_sample_day_finds_exactly_the_planted_discrepancies(db, provider_name):
    build_ledger(db, provider_name)
    result = reconcile(db, PROVIDERS[provider_name], DAY, SAMPLE / f"{provider_name}-{DAY.isoformat()}.csv",
                       now=dt.datetime(2026, 12, 2, 6, tzinfo=dt.timezone.utc))
    assert found(result.breaks) == planted(provider_name)
    assert result.open_count == len(planted(provider_name))


def test_the_betsul_day_is_read_in_sao_paulo_time_across_utc_midnight(db):
    build_ledger(db, "betsul")
    result = reconcile(db, PROVIDERS["betsul"], DAY, SAMPLE / "betsul-2026-12-01.csv",
                       now=dt.datetime(2026, 12, 2, 6, tzinfo=dt.timezone.utc))
    # 23:30 local on 12-01 is 02:30 UTC on 12-02: in the day. 23:30 local on 11-30 is only in the margin.
    assert (result.counts["ledger_rows"], result.counts["ledger_margin_rows"]) == (4, 1)
    amount = result.breaks[result.breaks["kind"] == "AMOUNT_MISMATCH"].iloc[0]
    assert (amount["p_amount_minor"], amount["l_amount_minor"]) == (124356, 123456)

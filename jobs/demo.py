"""The demo job: a seeded day of cashier activity on the configured database.

``make demo`` runs it on an embedded SQLite file: it migrates the database,
creates players in three currencies, stores an FX rate, runs deposits,
withdrawals (some refused for insufficient funds), transfers between
players and replays of earlier requests, then proves the ledger with
``check_ledger`` and exits non-zero if any invariant is violated.

Run it again and it adds another day: references carry a run id, and the
players and FX rate are re-created idempotently.
"""

from __future__ import annotations

import random
import sys
import uuid
from dataclasses import dataclass, field

from transfer_wallet import check_ledger, migrations, open_database
from transfer_wallet.db import Database
from transfer_wallet.errors import InsufficientFundsError
from transfer_wallet.fx import current_rates, set_rate
from transfer_wallet.money import Money, currency
from transfer_wallet.wallet import Wallet

PLAYERS = {"P1": "EUR", "P2": "EUR", "P3": "BRL", "P4": "JPY"}


@dataclass
class DemoReport:
    """What the demo did, for people."""

    operations: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    replayed: int = 0

    def count(self, kind: str) -> None:
        self.operations[kind] = self.operations.get(kind, 0) + 1


def _amount(rng: random.Random, currency_code: str, low: int, high: int) -> Money:
    """``low``..``high`` hundredths of a major unit (whole yen for JPY)."""
    ccy = currency(currency_code)
    return Money(rng.randint(low, high) * 10 ** max(ccy.exponent - 2, 0), ccy)


def run(db: Database, *, seed: int = 7, operations: int = 200) -> DemoReport:
    """Seeded cashier activity; returns counts of what happened."""
    migrations.upgrade(db)
    wallet = Wallet(db)
    for player_id, currency_code in PLAYERS.items():
        wallet.create_player(player_id, currency_code)
    if not current_rates(db):
        set_rate(db, "EUR", "BRL", "6.1235")
    rng = random.Random(seed)
    run_id = uuid.uuid4().hex[:8]
    report = DemoReport()
    done: list[tuple[str, str, Money, str]] = []
    for step in range(operations):
        player_id = rng.choice(list(PLAYERS))
        kind = rng.choices(["deposit", "withdraw", "transfer", "replay"], weights=[4, 3, 2, 1])[0]
        if kind == "replay" and done:
            kind, player_id, money, reference = rng.choice(done)
            if kind != "transfer":
                getattr(wallet, kind)(player_id, money, reference=reference)
            report.replayed += 1
            continue
        kind = "deposit" if kind == "replay" else kind
        money = _amount(rng, PLAYERS[player_id], 100, 10_000 if kind == "deposit" else 6_000)
        reference = f"demo-{run_id}-{step}"
        try:
            if kind == "transfer":
                payee = next((p for p in PLAYERS if p != player_id and PLAYERS[p] == PLAYERS[player_id]), None)
                if payee is None:
                    continue
                wallet.transfer(player_id, payee, money, reference=reference)
            else:
                getattr(wallet, kind)(player_id, money, reference=reference)
        except InsufficientFundsError:
            report.refused += 1
            continue
        report.count(kind)
        done.append((kind, player_id, money, reference))
    return report


def main() -> int:
    db = open_database()
    try:
        report = run(db)
        wallet = Wallet(db)
        print(f"demo on {db.engine.url.render_as_string(hide_password=True)}")
        print("  done: " + ", ".join(f"{k} {v}" for k, v in sorted(report.operations.items())))
        print(f"  refused for insufficient funds: {report.refused}; replays (moved nothing): {report.replayed}")
        for balance in wallet.players():
            row = balance.as_dict()
            print(f"  {row['player_id']:<4} {row['currency']}  available {row['available']:>10}  "
                  f"locked {row['locked']:>10}  total {row['total']:>10}")
        ledger_report = check_ledger(db)
        if ledger_report.clean:
            print(f"ledger check: clean ({ledger_report.entries} entries, {ledger_report.postings} postings, "
                  f"{ledger_report.accounts} accounts)")
            return 0
        for finding in ledger_report.findings:
            print(f"ledger check: {finding.check}: {finding.detail}", file=sys.stderr)
        return 1
    finally:
        db.dispose()


if __name__ == "__main__":
    sys.exit(main())

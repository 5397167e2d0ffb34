"""The ledger check (``tw ledger check``): the journal's invariants, read back from the database.

``check_ledger`` lists what it finds (see its docstring) as values, amounts in
major units (``-5.00 EUR``), for people and ``--json``. Posting lives in
``ledger``, which re-exports these names; this module only reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from transfer_wallet.db import Database
from transfer_wallet.models import Account, Entry, Posting, table_of
from transfer_wallet.money import Money, currency

_accounts = table_of(Account)
_entries = table_of(Entry)
_postings = table_of(Posting)



def derived_balance(connection: Connection, account_id: int) -> int:
    """Sum of an account's postings (the balance of an uncached account)."""
    return int(
        connection.execute(
            select(func.coalesce(func.sum(_postings.c.amount_minor), 0)).where(_postings.c.account_id == account_id)
        ).scalar_one()
    )


def _major(amount_minor: int, code: str) -> str:
    """``amount_minor`` of currency ``code`` as people read it: ``-5.00 EUR`` (a code not known stays minor)."""
    try:
        return f"{Money(int(amount_minor), currency(code)).format()} {code}"
    except Exception:  # an unknown code in a damaged ledger: still report the finding, in minor units
        return f"{amount_minor} (minor units) {code}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One violated invariant, for people and for ``--json``."""

    check: str
    detail: str


@dataclass(frozen=True, slots=True)
class LedgerReport:
    """What ``tw ledger check`` found; ``clean`` when there are no findings."""

    entries: int
    postings: int
    accounts: int
    findings: tuple[Finding, ...]
    totals: dict[str, int]

    @property
    def clean(self) -> bool:
        return not self.findings


def check_ledger(db: Database, *, limit: int = 100) -> LedgerReport:
    """Prove the invariants; returns findings as values, never raises per row.

    - every entry has postings and balances per currency;
    - every posting is in its account's currency;
    - every cached balance equals the sum of its postings and is >= 0;
    - uncached accounts keep 0 in the cached column;
    - each currency totals zero over the whole ledger;
    - no locked money without an open session (locked = money of open sessions).
    """

    def work(connection: Connection) -> LedgerReport:
        findings: list[Finding] = []
        per_entry = (
            select(_postings.c.entry_id, _postings.c.currency, func.sum(_postings.c.amount_minor).label("total"))
            .group_by(_postings.c.entry_id, _postings.c.currency)
            .having(func.sum(_postings.c.amount_minor) != 0)
            .limit(limit)
        )
        findings += [Finding("entry_balanced", f"entry {r.entry_id} sums to {_major(r.total, r.currency)}")
                     for r in connection.execute(per_entry)]
        no_postings = (
            select(_entries.c.id)
            .where(~select(_postings.c.id).where(_postings.c.entry_id == _entries.c.id).exists())
            .limit(limit)
        )
        findings += [Finding("entry_has_postings", f"entry {r.id} has no postings") for r in connection.execute(no_postings)]
        wrong_ccy = (
            select(_postings.c.id, _postings.c.currency, _accounts.c.code, _accounts.c.currency.label("account_currency"))
            .join(_accounts, _accounts.c.id == _postings.c.account_id)
            .where(_postings.c.currency != _accounts.c.currency)
            .limit(limit)
        )
        findings += [Finding("posting_currency", f"posting {r.id} in {r.currency} on {r.code} ({r.account_currency})")
                     for r in connection.execute(wrong_ccy)]
        sums = (
            select(_postings.c.account_id, func.sum(_postings.c.amount_minor).label("total"))
            .group_by(_postings.c.account_id)
            .subquery()
        )
        balances = select(
            _accounts.c.code, _accounts.c.currency, _accounts.c.cached, _accounts.c.balance_minor,
            func.coalesce(sums.c.total, 0).label("total"),
        ).outerjoin(sums, sums.c.account_id == _accounts.c.id)
        account_count = 0
        for r in connection.execute(balances):
            account_count += 1
            if r.cached and r.balance_minor != r.total:
                findings.append(Finding("cached_balance", f"{r.code} caches {_major(r.balance_minor, r.currency)} but its postings sum to {_major(r.total, r.currency)}"))
            if r.cached and r.balance_minor < 0:
                findings.append(Finding("balance_floor", f"{r.code} is negative ({_major(r.balance_minor, r.currency)})"))
            if not r.cached and r.balance_minor != 0:
                findings.append(Finding("uncached_zero", f"{r.code} has a cached balance {_major(r.balance_minor, r.currency)}"))
        totals = {
            r.currency: int(r.total)
            for r in connection.execute(
                select(_postings.c.currency, func.sum(_postings.c.amount_minor).label("total")).group_by(_postings.c.currency)
            )
        }
        findings += [Finding("currency_total", f"{ccy} totals {_major(total, ccy)}, not 0") for ccy, total in sorted(totals.items()) if total]
        findings += _locked_money_findings(connection, limit)
        entry_count = connection.execute(select(func.count()).select_from(_entries)).scalar_one()
        posting_count = connection.execute(select(func.count()).select_from(_postings)).scalar_one()
        return LedgerReport(entry_count, posting_count, account_count, tuple(findings[:limit]), totals)

    return db.transaction(work, readonly=True)


def _locked_money_findings(connection: Connection, limit: int) -> list[Finding]:
    """No locked money without an open session: each player's locked balance equals the
    money of their sessions that are still opening, active or closing."""
    from transfer_wallet.models import OPEN_STATES, GameSession

    sessions = table_of(GameSession)
    open_money = (
        select(sessions.c.player_id, func.sum(sessions.c.amount_in_minor).label("total"))
        .where(sessions.c.status.in_(OPEN_STATES))
        .group_by(sessions.c.player_id)
        .subquery()
    )
    rows = connection.execute(
        select(_accounts.c.code, _accounts.c.currency, _accounts.c.balance_minor,
               func.coalesce(open_money.c.total, 0).label("open_total"))
        .outerjoin(open_money, open_money.c.player_id == _accounts.c.player_id)
        .where(_accounts.c.kind == "player_locked")
        .where(_accounts.c.balance_minor != func.coalesce(open_money.c.total, 0))
        .limit(limit)
    ).all()
    return [Finding("locked_money", f"{r.code} holds {_major(r.balance_minor, r.currency)} but open sessions hold {_major(r.open_total, r.currency)}") for r in rows]

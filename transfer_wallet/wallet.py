"""Players and the operator's main wallet: create, deposit, withdraw, balances.

Every money movement is one idempotent ledger entry in one unit of work:

- deposit:  cashier:CCY -> player:P:main   (key ``cashier:REF``)
- withdraw: player:P:main -> cashier:CCY   (key ``cashier:REF``; never below zero)
- transfer: between two players' main wallets in the same currency

Locking money (main -> locked) belongs to the session manager alone
(``transfer_wallet.sessions``): locked money always belongs to an open session.

A cashier reference names one cashier transaction: reusing it for another
amount, player or direction is a conflict, never a second movement.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from transfer_wallet import ledger
from transfer_wallet.balances import PLAYER_ID_PATTERN as PLAYER_ID_PATTERN
from transfer_wallet.balances import Balance, read_balance, validate_player_id
from transfer_wallet.db import Database
from transfer_wallet.dbapi import run_on
from transfer_wallet.errors import IdempotencyConflictError, NotFoundError, ValidationError
from transfer_wallet.models import CASHIER, Account, Player, table_of, utc_now
from transfer_wallet.money import Money, currency

_players = table_of(Player)
_accounts = table_of(Account)

REFERENCE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}")


@dataclass(frozen=True, slots=True)
class WalletResult:
    """The outcome of a money movement (or of its replay)."""

    entry_id: int
    reference: str
    replayed: bool
    available_after: Money
    """The available balance right after the first execution (identical on every replay)."""
    balance: Balance
    """The balance now."""

    def as_dict(self) -> dict[str, object]:
        return {
            "entry_id": self.entry_id,
            "reference": self.reference,
            "replayed": self.replayed,
            "available_after": self.available_after.format(),
            **self.balance.as_dict(),
        }


def validate_reference(reference: str) -> str:
    """``reference`` if the whole of it is a valid cashier reference or key, else ``ValidationError``."""
    if not isinstance(reference, str) or not REFERENCE_PATTERN.fullmatch(reference):
        raise ValidationError(
            f"invalid reference {reference!r}: 1-128 letters, digits or . _ : / @ -, starting with a letter or digit"
        )
    return reference


class Wallet:
    """The main-wallet service. Takes primitives or ``Money``; returns value objects."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- players ------------------------------------------------------------------------------

    def create_player(self, player_id: str, currency_code: str) -> Balance:
        """Create a player with a main wallet in ``currency_code``.

        Creating the same player again with the same currency is a no-op (safe to
        retry); with another currency it is an ``IdempotencyConflictError``.
        """
        validate_player_id(player_id)
        ccy = currency(currency_code)

        def work(connection: Connection) -> Balance:
            existing = connection.execute(select(_players.c.currency).where(_players.c.id == player_id)).scalar()
            if existing is None:
                inserted = connection.execute(
                    ledger._insert_ignore(connection, _players, ["id"])
                    .values(id=player_id, currency=ccy.code, created_at=utc_now())
                    .returning(_players.c.id)
                ).scalar()
                if inserted is not None:
                    ledger.create_player_accounts(connection, player_id, ccy.code)
                    return Balance(player_id, Money.zero(ccy), Money.zero(ccy))
                existing = connection.execute(select(_players.c.currency).where(_players.c.id == player_id)).scalar_one()
            if existing != ccy.code:
                raise IdempotencyConflictError(f"player '{player_id}' already exists with currency {existing}")
            return self._balance(connection, player_id)

        return self.db.transaction(work)

    def balance(self, player_id: str) -> Balance:
        """Available, locked and total money of a player."""
        validate_player_id(player_id)
        return self.db.transaction(lambda connection: self._balance(connection, player_id), readonly=True)

    def players(self, *, limit: int = 1000, offset: int = 0) -> list[Balance]:
        """Balances of up to ``limit`` players, by id, after skipping ``offset``."""
        page = select(_players.c.id).order_by(_players.c.id).limit(limit).offset(max(0, offset))

        def work(connection: Connection) -> list[Balance]:
            rows = connection.execute(
                select(_accounts.c.player_id, _accounts.c.kind, _accounts.c.currency, _accounts.c.balance_minor)
                .where(_accounts.c.player_id.in_(page))
                .order_by(_accounts.c.player_id)
            ).all()
            by_player: dict[str, dict[str, Money]] = {}
            for row in rows:
                by_player.setdefault(row.player_id, {})[row.kind] = Money(row.balance_minor, currency(row.currency))
            return [Balance(p, kinds["player_main"], kinds["player_locked"]) for p, kinds in by_player.items()]

        return self.db.transaction(work, readonly=True)

    def player_count(self) -> int:
        """How many players there are (what ``players`` pages through)."""
        query = select(func.count()).select_from(_players)
        return int(self.db.transaction(lambda connection: connection.execute(query).scalar_one(), readonly=True))

    @staticmethod
    def _balance(connection: Connection, player_id: str) -> Balance:
        """The balance read in the caller's unit of work (the one query, ``balances.read_balance``)."""
        return run_on(connection, lambda cursor: read_balance(cursor, player_id))

    # -- money movements ----------------------------------------------------------------------

    def deposit(self, player_id: str, amount: Money | str, *, reference: str | None = None) -> WalletResult:
        """Cashier deposit into the player's main wallet, idempotent by ``reference``."""
        return self._cashier("deposit", player_id, amount, reference)

    def withdraw(self, player_id: str, amount: Money | str, *, reference: str | None = None) -> WalletResult:
        """Cashier withdrawal from the available balance, idempotent by ``reference``."""
        return self._cashier("withdraw", player_id, amount, reference)

    def _cashier(self, direction: str, player_id: str, amount: Money | str, reference: str | None) -> WalletResult:
        validate_player_id(player_id)
        reference = validate_reference(reference) if reference is not None else f"auto-{uuid.uuid4()}"

        def work(connection: Connection) -> WalletResult:
            ccy_code, main, locked = ledger.player_accounts(self.db, connection, player_id)
            money = _as_money(amount, ccy_code, player_id)
            cashier = ledger.system_account(self.db, connection, CASHIER, ccy_code)
            sign = 1 if direction == "deposit" else -1
            legs = [ledger.Leg(main, sign * money.amount_minor), ledger.Leg(cashier, -sign * money.amount_minor)]
            posted = ledger.post(
                connection, kind=direction, idempotency_key=f"cashier:{reference}", legs=legs,
                request={"player_id": player_id}, report=[locked],
            )
            return self._result(posted, reference, player_id, main, locked,
                                lambda: self._balance(connection, player_id))

        return self.db.transaction(work)

    @staticmethod
    def _result(
        posted: ledger.Posted,
        reference: str,
        player_id: str,
        main: ledger.AccountRef,
        locked: ledger.AccountRef,
        balance_now: Callable[[], Balance],
    ) -> WalletResult:
        """The result from the posting's own balances when it moved both accounts, else ``balance_now()``."""
        ccy = currency(main.currency)
        after = posted.balances_after
        if not posted.replayed and main.id in after and locked.id in after:
            balance = Balance(player_id, Money(after[main.id], ccy), Money(after[locked.id], ccy))
        else:
            balance = balance_now()
        return WalletResult(posted.entry_id, reference, posted.replayed, Money(after[main.id], ccy), balance)

    def transfer(self, from_player: str, to_player: str, amount: Money | str, *, reference: str) -> WalletResult:
        """Move money between two players' main wallets (same currency); returns the payer's balance.

        The posting is a unit of work of its own on the driver (``Database.on_driver``): on
        PostgreSQL one round trip, in autocommit. The accounts come from the cache (read
        once per player); a replay also reads the balance as it is now (a second statement).
        """
        validate_player_id(from_player)
        validate_player_id(to_player)
        validate_reference(reference)
        if from_player == to_player:
            raise ValidationError("a transfer needs two different players")
        ccy_code, payer, payer_locked = ledger.cached_player_accounts(self.db, from_player)
        payee_ccy, payee, _ = ledger.cached_player_accounts(self.db, to_player)
        if payee_ccy != ccy_code:
            raise ValidationError(f"players' currencies differ ({ccy_code} vs {payee_ccy})")
        money = _as_money(amount, ccy_code, from_player)
        legs = [ledger.Leg(payer, -money.amount_minor), ledger.Leg(payee, money.amount_minor)]

        def work(cursor: Any) -> WalletResult:
            posted = ledger.post(cursor, kind="transfer", idempotency_key=f"transfer:{reference}", legs=legs,
                                 report=[payer_locked])
            return self._result(posted, reference, from_player, payer, payer_locked,
                                lambda: read_balance(cursor, from_player))

        return self.db.on_driver(work)


def _as_money(amount: Money | str, currency_code: str, player_id: str) -> Money:
    """A positive amount in the player's currency (parsed if given as text)."""
    if isinstance(amount, Money):
        if amount.currency.code != currency_code:
            raise ValidationError(
                f"amount is in {amount.currency.code} but player '{player_id}' holds {currency_code}"
            )
        if amount.amount_minor <= 0:
            raise ValidationError("amount must be positive")
        return amount
    return Money.parse(amount, currency_code)


__all__ = ["Balance", "Wallet", "WalletResult", "validate_player_id"]

"""A player's balance: the value object, the player-id check and the one query that reads it.

Light on purpose (no SQLAlchemy): ``tw wallet balance`` runs :func:`read_balance` on a
plain driver cursor (``transfer_wallet.dbapi``), and ``Wallet`` runs the same function
on the driver connection under its unit of work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from transfer_wallet.dbapi import execute
from transfer_wallet.errors import NotFoundError, ValidationError
from transfer_wallet.money import Currency, Money, currency

PLAYER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")

#: A player's accounts: main (available) and locked (in open sessions).
BALANCE_SQL = "SELECT kind, currency, balance_minor FROM accounts WHERE player_id = ?"


@dataclass(frozen=True, slots=True)
class Balance:
    """A player's money: available to play or withdraw, locked in open sessions, and the total."""

    player_id: str
    available: Money
    locked: Money

    @property
    def currency(self) -> Currency:
        return self.available.currency

    @property
    def total(self) -> Money:
        return self.available + self.locked

    def as_dict(self) -> dict[str, str]:
        return {
            "player_id": self.player_id,
            "currency": self.currency.code,
            "available": self.available.format(),
            "locked": self.locked.format(),
            "total": self.total.format(),
        }


def validate_player_id(player_id: str) -> str:
    """``player_id`` if the whole of it is a valid player id, else ``ValidationError`` (value quoted)."""
    if not isinstance(player_id, str) or not PLAYER_ID_PATTERN.fullmatch(player_id):
        raise ValidationError(
            f"invalid player id {player_id!r}: 1-64 letters, digits or . _ : @ -, starting with a letter or digit"
        )
    return player_id


def read_balance(cursor: Any, player_id: str) -> Balance:
    """The player's balance, read on a DBAPI ``cursor`` in the caller's transaction; ``NotFoundError`` if unknown."""
    rows = execute(cursor, BALANCE_SQL, (player_id,)).fetchall()
    kinds = {kind: Money(balance_minor, currency(code)) for kind, code, balance_minor in rows}
    if "player_main" not in kinds:
        raise NotFoundError(f"unknown player '{player_id}'")
    return Balance(player_id, kinds["player_main"], kinds["player_locked"])

"""The ``Provider`` protocol and the value objects it returns.

A provider is a game studio (or its aggregator) that keeps a *game wallet* per
player. The operator moves money in (``transfer_in``) and back out
(``transfer_out``), and reads balances, transfer outcomes, game history, the game
list and the provider's health. Every implementation — the HTTP adapter
(``providers.http.HttpProvider``), the in-process fake
(``providers.fake.InMemoryProvider``) — speaks this protocol, so services never
talk HTTP themselves.

Failures are exceptions of the tree in ``transfer_wallet.errors``::

    OutcomeUnknownError                     we cannot tell whether it was applied: NOT a failure
    ProviderError
    ├── ProviderRefusedError                definitive: not applied, never will be under this id
    │   ├── AuthenticationFailedError       401, never retried
    │   ├── ProviderInsufficientFundsError  402, never retried
    │   ├── RejectedError                   other 4xx, or a transfer answer whose state is FAILED
    │   └── TransferConflictError           409: same transfer id, different content
    └── ProviderTransientError              may pass: retried with backoff
        ├── RateLimitedError                429 (retry_after_s)
        └── ProviderUnavailableError        5xx / network / timeout

Identifiers are checked by a full match (``check_identifier``): a trailing newline is not
part of an id.

Amounts are ``Money`` (integer minor units); times are timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from transfer_wallet.errors import ValidationError
from transfer_wallet.money import Currency, Money

#: Transfer ids, player ids and game ids: printable, no spaces, at most 64 characters.
IDENTIFIER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")


class Direction(str, enum.Enum):
    """Which way a transfer moves money, seen from the game wallet."""

    IN = "IN"  # operator main wallet -> provider game wallet
    OUT = "OUT"  # provider game wallet -> operator main wallet


class TransferState(str, enum.Enum):
    """What the provider knows about a transfer id."""

    APPLIED = "APPLIED"  # money moved, exactly once
    FAILED = "FAILED"  # refused definitively (e.g. insufficient funds); nothing moved
    NOT_FOUND = "NOT_FOUND"  # the provider never saw this id: nothing moved


class ProviderState(str, enum.Enum):
    """Health a provider reports about itself."""

    UP = "UP"
    DEGRADED = "DEGRADED"
    MAINTENANCE = "MAINTENANCE"


@dataclass(frozen=True, slots=True)
class TransferResult:
    """An applied transfer: what moved and the game balance right after it.

    ``amount`` is what actually moved (for a withdraw-all, the whole balance);
    ``replayed`` is true when the provider answered from its idempotency store.
    """

    transfer_id: str
    provider_tx_id: str
    player_id: str
    direction: Direction
    amount: Money
    balance_after: Money
    created_at: dt.datetime
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class TransferStatus:
    """The provider's view of one transfer id (``NOT_FOUND``: the other fields are None)."""

    transfer_id: str
    state: TransferState
    direction: Direction | None = None
    player_id: str | None = None
    amount: Money | None = None
    provider_tx_id: str | None = None
    created_at: dt.datetime | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class Round:
    """One game round of a player: stake, win and refund, in the game-wallet currency."""

    round_id: str
    player_id: str
    game_id: str
    bet: Money
    win: Money
    refund: Money
    started_at: dt.datetime
    ended_at: dt.datetime

    @property
    def net(self) -> Money:
        """What the round changed in the game balance: ``win + refund - bet``."""
        return self.win + self.refund - self.bet


@dataclass(frozen=True, slots=True)
class Game:
    """An entry of the provider's game catalogue."""

    game_id: str
    name: str
    category: str


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """The provider's health as it reports it."""

    provider: str
    state: ProviderState
    currency: str
    server_time: dt.datetime
    version: str = ""


@runtime_checkable
class Provider(Protocol):
    """What the session manager needs from a game provider.

    Transfers are idempotent by ``transfer_id``: the same id with the same content
    returns the first result and moves no money again; the same id with different
    content raises ``TransferConflictError``. ``OutcomeUnknownError`` means "ask
    ``transfer_status`` later", never "it failed".
    """

    name: str

    def transfer_in(self, transfer_id: str, player_id: str, amount: Money) -> TransferResult:
        """Move ``amount`` into the player's game wallet."""
        ...

    def transfer_out(self, transfer_id: str, player_id: str, amount: Money | None) -> TransferResult:
        """Move ``amount`` (``None``: everything) out of the game wallet; returns what moved."""
        ...

    def balance(self, player_id: str) -> Money:
        """The player's game-wallet balance (zero for a player the provider never saw)."""
        ...

    def transfer_status(self, transfer_id: str) -> TransferStatus:
        """What happened to ``transfer_id`` (APPLIED, FAILED or NOT_FOUND)."""
        ...

    def rounds(self, player_id: str, since: dt.datetime, *, limit: int = 500) -> list[Round]:
        """The player's rounds that ended at or after ``since`` (oldest first, at most ``limit``)."""
        ...

    def games(self) -> list[Game]:
        """The game catalogue."""
        ...

    def status(self) -> ProviderStatus:
        """The provider's health."""
        ...


def check_identifier(value: str, what: str) -> str:
    """``value`` if it is a valid wire identifier, else ``ValidationError`` naming ``what``."""
    if not isinstance(value, str) or not IDENTIFIER_RE.fullmatch(value):
        raise ValidationError(
            f"{what} must be 1-64 characters of letters, digits and . _ : @ - (got {value!r:.70})"
        )
    return value


def check_transfer_request(
    provider: str, unit: Currency, direction: Direction, transfer_id: str, player_id: str, amount: Money | None
) -> None:
    """``ValidationError`` unless the ids are valid and ``amount`` is positive, in ``unit``, and given for IN."""
    check_identifier(transfer_id, "transfer id")
    check_identifier(player_id, "player id")
    if amount is None:
        if direction is Direction.IN:
            raise ValidationError("transfer_in needs an amount")
        return
    if amount.currency != unit:
        raise ValidationError(f"{provider} game wallets are in {unit.code}, not {amount.currency.code}")
    if amount.amount_minor <= 0:
        raise ValidationError("transfer amount must be positive")


def transfer_fingerprint(direction: Direction, player_id: str, amount_minor: int | None, currency: str) -> str:
    """The content of a transfer request that its id must always come with (idempotency check)."""
    amount = "ALL" if amount_minor is None else str(amount_minor)
    return f"{direction.value}|{player_id}|{amount}|{currency}"


def utc(value: dt.datetime) -> dt.datetime:
    """``value`` as an aware UTC datetime; naive datetimes are a programmer error."""
    if value.tzinfo is None:
        raise ValidationError("datetimes must be timezone-aware (UTC)")
    return value.astimezone(dt.timezone.utc)

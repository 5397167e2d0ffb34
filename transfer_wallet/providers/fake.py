"""``InMemoryProvider``: an exact in-process provider, no HTTP, for tests and benchmarks.

It keeps game wallets in dicts and behaves like the simulator: idempotent by
transfer id (same content replays the first result, different content raises
``TransferConflictError``), 402 when a withdrawal exceeds the game balance (the
failure is stored and replayed too), withdraw-all with ``amount=None``.

Failures are scriptable so a caller can reproduce exact sequences::

    fake.fail_next(OutcomeUnknownError("lost"), apply=True)   # applied, caller sees unknown
    fake.fail_next(ProviderUnavailableError("down"))          # not applied
    fake.fail_next(RateLimitedError("slow", 2.0), operations={"balance"}, times=3)
    fake.script_status("s1-in", TransferStatus("s1-in", TransferState.FAILED, ...))  # next answer(s) of transfer_status

Every call is appended to ``calls`` as ``(operation, *arguments)``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from transfer_wallet.errors import ProviderInsufficientFundsError, TransferConflictError, ValidationError
from transfer_wallet.money import Currency, Money, currency
from transfer_wallet.providers.protocol import (
    Direction,
    Game,
    ProviderState,
    ProviderStatus,
    Round,
    TransferResult,
    TransferState,
    TransferStatus,
    check_transfer_request,
    transfer_fingerprint,
    utc,
)

TRANSFERS = frozenset({"transfer_in", "transfer_out"})


@dataclass
class _Script:
    error: Exception
    apply: bool
    operations: frozenset[str]


@dataclass
class _Stored:
    fingerprint: str
    status: TransferStatus
    result: TransferResult | None  # None: FAILED


@dataclass(eq=False)
class InMemoryProvider:
    """A ``Provider`` held in memory. Thread-safe; ``clock`` returns aware UTC datetimes."""

    name: str = "fake"
    currency_code: str = "EUR"
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.timezone.utc), repr=False)
    state: ProviderState = ProviderState.UP
    calls: list[tuple[object, ...]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._currency: Currency = currency(self.currency_code)
        self._wallets: dict[str, int] = {}
        self._transfers: dict[str, _Stored] = {}
        self._rounds: list[Round] = []
        self._scripts: deque[_Script] = deque()
        self._status_scripts: dict[str, deque[TransferStatus]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # -- scripting -------------------------------------------------------------------------

    def fail_next(
        self, error: Exception, *, apply: bool = False, operations: Iterable[str] = TRANSFERS, times: int = 1
    ) -> None:
        """Raise ``error`` on the next ``times`` calls of ``operations``; ``apply`` first if asked."""
        for _ in range(times):
            self._scripts.append(_Script(error, apply, frozenset(operations)))

    def script_status(self, transfer_id: str, *answers: TransferStatus) -> None:
        """Answer the next ``transfer_status(transfer_id)`` calls with ``answers``, in order.

        Once they are used up, ``transfer_status`` tells the truth again. The answers
        are returned as given (they may even name another transfer), so a test can
        reproduce what a wrong or lying provider says.
        """
        with self._lock:
            self._status_scripts.setdefault(transfer_id, deque()).extend(answers)

    def play(self, player_id: str, bet: Money, win: Money, refund: Money | None = None, game_id: str = "fake-slot") -> Round:
        """Record a round: ``-bet + win + refund`` on the game balance (402 if the bet exceeds it)."""
        refund = refund or Money.zero(self._currency)
        with self._lock:
            self._require_currency(bet, win, refund)
            balance = self._wallets.get(player_id, 0)
            if bet.amount_minor > balance:
                raise ProviderInsufficientFundsError(f"{self.name}: bet {bet} exceeds game balance")
            now = utc(self.clock())
            item = Round(f"{self.name}-r{next(self._ids)}", player_id, game_id, bet, win, refund, now, now)
            self._wallets[player_id] = balance + item.net.amount_minor
            self._rounds.append(item)
            return item

    # -- the Provider protocol -------------------------------------------------------------

    def transfer_in(self, transfer_id: str, player_id: str, amount: Money) -> TransferResult:
        """Move ``amount`` into the game wallet."""
        return self._transfer("transfer_in", Direction.IN, transfer_id, player_id, amount)

    def transfer_out(self, transfer_id: str, player_id: str, amount: Money | None) -> TransferResult:
        """Move ``amount`` (``None``: everything) out of the game wallet."""
        return self._transfer("transfer_out", Direction.OUT, transfer_id, player_id, amount)

    def balance(self, player_id: str) -> Money:
        """The game balance (zero for an unknown player)."""
        with self._lock:
            self._enter("balance", player_id)
            return Money(self._wallets.get(player_id, 0), self._currency)

    def transfer_status(self, transfer_id: str) -> TransferStatus:
        """APPLIED / FAILED / NOT_FOUND (or the next scripted answer, see ``script_status``)."""
        with self._lock:
            self._enter("transfer_status", transfer_id)
            scripted = self._status_scripts.get(transfer_id)
            if scripted:
                return scripted.popleft()
            stored = self._transfers.get(transfer_id)
            return stored.status if stored else TransferStatus(transfer_id, TransferState.NOT_FOUND)

    def rounds(self, player_id: str, since: dt.datetime, *, limit: int = 500) -> list[Round]:
        """Rounds of ``player_id`` ended at or after ``since``."""
        with self._lock:
            self._enter("rounds", player_id, since)
            since = utc(since)
            return [r for r in self._rounds if r.player_id == player_id and r.ended_at >= since][:limit]

    def games(self) -> list[Game]:
        """A fixed two-game catalogue."""
        with self._lock:
            self._enter("games")
            return [Game("fake-slot", "Fake Slot", "slots"), Game("fake-roulette", "Fake Roulette", "table")]

    def status(self) -> ProviderStatus:
        """``state`` as set on the instance."""
        with self._lock:
            self._enter("status")
            return ProviderStatus(self.name, self.state, self._currency.code, utc(self.clock()), "fake-1")

    # -- internals -------------------------------------------------------------------------

    def _enter(self, operation: str, *arguments: object) -> _Script | None:
        """Log the call; raise a scripted failure, or return it if a transfer must be applied first."""
        self.calls.append((operation, *arguments))
        if self._scripts and operation in self._scripts[0].operations:
            script = self._scripts.popleft()
            if script.apply and operation in TRANSFERS:
                return script
            raise script.error  # reads have nothing to apply
        return None

    def _require_currency(self, *amounts: Money) -> None:
        for amount in amounts:
            if amount.currency != self._currency:
                raise ValidationError(f"{self.name} game wallets are in {self._currency.code}, not {amount.currency.code}")

    def _transfer(
        self, operation: str, direction: Direction, transfer_id: str, player_id: str, amount: Money | None
    ) -> TransferResult:
        check_transfer_request(self.name, self._currency, direction, transfer_id, player_id, amount)
        with self._lock:
            script = self._enter(operation, transfer_id, player_id, amount)
            result = self._apply(direction, transfer_id, player_id, amount)
            if script is not None:
                raise script.error
            return result

    def _apply(self, direction: Direction, transfer_id: str, player_id: str, amount: Money | None) -> TransferResult:
        fingerprint = transfer_fingerprint(
            direction, player_id, None if amount is None else amount.amount_minor, self._currency.code
        )
        stored = self._transfers.get(transfer_id)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise TransferConflictError(f"{self.name}: transfer {transfer_id} was used with different content")
            if stored.result is None:
                raise ProviderInsufficientFundsError(f"{self.name}: transfer {transfer_id}: insufficient game balance")
            return replace(stored.result, replayed=True)
        balance = self._wallets.get(player_id, 0)
        now = utc(self.clock())
        provider_tx_id = f"{self.name}-tx{next(self._ids)}"
        if direction is Direction.IN:
            assert amount is not None, "a transfer-in always names its amount"
            moved = amount.amount_minor
        else:
            moved = balance if amount is None else amount.amount_minor
            if moved > balance:
                failed = Money(moved, self._currency)
                status = TransferStatus(transfer_id, TransferState.FAILED, direction, player_id, failed,
                                        provider_tx_id, now, "INSUFFICIENT_FUNDS")
                self._transfers[transfer_id] = _Stored(fingerprint, status, None)
                raise ProviderInsufficientFundsError(f"{self.name}: transfer {transfer_id}: insufficient game balance")
        balance += moved if direction is Direction.IN else -moved
        self._wallets[player_id] = balance
        moved_money = Money(moved, self._currency)
        result = TransferResult(transfer_id, provider_tx_id, player_id, direction, moved_money,
                                Money(balance, self._currency), now)
        status = TransferStatus(transfer_id, TransferState.APPLIED, direction, player_id, moved_money, provider_tx_id, now)
        self._transfers[transfer_id] = _Stored(fingerprint, status, result)
        return result

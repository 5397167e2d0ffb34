"""transfer-wallet: a transfer-wallet ledger for casino operators and their game providers.

Small public API (everything else is internal and may change)::

    import transfer_wallet as tw

    db = tw.open_database("sqlite:///transfer_wallet.db")   # or postgresql://...
    tw.upgrade(db)                                           # apply migrations
    wallet = tw.Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", tw.Money.parse("20.00", "EUR"), reference="dep-1")
    wallet.balance("P1").available                           # Money(2000, EUR)

    sessions = tw.SessionManager(db, {"acme": provider}, {"acme": tw.SessionPolicy("EUR")})
    view = sessions.open_session("P1", "acme", "10.00", key="open-1")   # provider: any tw.Provider
    tw.PlayMirror(db).bet(view.id, "bet-1", "round-1", "2.00")
    sessions.close_session(view.id)
    assert tw.check_ledger(db).clean

    with tw.open_runtime(db, "providers.toml") as runtime:      # HTTP clients from the providers file
        view = runtime.sessions.open_session("P1", "acme", "10.00", key="open-2")

Errors all derive from ``tw.TransferWalletError`` (see ``transfer_wallet.errors``).
Imports are lazy so that ``import transfer_wallet`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Balance": "transfer_wallet.wallet",
    "ConcurrencyError": "transfer_wallet.errors",
    "ConfigError": "transfer_wallet.errors",
    "Conversion": "transfer_wallet.money",
    "Currency": "transfer_wallet.money",
    "Database": "transfer_wallet.db",
    "DiscrepancyView": "transfer_wallet.discrepancies",
    "IdempotencyConflictError": "transfer_wallet.errors",
    "InsufficientFundsError": "transfer_wallet.errors",
    "InvalidStateError": "transfer_wallet.errors",
    "LimitExceededError": "transfer_wallet.errors",
    "LedgerReport": "transfer_wallet.ledger",
    "Money": "transfer_wallet.money",
    "MoneyError": "transfer_wallet.money",
    "NotFoundError": "transfer_wallet.errors",
    "OutcomeUnknownError": "transfer_wallet.errors",
    "PlayMirror": "transfer_wallet.play",
    "Provider": "transfer_wallet.providers.protocol",
    "ProviderError": "transfer_wallet.errors",
    "ProviderRefusedError": "transfer_wallet.errors",
    "ProviderTransientError": "transfer_wallet.errors",
    "Runtime": "transfer_wallet.runtime",
    "SessionManager": "transfer_wallet.sessions",
    "SessionPolicy": "transfer_wallet.sessions",
    "SessionView": "transfer_wallet.sessions",
    "TransferWalletError": "transfer_wallet.errors",
    "ValidationError": "transfer_wallet.errors",
    "Wallet": "transfer_wallet.wallet",
    "WalletResult": "transfer_wallet.wallet",
    "check_ledger": "transfer_wallet.ledger",
    "convert": "transfer_wallet.money",
    "currency": "transfer_wallet.money",
    "open_database": "transfer_wallet.db",
    "open_runtime": "transfer_wallet.runtime",
    "set_limits": "transfer_wallet.limits",
    "upgrade": "transfer_wallet.migrations",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'transfer_wallet' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from transfer_wallet.db import Database, open_database
    from transfer_wallet.errors import (
        ConcurrencyError,
        ConfigError,
        IdempotencyConflictError,
        InsufficientFundsError,
        InvalidStateError,
        LimitExceededError,
        NotFoundError,
        OutcomeUnknownError,
        ProviderError,
        ProviderRefusedError,
        ProviderTransientError,
        TransferWalletError,
        ValidationError,
    )
    from transfer_wallet.ledger import LedgerReport, check_ledger
    from transfer_wallet.limits import set_limits
    from transfer_wallet.migrations import upgrade
    from transfer_wallet.money import Conversion, Currency, Money, MoneyError, convert, currency
    from transfer_wallet.play import PlayMirror
    from transfer_wallet.providers.protocol import Provider
    from transfer_wallet.runtime import Runtime, open_runtime
    from transfer_wallet.sessions import SessionManager, SessionPolicy, SessionView
    from transfer_wallet.wallet import Balance, Wallet, WalletResult

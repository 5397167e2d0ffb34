"""The public API is small and pinned: a change to it is a deliberate change to this test."""

from __future__ import annotations

import transfer_wallet

EXPECTED = {
    "Balance", "ConcurrencyError", "ConfigError", "Conversion", "Currency", "Database", "DiscrepancyView",
    "IdempotencyConflictError", "InsufficientFundsError", "InvalidStateError", "LedgerReport",
    "LimitExceededError", "Money", "MoneyError", "NotFoundError", "OutcomeUnknownError", "PlayMirror",
    "Provider", "ProviderError", "ProviderRefusedError", "ProviderTransientError", "Runtime", "SessionManager",
    "SessionPolicy", "SessionView", "TransferWalletError",
    "ValidationError", "Wallet", "WalletResult", "check_ledger", "convert", "currency", "open_database", "open_runtime",
    "set_limits", "upgrade",
}


def test_all_is_exactly_the_documented_api():
    assert set(transfer_wallet.__all__) == EXPECTED


def test_every_exported_name_resolves_and_is_documented():
    for name in transfer_wallet.__all__:
        value = getattr(transfer_wallet, name)
        assert value.__doc__, f"{name} has no docstring"


def test_library_errors_share_one_root():
    root = transfer_wallet.TransferWalletError
    for name in ("ConfigError", "ValidationError", "NotFoundError", "MoneyError", "IdempotencyConflictError",
                 "InsufficientFundsError", "ConcurrencyError", "OutcomeUnknownError", "ProviderError",
                 "ProviderRefusedError", "ProviderTransientError", "InvalidStateError", "LimitExceededError"):
        assert issubclass(getattr(transfer_wallet, name), root)

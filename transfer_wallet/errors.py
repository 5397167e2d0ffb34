"""The exception tree of transfer-wallet.

Every error the library raises on purpose derives from ``TransferWalletError``;
anything else is a bug. Each class says when it is raised and what the caller
should do::

    TransferWalletError
    ├── ConfigError                bad configuration (file, env var): fix the config
    ├── ValidationError            bad input (also MoneyError in money.py): show the message, change nothing
    │   └── NotFoundError          an id that does not exist (player, session, provider)
    ├── IdempotencyConflictError   same key, different request: a client bug, never retried
    ├── InsufficientFundsError     a debit larger than the available balance: tell the player
    ├── LimitExceededError         a responsible-gaming limit refuses it: tell the player which and what is left
    ├── InvalidStateError          the session/transfer is not in a state that allows this operation
    ├── ConcurrencyError           database contention outlasted the bounded retries: retry later
    ├── OutcomeUnknownError        a provider call whose outcome we cannot know: NOT a failure,
    │                              keep the money locked, the in-doubt job finishes it
    └── ProviderError              a provider refused or failed, definitively known
        ├── ProviderRefusedError   a definitive refusal: the transfer was not applied and never
        │   │                      will be under this id; a transfer-in gives the money back
        │   ├── AuthenticationFailedError      401: check credentials, never retried
        │   ├── ProviderInsufficientFundsError 402: cancel, tell the player, never retried
        │   ├── RejectedError                  other 4xx: the provider said no; do not retry
        │   └── TransferConflictError          409: same transfer id, different content
        └── ProviderTransientError a failure that may pass: retried with backoff; for a
            │                      transfer whose attempt may have applied, OutcomeUnknownError
            ├── RateLimitedError               429: back off (honour retry_after_s)
            └── ProviderUnavailableError       5xx / network / timeout
"""

from __future__ import annotations


class TransferWalletError(Exception):
    """Root of every error transfer-wallet raises on purpose."""


class ConfigError(TransferWalletError):
    """The configuration (providers file, environment variable) is invalid or incomplete."""


class ValidationError(TransferWalletError, ValueError):
    """User or caller input is invalid; nothing was written."""


class NotFoundError(ValidationError):
    """An identifier (player, session, provider, account) does not exist."""


class IdempotencyConflictError(TransferWalletError):
    """An idempotency key was reused with a different request; nothing was written."""


class InsufficientFundsError(TransferWalletError):
    """A debit exceeds the account's available balance; nothing was written."""


class LimitExceededError(TransferWalletError):
    """A responsible-gaming limit (or a self-exclusion) refuses the operation; nothing was written.

    ``limit`` names it (e.g. ``loss_week``); ``remaining_minor`` is what is still
    allowed in the player's currency (None for self-exclusion and session length).
    """

    def __init__(self, message: str, *, limit: str, remaining_minor: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.remaining_minor = remaining_minor


class InvalidStateError(TransferWalletError):
    """The session or transfer is not in a state that allows the operation (e.g. bet on a closed session)."""


class ConcurrencyError(TransferWalletError):
    """Serialization, deadlock or busy errors persisted past the bounded retries."""


class OutcomeUnknownError(TransferWalletError):
    """We cannot tell whether the provider applied a transfer.

    Never treat this as a failure: keep the funds locked and let the in-doubt
    job ask the provider (by our transfer id) and finish the transfer.
    """


class ProviderError(TransferWalletError):
    """A provider answered with a definite error (or could not be reached, for reads)."""

    status_code: int | None = None
    error_code: str | None = None  # the provider's own code, when its answer gave one


class ProviderRefusedError(ProviderError):
    """A definitive refusal (401, 402, 409, other 4xx): not applied, never will be under this id."""


class ProviderTransientError(ProviderError):
    """A failure that may pass (429, 5xx, network, timeout): retry with backoff."""


class AuthenticationFailedError(ProviderRefusedError):
    """401: the signature or key was refused. Check credentials; never retried."""

    status_code = 401


class ProviderInsufficientFundsError(ProviderRefusedError):
    """402: the provider's game wallet lacks the funds. Cancel and tell the player."""

    status_code = 402


class RateLimitedError(ProviderTransientError):
    """429: slow down; ``retry_after_s`` is the provider's Retry-After, if given."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ProviderUnavailableError(ProviderTransientError):
    """5xx, network error or timeout: retried with backoff; for a transfer, see OutcomeUnknownError."""


class RejectedError(ProviderRefusedError):
    """Another 4xx: the provider refused the request definitively. Do not retry."""


class TransferConflictError(ProviderRefusedError):
    """409: the transfer id was already used with different content."""

    status_code = 409

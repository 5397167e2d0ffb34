"""Game providers, the client side: the ``Provider`` protocol, wire format, signing, HTTP adapter, in-memory fake.

Import what the services need from here::

    from transfer_wallet.providers import Provider, HttpProvider, InMemoryProvider, TransferResult

``HttpProvider`` (httpx) is imported lazily, so importing the protocol stays cheap.
The provider simulator (the staging side) lives in ``transfer_wallet.simulator``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.providers.protocol import (
    Direction,
    Game,
    Provider,
    ProviderState,
    ProviderStatus,
    Round,
    TransferResult,
    TransferState,
    TransferStatus,
)
from transfer_wallet.providers.signing import KeyRing

if TYPE_CHECKING:  # pragma: no cover
    from transfer_wallet.providers.http import HttpProvider

__all__ = [
    "Direction",
    "Game",
    "HttpProvider",
    "InMemoryProvider",
    "KeyRing",
    "Provider",
    "ProviderState",
    "ProviderStatus",
    "Round",
    "TransferResult",
    "TransferState",
    "TransferStatus",
]


def __getattr__(name: str) -> Any:
    if name == "HttpProvider":
        from transfer_wallet.providers.http import HttpProvider

        return HttpProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Wiring for entry points: a ``SessionManager`` with an HTTP client per configured provider.

The CLI and the scheduled jobs build their services here, so that the library
itself never reads configuration files or talks HTTP directly.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from transfer_wallet.config import load_providers
from transfer_wallet.db import Database
from transfer_wallet.sessions import SessionManager, policies_from_config


@contextmanager
def session_manager(db: Database, providers_file: str | Path | None = None) -> Iterator[SessionManager]:
    """A manager talking to every provider of the providers file over HTTP; closes the clients after."""
    from transfer_wallet.providers.http import HttpProvider

    configs = load_providers(providers_file)
    clients = {name: HttpProvider(config) for name, config in configs.items()}
    try:
        yield SessionManager(db, clients, policies_from_config(configs))
    finally:
        for client in clients.values():
            client.close()

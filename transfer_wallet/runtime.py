"""Wiring for entry points: the database, an HTTP client per configured provider and a ``SessionManager``.

The CLI, the scheduled jobs and library users build their services here, so that
the rest of the library never reads configuration files or talks HTTP directly::

    import transfer_wallet as tw

    with tw.open_runtime("sqlite:///transfer_wallet.db", "providers.toml") as runtime:
        view = runtime.sessions.open_session("P1", "acme", "10.00", key="open-1")
        runtime.sessions.close_session(view.id)

Closing the runtime closes the providers' HTTP clients and the database's pool.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Iterator, Mapping

from transfer_wallet.config import DEFAULT_PROVIDERS_FILE, ProviderConfig, load_providers
from transfer_wallet.db import Database, open_database
from transfer_wallet.errors import ConfigError
from transfer_wallet.sessions import SessionManager, policies_from_config

if TYPE_CHECKING:  # pragma: no cover
    from transfer_wallet.providers.http import HttpProvider


def providers_file_path(providers_file: str | Path | None = None) -> Path:
    """The providers file to read (``providers_file``, else ``TW_PROVIDERS_FILE``, else ``./providers.toml``).

    Raises ``ConfigError`` naming the file when it does not exist: a caller that
    needs providers must never mistake a missing file for "no providers".
    """
    file = Path(providers_file or os.environ.get("TW_PROVIDERS_FILE") or DEFAULT_PROVIDERS_FILE)
    if not file.is_file():
        raise ConfigError(f"providers file '{file}' not found")
    return file


def _clients(configs: Mapping[str, ProviderConfig]) -> dict[str, HttpProvider]:
    from transfer_wallet.providers.http import HttpProvider

    return {name: HttpProvider(config) for name, config in configs.items()}


@contextmanager
def session_manager(db: Database, providers_file: str | Path | None = None) -> Iterator[SessionManager]:
    """A manager talking to every provider of the providers file over HTTP; closes the clients after.

    Like ``load_providers``, a missing default file means no providers (a sweep
    with nothing to call); callers that need providers check with ``providers_file_path``.
    """
    configs = load_providers(providers_file)
    clients = _clients(configs)
    try:
        yield SessionManager(db, clients, policies_from_config(configs))
    finally:
        for client in clients.values():
            client.close()


@dataclass
class Runtime:
    """What a library user needs to run sessions: the database, provider clients and a ``SessionManager``.

    Use it as a context manager (or call ``close()``): it closes the HTTP clients
    and, when it opened the database itself, the database's connection pool.
    """

    database: Database
    configs: dict[str, ProviderConfig]
    providers: dict[str, HttpProvider]
    sessions: SessionManager
    _owns_database: bool = field(default=True, repr=False)

    def close(self) -> None:
        """Close every provider client and the database pool this runtime opened (safe to repeat)."""
        for client in self.providers.values():
            client.close()
        if self._owns_database:
            self.database.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def open_runtime(database: str | Database | None = None, providers_file: str | Path | None = None) -> Runtime:
    """Open the database (a URL, an open ``Database``, or ``TW_DATABASE_URL``) and the providers file's clients.

    Raises ``ConfigError`` when the providers file does not exist or is invalid.
    The database is not migrated here: call ``transfer_wallet.upgrade`` once.
    """
    configs = load_providers(providers_file_path(providers_file))
    owns = not isinstance(database, Database)
    db = open_database(database) if not isinstance(database, Database) else database
    clients = _clients(configs)
    return Runtime(db, configs, clients, SessionManager(db, clients, policies_from_config(configs)), owns)

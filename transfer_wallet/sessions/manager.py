"""``SessionManager``: the one public facade over the session lifecycle.

Each part of the lifecycle lives in its own module and the manager is their sum::

    SessionCore (state)  ->  SessionQueries (views)  ->  Settlement  ->  Outcomes
        ->  Opening (opening)  and  Closing (closing)  ->  Sweeps (sweeps)
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable, Mapping

from transfer_wallet.models import utc_now
from transfer_wallet.sessions.opening import Opening
from transfer_wallet.sessions.state import SessionPolicy
from transfer_wallet.sessions.sweeps import Sweeps

if TYPE_CHECKING:
    from transfer_wallet.db import Database
    from transfer_wallet.providers.protocol import Provider


class SessionManager(Opening, Sweeps):
    """Opens, mirrors, closes, expires and recovers transfer sessions.

    ``providers`` maps a provider name to its ``Provider`` (HTTP client, simulator
    client or in-process fake) and ``policies`` to its ``SessionPolicy``.
    """

    def __init__(
        self,
        db: Database,
        providers: Mapping[str, Provider],
        policies: Mapping[str, SessionPolicy],
        *,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.db = db
        self.providers = providers
        self.policies = policies
        self.clock = clock

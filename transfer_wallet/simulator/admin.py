"""``SimulatorAdmin``: the calls only the simulator serves (play, fault plan, request log).

A real provider has none of these endpoints, so they are not part of ``HttpProvider``
(the client side). The admin client composes an ``HttpProvider`` and sends through
its signed, verified, retried exchange, so signing, response verification and the
error mapping exist once::

    with SimulatorAdmin.connect(config, base_url=server.url) as admin:
        admin.set_faults(["transfer:500=0.2"], seed=7)
        rounds = admin.play("P1", 10, seed=1)

``admin.provider`` is the composed client, usable as a ``Provider`` (transfers,
balance, rounds) in the same run.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Callable, TypeVar

from transfer_wallet.config import ProviderConfig
from transfer_wallet.errors import ProviderUnavailableError
from transfer_wallet.providers import wire
from transfer_wallet.providers.http import HttpProvider
from transfer_wallet.providers.protocol import Round, check_identifier

T = TypeVar("T")


class SimulatorAdmin:
    """Simulator-only calls over a composed ``HttpProvider``; close it (or use ``with``) to free the pool."""

    def __init__(self, provider: HttpProvider) -> None:
        self.provider = provider

    @classmethod
    def connect(cls, config: ProviderConfig, **options: Any) -> SimulatorAdmin:
        """An admin client with its own ``HttpProvider(config, **options)`` (``base_url=``, ``keyring=``, ...)."""
        return cls(HttpProvider(config, **options))

    def close(self) -> None:
        """Close the composed client's connection pool."""
        self.provider.close()

    def __enter__(self) -> SimulatorAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def play(self, player_id: str, rounds: int, *, seed: int | None = None) -> list[Round]:
        """Play ``rounds`` seeded rounds over the player's game balance; the rounds played."""
        player = urllib.parse.quote(check_identifier(player_id, "player id"), safe="")
        body: dict[str, Any] = {"rounds": rounds} | ({"seed": seed} if seed is not None else {})
        # Not idempotent (a lost answer may hide played rounds): one attempt only.
        return self._send("POST", f"/v1/players/{player}/play", body, _parse_rounds, max_attempts=1)

    def set_faults(self, rules: list[str], *, seed: int | None = None) -> dict[str, Any]:
        """Replace the fault plan (``["transfer:500=0.2", ...]``); the plan now in force."""
        body: dict[str, Any] = {"rules": rules} | ({"seed": seed} if seed is not None else {})
        return self._send("POST", "/v1/admin/faults", body, dict)

    def faults(self) -> dict[str, Any]:
        """The fault plan in force: ``{"seed": ..., "rules": [...]}``."""
        return self._send("GET", "/v1/admin/faults", None, dict)

    def request_log(self) -> list[dict[str, Any]]:
        """The requests the simulator received, newest last."""
        return self._send("GET", "/v1/admin/requests", None, lambda d: list(d["requests"]))

    def _send(self, method: str, path: str, body: dict[str, Any] | None, parse: Callable[[dict[str, Any]], T],
              *, max_attempts: int | None = None) -> T:
        # HttpProvider's one exchange (sign, send, verify, retry, map errors); not copied here.
        reply = self.provider._call(method, path, body=body, max_attempts=max_attempts)  # noqa: SLF001
        try:
            return parse(wire.loads(reply.body))
        except (wire.WireError, KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailableError(f"{self.provider.name}: {method} {path}: unreadable response ({exc})") from exc


def _parse_rounds(document: dict[str, Any]) -> list[Round]:
    return [wire.parse_round(r) for r in document["rounds"]]

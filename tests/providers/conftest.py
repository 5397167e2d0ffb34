"""Fixtures of the provider tests: secrets in the environment, the sample providers,
a real simulator on an ephemeral loopback port, clients with controlled sleep, and
a signed ``httpx.MockTransport`` for the fine-grained retry tests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from transfer_wallet.config import ProviderConfig, load_providers
from transfer_wallet.money import Money, currency
from transfer_wallet.providers.http import HttpProvider
from transfer_wallet.providers.signing import HEADER_KEY_ID, HEADER_REQUEST_ID, KeyRing, sign_response
from transfer_wallet.simulator import FaultPlan, SimulatorServer
from transfer_wallet.simulator.admin import SimulatorAdmin

SAMPLE_PROVIDERS = Path(__file__).resolve().parents[2] / "sample_data" / "providers.toml"
SECRETS = {
    "TW_ACME_SECRET_2026_09": "acme-old-secret-Zq81nb",
    "TW_ACME_SECRET_2026_11": "acme-new-secret-Kx93vm",
    "TW_BETSUL_SECRET_K1": "betsul-secret-Pw55ty",
}


def eur(text: str) -> Money:
    """Euros from a major-unit string."""
    return Money.parse(text, currency("EUR"), allow_zero=True)


def brl(text: str) -> Money:
    """Reais from a major-unit string."""
    return Money.parse(text, currency("BRL"), allow_zero=True)


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The three sample secrets, set in the environment for this test only."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return dict(SECRETS)


@pytest.fixture
def providers(secrets_env: dict[str, str]) -> dict[str, ProviderConfig]:
    """The sample providers with short timeouts and a small retry budget."""
    loaded = load_providers(SAMPLE_PROVIDERS)
    return {
        name: dataclasses.replace(p, read_timeout_s=2.0, connect_timeout_s=1.0, max_attempts=3, max_retry_s=5.0)
        for name, p in loaded.items()
    }


@pytest.fixture
def acme(providers: dict[str, ProviderConfig]) -> ProviderConfig:
    return providers["acme"]


@pytest.fixture
def betsul(providers: dict[str, ProviderConfig]) -> ProviderConfig:
    return providers["betsul"]


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[Callable[..., SimulatorServer]]:
    """Factory: a started simulator for a config on 127.0.0.1:0 with a tmp store; stopped at teardown."""
    started: list[SimulatorServer] = []

    def start(config: ProviderConfig, **options: Any) -> SimulatorServer:
        options.setdefault("faults", FaultPlan())
        server = SimulatorServer(config, tmp_path / f"sim-{config.name}-{len(started)}.db", port=0, **options)
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def simulator(start_simulator: Callable[..., SimulatorServer], acme: ProviderConfig) -> SimulatorServer:
    """The acme simulator, no faults."""
    return start_simulator(acme)


@pytest.fixture
def sleeps() -> list[float]:
    """Backoff sleeps the clients asked for (nobody really sleeps)."""
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., HttpProvider]]:
    """Factory: an ``HttpProvider`` whose backoff sleeps are recorded instead of slept."""
    clients: list[HttpProvider] = []

    def make(config: ProviderConfig, server: SimulatorServer | None = None, **options: Any) -> HttpProvider:
        options.setdefault("sleep", sleeps.append)
        if server is not None:
            options.setdefault("base_url", server.url)
        client = HttpProvider(config, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., HttpProvider], acme: ProviderConfig, simulator: SimulatorServer) -> HttpProvider:
    """A client of the acme simulator."""
    return make_client(acme, simulator)


@pytest.fixture
def admin(client: HttpProvider) -> SimulatorAdmin:
    """The simulator-only calls (play, faults, request log) over ``client``."""
    return SimulatorAdmin(client)


class FakeClock:
    """Monotonic time that only moves when someone sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now_s = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def signed_response(
    ring: KeyRing, request: httpx.Request, status: int, document: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A response to ``request`` signed with ``ring`` as the simulator would sign it."""
    import time

    body = b"" if document is None else json.dumps(document).encode()
    signature = sign_response(
        ring, request.headers.get(HEADER_KEY_ID, ""), status, body, request.headers[HEADER_REQUEST_ID], now_s=time.time()
    )
    return httpx.Response(status, content=body, headers={**signature, **(headers or {})})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mock_client(acme: ProviderConfig, clock: FakeClock) -> Iterator[Callable[..., HttpProvider]]:
    """Factory: an ``HttpProvider`` over ``httpx.MockTransport(handler)`` with the fake clock."""
    import random

    clients: list[HttpProvider] = []

    def make(handler: Callable[[httpx.Request], httpx.Response], config: ProviderConfig | None = None, **options: Any) -> HttpProvider:
        options.setdefault("rng", random.Random(3))
        provider = HttpProvider(
            config or acme, transport=httpx.MockTransport(handler), sleep=clock.sleep, monotonic=clock.monotonic, **options
        )
        clients.append(provider)
        return provider

    yield make
    for provider in clients:
        provider.close()

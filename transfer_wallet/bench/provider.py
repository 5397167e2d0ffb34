"""Provider benchmark: transfers per second to the simulator, pooled vs a new connection per request.

``run_provider_benchmark`` starts its own simulator in a separate process (so the
client and the server do not share one interpreter lock) on a free loopback
port, with a throw-away store and a throw-away signing key (no environment
needed). One client process then sends ``requests`` sequential signed
transfer-ins twice: over one pooled keep-alive connection, and opening a new
connection for each request.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from transfer_wallet.bench._harness import KEY_ID, simulator_process
from transfer_wallet.config import ProviderConfig
from transfer_wallet.money import Money, currency
from transfer_wallet.providers.http import HttpProvider
from transfer_wallet.providers.signing import KeyRing

WARMUP_REQUESTS = 20


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def _run(client: HttpProvider, label: str, requests: int, rng: random.Random, unit_code: str) -> dict[str, float]:
    unit = currency(unit_code)
    for index in range(WARMUP_REQUESTS):
        client.transfer_in(f"warm-{label}-{index}", f"bench-{label}", Money(100, unit))
    latencies: list[float] = []
    started = time.perf_counter()
    for index in range(requests):
        amount = Money(rng.randint(100, 100_000), unit)
        before = time.perf_counter()
        client.transfer_in(f"bench-{label}-{index}", f"bench-{label}-{index % 50}", amount)
        latencies.append((time.perf_counter() - before) * 1000)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "transfers_per_s": round(requests / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(_percentile(latencies, 0.99), 3),
    }


def run_provider_benchmark(provider: ProviderConfig, *, requests: int, seed: int) -> dict[str, Any]:
    """``{"pooled": {...}, "new_connection": {...}}`` with ``transfers_per_s``, ``p50_ms``, ``p99_ms``."""
    if requests < 1:
        raise ValueError("requests must be at least 1")
    secret = secrets.token_bytes(32)
    keyring = KeyRing.from_secrets({KEY_ID: secret})
    config = dataclasses.replace(provider, max_attempts=1, extra={})  # no faults, no retries
    rng = random.Random(seed)
    results: dict[str, Any] = {"provider": provider.name, "requests": requests}
    with tempfile.TemporaryDirectory(prefix="tw-bench-") as folder:
        with simulator_process(config, secret, Path(folder) / "sim.db", seed) as url:
            for label, pooled in (("pooled", True), ("new_connection", False)):
                with HttpProvider(config, base_url=url, keyring=keyring, pooled=pooled) as client:
                    results[label] = _run(client, label, requests, rng, config.currency)
    return results

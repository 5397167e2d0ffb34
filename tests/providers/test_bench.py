"""The provider benchmark runs end to end on a tiny scale and reports both modes."""

from __future__ import annotations

from transfer_wallet.bench.provider import run_provider_benchmark


def test_the_benchmark_reports_pooled_and_new_connection_figures(acme, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("TW_ACME_SECRET_2026_11")  # it needs no secrets of its own
    monkeypatch.delenv("TW_ACME_SECRET_2026_09")
    result = run_provider_benchmark(acme, requests=30, seed=1)
    for mode in ("pooled", "new_connection"):
        figures = result[mode]
        assert figures["transfers_per_s"] > 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]

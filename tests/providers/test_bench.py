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


def test_sides_run_in_alternating_rounds_and_report_median_and_spread() -> None:
    from transfer_wallet.bench._harness import alternate, ratio

    calls: list[str] = []
    rates = {"baseline": iter([100.0, 300.0, 200.0]), "ours": iter([90.0, 60.0, 150.0])}

    def side(name: str):  # type: ignore[no-untyped-def]
        def measure() -> float:
            calls.append(name)
            return next(rates[name])
        return measure

    figures = alternate({"baseline": side("baseline"), "ours": side("ours")}, rounds=3)
    assert calls == ["baseline", "ours"] * 3
    assert (figures["baseline"].median, figures["ours"].median) == (200.0, 90.0)
    assert figures["baseline"].spread == 1.0  # (300 - 100) / 200
    assert ratio(figures["ours"], figures["baseline"]) == 0.45


def test_the_ledger_benchmark_on_sqlite_reports_both_sides_per_round(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from transfer_wallet.bench.ledger import run_ledger_benchmark

    (result,) = run_ledger_benchmark(f"sqlite:///{tmp_path / 'ledger.db'}", [1], seconds=1, rounds=2)
    row = result.as_dict()
    assert row["clients"] == 1 and row["rounds"] == 2
    assert len(row["per_round"]["ours"]) == len(row["per_round"]["raw_sqlite3"]) == 2
    assert row["ours_per_s"] > 0 and row["raw_sqlite3_per_s"] > 0
    assert abs(row["ratio_to_raw_sqlite3"] - row["ours_per_s"] / row["raw_sqlite3_per_s"]) < 0.01
    assert not (tmp_path / "ledger.db").exists()  # scratch databases only


def test_the_session_benchmark_on_sqlite_reports_every_round_of_ours(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from transfer_wallet.bench.sessions import run_ledger_sessions

    (result,) = run_ledger_sessions(f"sqlite:///{tmp_path / 'ledger.db'}", [1], seconds=1, rounds=2)
    row = result.as_dict()
    assert row["clients"] == 1 and row["rounds"] == 2 and len(row["per_round"]["ours"]) == 2
    assert row["ours_per_s"] > 0 and result.baselines == {}  # no baseline on SQLite
    assert not (tmp_path / "ledger.db").exists()


def _child_peak(queue) -> None:  # type: ignore[no-untyped-def]
    from transfer_wallet.bench._harness import peak_rss_mb

    queue.put(peak_rss_mb())


def test_a_spawned_childs_peak_memory_is_its_own_not_its_parents() -> None:
    import multiprocessing

    from transfer_wallet.bench._harness import peak_rss_mb

    ballast = bytearray(400 * 1024 * 1024)  # the parent touches 400 MB
    for offset in range(0, len(ballast), 4096):
        ballast[offset] = 1
    assert peak_rss_mb() > 400
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child_peak, args=(queue,))
    child.start()
    peak = queue.get(timeout=60)
    child.join()
    del ballast
    assert 10 < peak < 300, peak  # ru_maxrss would say > 400: Linux carries it across fork and exec

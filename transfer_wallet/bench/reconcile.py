"""``tw bench reconcile``: one provider-day of N transfers reconciled end to end, against its floor.

In a scratch database beside ``--db`` (SQLite or PostgreSQL) it bulk-inserts a ledger of
N completed transfers (a benchmark fixture: straight into the tables, not through the
session path) and writes the provider's report as CSV with about 1 % planted
discrepancies of every type (``PLANTED_KINDS``). Then, in one run, it measures:

- the **floor**: the fastest pandas read of the report (pyarrow engine if installed, else
  the C engine) plus one raw DB-API query of the day's ledger rows;
- **our** reconcile in a child process: ingest, ledger read, match + classify, persist
  and exports, the wall time, and the child's peak memory (max RSS);
- **datacompy** (if installed) comparing the same two frames on the same key;
- **accuracy**: planted breaks found with the right type, found with another type, and
  breaks found that were not planted (invented).

The machine is shared: figures vary from run to run; compare ratios, not seconds.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transfer_wallet.bench._harness import peak_rss_mb, scratch_database
from transfer_wallet.config import ProviderConfig, ReportFormat
from transfer_wallet.reconcile.profile import TrailerSpec

PROVIDER = "bench"
DAY = dt.date(2026, 12, 1)
DAY_START = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
PLAYERS = 5000
#: Every planted kind; each gets ``max(1, N // 1000)`` rows (about 1 % of the rows in all), except
#: ``CONTROL_TOTAL_MISMATCH``: one trailer line that declares a row too many.
PLANTED_KINDS = (
    "AMOUNT_MISMATCH", "CURRENCY_MISMATCH", "STATUS_MISMATCH", "TYPE_MISMATCH", "PLAYER_MISMATCH",
    "MISSING_AT_PROVIDER", "TIMING_CUTOFF", "PENDING_IN_LEDGER", "PROVIDER_TX_ID_MISMATCH",
    "DUPLICATE_AT_PROVIDER", "MISSING_IN_LEDGER", "INVALID_RECORD", "CONTROL_TOTAL_MISMATCH",
)
_LEDGER_PLANTS = PLANTED_KINDS[:9]
COLUMNS = ("provider_tx_id", "reference", "player_id", "type", "amount", "currency", "status", "created_at")


def bench_config() -> ProviderConfig:
    """The benchmark provider: canonical column names and codes, UTC, a trailer with a row count."""
    report = ReportFormat(columns={}, values={}, trailer=TrailerSpec(marker="TOTAL", count_field="reference",
                                                                     amount_field=None))
    return ProviderConfig(name=PROVIDER, base_url="http://127.0.0.1:1", currency="EUR", keys=(), report=report)


# -- the fixture: ledger and report ---------------------------------------------------------------


def make_ledger(rows: int, seed: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The ledger frame of ``rows`` transfers and, per planted ledger kind, the positions it changes."""
    rng = np.random.default_rng(seed)
    index = np.arange(rows)
    seconds = rng.integers(2 * 3600, 22 * 3600, rows)  # clear of both cut-off margins
    frame = pd.DataFrame({
        "id": pd.Series(index).map("bt{:08d}".format), "provider_tx_id": pd.Series(index).map("bx{:08d}".format),
        "player_id": pd.Series(index % PLAYERS).map("P{:05d}".format),
        "direction": np.where(rng.random(rows) < 0.5, "IN", "OUT"),
        "game_amount_minor": rng.integers(100, 500_000, rows), "status": "completed",
        "created_at": pd.Timestamp(DAY_START) + pd.to_timedelta(seconds, unit="s"),
    })
    each = max(1, rows // 1000)
    chosen = rng.choice(rows, size=min(rows, each * (len(_LEDGER_PLANTS) + 1)), replace=False)
    plants = {kind: chosen[n * each:(n + 1) * each] for n, kind in enumerate(_LEDGER_PLANTS)}
    plants["DUPLICATE_AT_PROVIDER"] = chosen[len(_LEDGER_PLANTS) * each:]
    timing = plants["TIMING_CUTOFF"]
    frame.loc[timing, "created_at"] = pd.Timestamp(DAY_START) + pd.to_timedelta(
        rng.integers(23 * 3600 + 1800, 24 * 3600, len(timing)), unit="s")
    pending = plants["PENDING_IN_LEDGER"]
    frame.loc[pending, "status"], frame.loc[pending, "provider_tx_id"] = "in_doubt", None
    return frame, plants


def make_report(ledger: pd.DataFrame, plants: dict[str, np.ndarray], seed: int) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """The report rows (text, in file order) and the planted ``(kind, key)`` set."""
    rng = np.random.default_rng(seed + 1)
    report = pd.DataFrame({
        "provider_tx_id": "bx" + ledger["id"].str[2:], "reference": ledger["id"], "player_id": ledger["player_id"],
        "type": np.where(ledger["direction"] == "IN", "TRANSFER_IN", "TRANSFER_OUT"),
        "amount_minor": ledger["game_amount_minor"], "currency": "EUR", "status": "SUCCESS",
        "created_at": ledger["created_at"],
    })
    no_reference = rng.random(len(report)) < 0.1  # those match by provider tx id
    no_reference[np.concatenate([plants["PENDING_IN_LEDGER"], plants["PROVIDER_TX_ID_MISMATCH"]])] = False
    report.loc[no_reference, "reference"] = ""
    ids = ledger["id"]
    planted = {(kind, str(t)) for kind in _LEDGER_PLANTS if kind != "PROVIDER_TX_ID_MISMATCH"
               for t in ids.iloc[plants[kind]]}
    report.loc[plants["AMOUNT_MISMATCH"], "amount_minor"] += 1
    report.loc[plants["CURRENCY_MISMATCH"], "currency"] = "USD"
    report.loc[plants["STATUS_MISMATCH"], "status"] = "FAILED"
    flip = plants["TYPE_MISMATCH"]
    report.loc[flip, "type"] = np.where(report.loc[flip, "type"] == "TRANSFER_IN", "TRANSFER_OUT", "TRANSFER_IN")
    report.loc[plants["PLAYER_MISMATCH"], "player_id"] = "PZ" + ids.iloc[plants["PLAYER_MISMATCH"]].str[2:]
    rekeyed = plants["PROVIDER_TX_ID_MISMATCH"]
    report.loc[rekeyed, "provider_tx_id"] = "by" + ids.iloc[rekeyed].str[2:]
    planted |= {("PROVIDER_TX_ID_MISMATCH", f"{t}@by{t[2:]}") for t in ids.iloc[rekeyed]}
    report = report.drop(index=np.concatenate([plants["MISSING_AT_PROVIDER"], plants["TIMING_CUTOFF"]]))
    duplicates = report.loc[report.index.intersection(plants["DUPLICATE_AT_PROVIDER"])]
    planted |= {("DUPLICATE_AT_PROVIDER", f"tx:{t}#2") for t in duplicates["provider_tx_id"]}
    extra = len(plants["AMOUNT_MISMATCH"])
    ghosts = pd.DataFrame({
        "provider_tx_id": [f"bm{n:08d}" for n in range(extra)], "reference": "",
        "player_id": [f"PG{n:08d}" for n in range(extra)], "type": "TRANSFER_IN", "amount_minor": 1234,
        "currency": "EUR", "status": "SUCCESS", "created_at": pd.Timestamp(DAY_START) + pd.Timedelta(hours=12)})
    planted |= {("MISSING_IN_LEDGER", f"tx:{t}") for t in ghosts["provider_tx_id"]}
    invalid = ghosts.assign(provider_tx_id=[f"bi{n:08d}" for n in range(extra)], amount_minor=-1)
    report = pd.concat([report, duplicates, ghosts, invalid], ignore_index=True)
    report = report.iloc[rng.permutation(len(report))].reset_index(drop=True)
    text = _as_text(report)
    bad = text.index[text["amount"] == "12.3x"]
    planted |= {("INVALID_RECORD", f"row{n + 2}:amount") for n in bad}
    planted.add(("CONTROL_TOTAL_MISMATCH", "trailer:count"))
    return text, planted


def _as_text(report: pd.DataFrame) -> pd.DataFrame:
    """The report's cells as the provider writes them (major units with a dot, ISO times)."""
    minor = report["amount_minor"].astype("int64")
    amount = (minor // 100).astype(str) + "." + (minor % 100).astype(str).str.zfill(2)
    text = report.assign(amount=amount.where(minor >= 0, "12.3x"),
                         created_at=report["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    return text[list(COLUMNS)]


def write_report(text: pd.DataFrame, path: Path) -> None:
    """The CSV with a trailer that declares one row too many (the planted control-total break)."""
    text.to_csv(path, index=False)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"TOTAL,{len(text) + 1},,,,,,\n")


def insert_ledger(url: str, ledger: pd.DataFrame) -> None:
    """Bulk-insert players, one session each, and the transfers (COPY on PostgreSQL)."""
    import transfer_wallet as tw
    from transfer_wallet.models import GameSession, Player, Transfer, table_of

    db = tw.open_database(url)
    tw.upgrade(db)
    players = [f"P{n:05d}" for n in range(PLAYERS)]
    sessions = [dict(id=f"bs{p}", player_id=p, provider=PROVIDER, status="closed", wallet_currency="EUR",
                     game_currency="EUR", amount_in_minor=1, game_amount_in_minor=1, open_key=f"bench-{p}",
                     open_request_hash="0" * 64, idle_timeout_s=900, max_session_s=3600, opened_at=DAY_START,
                     last_activity_at=DAY_START, deadline_at=DAY_START) for p in players]
    transfers = ledger.assign(session_id="bs" + ledger["player_id"], provider=PROVIDER, wallet_currency="EUR",
                              game_currency="EUR", amount_minor=ledger["game_amount_minor"], attempts=1, fx_residue_minor=0,
                              updated_at=ledger["created_at"], completed_at=ledger["created_at"])
    columns = ["id", "session_id", "player_id", "provider", "direction", "status", "wallet_currency",
               "amount_minor", "game_currency", "game_amount_minor", "fx_residue_minor", "attempts", "provider_tx_id",
               "created_at", "updated_at", "completed_at"]
    records = transfers[columns].astype(object).where(transfers[columns].notna(), None)
    records["created_at"] = [t.to_pydatetime() for t in transfers["created_at"]]
    records["updated_at"] = records["completed_at"] = records["created_at"]
    rows = list(records.itertuples(index=False, name=None))

    def load(connection: Any) -> None:
        connection.execute(table_of(Player).insert(), [dict(id=p, currency="EUR", created_at=DAY_START)
                                                       for p in players])
        connection.execute(table_of(GameSession).insert(), sessions)
        if connection.dialect.name == "postgresql":
            with connection.connection.driver_connection.cursor() as cursor:
                with cursor.copy(f"COPY transfers ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            return
        table = table_of(Transfer)
        for first in range(0, len(rows), 50_000):
            connection.execute(table.insert(), [dict(zip(columns, row)) for row in rows[first:first + 50_000]])

    db.transaction(load)
    db.engine.dispose()


# -- the measurements -----------------------------------------------------------------------------


def floor_seconds(url: str, report: Path) -> dict[str, Any]:
    """The fastest pandas read of the report plus one raw DB-API query of the day's ledger rows."""
    try:
        import pyarrow  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: F401

        engine = "pyarrow"
    except ImportError:
        engine = "c"
    clock = time.perf_counter()
    pd.read_csv(report, engine=engine, dtype=str)
    read_s = time.perf_counter() - clock
    start, end = DAY_START - dt.timedelta(hours=1), DAY_START + dt.timedelta(days=1, hours=1)
    query = ("SELECT id, provider_tx_id, player_id, direction, game_amount_minor, game_currency, status, created_at "
             "FROM transfers WHERE provider = {p} AND created_at >= {p} AND created_at < {p}")
    clock = time.perf_counter()
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.split("///", 1)[1]) as connection:
            rows = connection.execute(query.format(p="?"), (PROVIDER, _naive(start), _naive(end))).fetchall()
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
            rows = connection.execute(query.format(p="%s"), (PROVIDER, start, end)).fetchall()
    query_s = time.perf_counter() - clock
    return {"engine": engine, "read_report_s": read_s, "query_ledger_s": query_s, "ledger_rows": len(rows),
            "floor_s": read_s + query_s}


def _naive(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ")


def _child(url: str, report: str, out_dir: str, queue: Any) -> None:
    """In a fresh process: reconcile and export; send timings, breaks and max RSS back."""
    import transfer_wallet as tw
    from transfer_wallet.reconcile.export import export_run
    from transfer_wallet.reconcile.run import reconcile

    db = tw.open_database(url)
    now = DAY_START + dt.timedelta(days=1, hours=6)
    clock = time.perf_counter()
    result = reconcile(db, bench_config(), DAY, Path(report), now=now)
    exports = time.perf_counter()
    export_run(db, result, Path(out_dir), now=now)
    done = time.perf_counter()
    timings = {**result.timings, "exports": done - exports, "end_to_end": done - clock}
    found = list(zip(result.breaks["kind"].astype(str), result.breaks["key"].astype(str)))
    queue.put({"timings": timings, "found": found, "max_rss_mb": peak_rss_mb()})


def ours(url: str, report: Path, out_dir: Path) -> dict[str, Any]:
    """Our reconcile + exports in a child process (spawned: its max RSS is its own)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(url, str(report), str(out_dir), queue))
    process.start()
    answer: dict[str, Any] = queue.get()
    process.join()
    return answer


def datacompy_seconds(url: str, report: Path) -> dict[str, Any]:
    """datacompy comparing the same canonical report frame and ledger frame on one key (if installed)."""
    try:
        import datacompy  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return {"installed": False, "seconds": None}
    import transfer_wallet as tw
    from transfer_wallet.reconcile.ingest import ingest_report
    from transfer_wallet.reconcile.ledger_side import read_ledger_side

    config = bench_config()
    rows = ingest_report(report, config.report).rows
    db = tw.open_database(url)
    ledger = db.transaction(lambda c: read_ledger_side(c, PROVIDER, DAY, "UTC"), readonly=True).rows
    db.engine.dispose()
    left = rows.assign(key=rows["reference"].fillna("tx:" + rows["provider_tx_id"]))
    left = left[["key", "player_id", "direction", "amount_minor", "currency", "status"]]
    right = ledger.rename(columns={"transfer_id": "key"})[["key", "player_id", "direction", "amount_minor",
                                                           "currency", "status"]]
    right = right.assign(status=right["status"].map({"completed": "SUCCESS"}).fillna("FAILED"))
    clock = time.perf_counter()
    compare = datacompy.PandasCompare(left, right, join_columns=["key"])
    compare.all_mismatch()
    return {"installed": True, "seconds": time.perf_counter() - clock}


def accuracy(planted: set[tuple[str, str]], found: list[tuple[str, str]]) -> dict[str, int]:
    """Planted breaks found with the right type, found under another type, missed, and invented."""
    found_set = set(found)
    right = planted & found_set
    planted_keys = {key for _, key in planted - right}
    other = {(kind, key) for kind, key in found_set - right if key in planted_keys}
    return {"planted": len(planted), "found_right_type": len(right), "wrong_type": len(other),
            "missed": len(planted) - len(right) - len(other), "invented": len(found_set - right - other)}


def run_reconcile_benchmark(url: str, rows: int, *, seed: int = 1) -> dict[str, Any]:
    """The whole benchmark on a scratch database beside ``url``; the figures as one document."""
    with scratch_database(url) as scratch, tempfile.TemporaryDirectory(prefix="tw-bench-reconcile-") as folder:
        clock = time.perf_counter()
        ledger, plants = make_ledger(rows, seed)
        text, planted = make_report(ledger, plants, seed)
        report = Path(folder) / "bench-2026-12-01.csv"
        write_report(text, report)
        insert_ledger(scratch, ledger)
        del ledger, text
        setup_s = time.perf_counter() - clock
        floor = floor_seconds(scratch, report)
        mine = ours(scratch, report, Path(folder) / "out")
        oracle = datacompy_seconds(scratch, report)
    timings = mine["timings"]
    figures: dict[str, Any] = {
        "rows": rows, "backend": "sqlite" if url.startswith("sqlite") else "postgresql", "setup_s": setup_s,
        "floor": floor, "ours": timings, "peak_rss_mb": mine["max_rss_mb"], "datacompy": oracle,
        "accuracy": accuracy(planted, mine["found"]),
        "end_to_end_vs_floor": timings["end_to_end"] / floor["floor_s"] if floor["floor_s"] else None,
        "datacompy_vs_match_classify": (oracle["seconds"] / timings["match_classify"]
                                        if oracle["seconds"] and timings["match_classify"] else None),
    }
    return figures

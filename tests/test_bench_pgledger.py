"""The PostgreSQL baselines of ``tw bench ledger`` do the work they claim, and refuse what they claim to refuse."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest

from transfer_wallet.bench.pgledger import _connect, prepare_baselines

pytestmark = pytest.mark.postgres


@pytest.fixture
def baseline(pg_server):  # type: ignore[no-untyped-def]
    url = pg_server.create()
    prepare_baselines(url, pairs=1, funding_minor=1_000)
    with _connect(url) as connection:
        yield connection


ULID_ID = re.compile(r"(xfer|entr)_[0-9A-HJKMNP-TV-Z]{26}")


def _plx_accounts(connection: psycopg.Connection) -> list[tuple[str, int, int]]:
    return connection.execute("SELECT id, balance, version FROM plx_accounts ORDER BY name").fetchall()


def test_the_pgledger_style_transfer_moves_both_balances_with_versions_and_entries(baseline) -> None:  # type: ignore[no-untyped-def]
    (payer, _, _), (payee, _, _) = _plx_accounts(baseline)
    transfer = baseline.execute("SELECT * FROM plx_transfer(%s, %s, 300)", (payer, payee)).fetchone()
    assert transfer[0].startswith("xfer_") and transfer[1:4] == (payer, payee, 300)
    assert _plx_accounts(baseline) == [(payer, 700, 1), (payee, 1_300, 1)]
    entries = baseline.execute(
        "SELECT account_id, amount, balance_before, balance_after, account_version FROM plx_entries "
        "WHERE transfer_id = %s ORDER BY amount", (transfer[0],)).fetchall()
    assert entries == [(payer, -300, 1_000, 700, 1), (payee, 300, 1_000, 1_300, 1)]
    ids = [row[0] for row in baseline.execute("SELECT id FROM plx_entries")]
    assert len(set(ids)) == 2 and all(ULID_ID.fullmatch(i) for i in [*ids, transfer[0]]), ids
    hex_transfer = baseline.execute("SELECT * FROM plx_transfer_hex(%s, %s, 100)", (payer, payee)).fetchone()
    assert re.fullmatch(r"xfer_[0-9a-f]{32}", hex_transfer[0]) and hex_transfer[1:4] == (payer, payee, 100)
    assert _plx_accounts(baseline) == [(payer, 600, 2), (payee, 1_400, 2)]


def _crockford(value: uuid.UUID) -> str:
    """The ULID text of ``value``: its 128 bits as 26 base-32 digits (Crockford's alphabet)."""
    number, digits = value.int, []
    for _ in range(26):
        number, digit = divmod(number, 32)
        digits.append("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[digit])
    return "".join(reversed(digits))


def test_the_pgledger_style_ids_are_ulids_of_time_ordered_uuids(baseline) -> None:  # type: ignore[no-untyped-def]
    samples = [uuid.UUID("017c1640-9248-b597-b8ae-91867b0c882c"), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1),
               *(uuid.uuid4() for _ in range(20))]
    for sample in samples:
        assert baseline.execute("SELECT plx_ulid(%s)", (sample,)).fetchone() == (_crockford(sample),), sample
    assert _crockford(samples[0]) == "01FGB414J8PPBVHBMHGSXGS21C"  # the example of the ULID <-> UUID converters
    first, second = (baseline.execute("SELECT plx_uuidv7()").fetchone()[0] for _ in range(2))
    assert first.version == 7 and first.hex[:12] <= second.hex[:12]  # milliseconds since the epoch lead
    now_ms = baseline.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint").fetchone()[0]
    assert abs(int(second.hex[:12], 16) - now_ms) < 60_000


def test_the_pgledger_style_transfer_refuses_an_overdraft_and_writes_nothing(baseline) -> None:  # type: ignore[no-untyped-def]
    (payer, _, _), (payee, _, _) = _plx_accounts(baseline)
    with pytest.raises(psycopg.errors.RaiseException, match="below zero"):
        baseline.execute("SELECT * FROM plx_transfer(%s, %s, 1001)", (payer, payee))
    assert _plx_accounts(baseline) == [(payer, 1_000, 0), (payee, 1_000, 0)]
    assert baseline.execute("SELECT count(*) FROM plx_transfers").fetchone() == (0,)


def test_the_plain_sql_transfer_moves_money_and_refuses_an_overdraft(baseline) -> None:  # type: ignore[no-untyped-def]
    baseline.execute("SELECT pl_transfer(1, 2, 250)")
    with pytest.raises(psycopg.errors.RaiseException, match="insufficient"):
        baseline.execute("SELECT pl_transfer(1, 2, 751)")
    assert baseline.execute("SELECT id, balance FROM pl_accounts ORDER BY id").fetchall() == [(1, 750), (2, 1_250)]
    assert baseline.execute("SELECT sum(amount), count(*) FROM pl_entries").fetchone() == (0, 2)


def test_the_ledger_benchmark_on_postgres_reports_every_side_per_round(pg_server) -> None:  # type: ignore[no-untyped-def]
    from transfer_wallet.bench.ledger import run_ledger_benchmark

    (result,) = run_ledger_benchmark(pg_server.create(), [1], seconds=1, rounds=1)
    row = result.as_dict()
    for side in ("ours", "pgledger", "pgledger_hex", "plain_sql", "pgbench"):
        assert row[f"{side}_per_s"] > 0, side
    assert abs(row["ratio_to_pgledger"] - row["ours_per_s"] / row["pgledger_per_s"]) < 0.01


def test_the_session_benchmark_on_postgres_alternates_with_pgbench(pg_server) -> None:  # type: ignore[no-untyped-def]
    from transfer_wallet.bench.sessions import run_ledger_sessions

    (result,) = run_ledger_sessions(pg_server.create(), [1], seconds=1, rounds=2)
    row = result.as_dict()
    assert len(row["per_round"]["ours"]) == len(row["per_round"]["pgbench"]) == 2
    assert row["ours_per_s"] > 0 and row["pgbench_per_s"] > 0
    assert abs(row["ratio_to_pgbench"] - row["ours_per_s"] / row["pgbench_per_s"]) < 0.01

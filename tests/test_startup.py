"""Start-up: a command imports only what it needs.

``tw --help`` (and ``tw`` alone) load no database, HTTP or data-frame library; the
read commands an operator runs all day (``ledger check``, ``session list``) load the
database layer but never pandas, numpy, httpx, APScheduler, Alembic or the
reconciliation and HTTP-client modules; ``wallet balance`` and ``session show`` read on
the plain driver and load no SQLAlchemy, SQLModel or pydantic either
(``transfer_wallet.dbapi``; ``session show`` in ``test_startup_session_show.py``).
Checked in a fresh interpreter, as the console script runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEVER_FOR_HELP = ("sqlalchemy", "sqlmodel", "pydantic", "pandas", "numpy", "httpx", "apscheduler", "alembic", "rich")
NEVER_FOR_READS = ("pandas", "numpy", "httpx", "apscheduler", "alembic", "openpyxl", "xlsxwriter", "jobs",
                   "transfer_wallet.reconcile.run", "transfer_wallet.providers.http", "transfer_wallet.simulator")


def loaded_modules(*args: str) -> tuple[int, set[str]]:
    """Run ``tw ARGS`` in a fresh interpreter; its exit code and the modules it had imported."""
    code, modules, _ = loaded_modules_and_output(*args)
    return code, modules


def heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if any(m == name or m.startswith(name + ".") for m in modules))


@pytest.mark.parametrize("args", [(), ("--help",), ("wallet", "--help"), ("session", "show", "--help")])
def test_help_loads_no_database_http_or_dataframe_library(args: tuple[str, ...]) -> None:
    code, modules = loaded_modules(*args)
    assert code == 0
    assert heavy(modules, NEVER_FOR_HELP) == []


@pytest.fixture(scope="module")
def ledger_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite file with one funded player (set up through the library, not the probe)."""
    from transfer_wallet import migrations
    from transfer_wallet.db import open_database
    from transfer_wallet.wallet import Wallet

    url = f"sqlite:///{tmp_path_factory.mktemp('startup') / 'tw.db'}"
    db = open_database(url)
    migrations.upgrade(db)
    Wallet(db).create_player("P1", "EUR")
    Wallet(db).deposit("P1", "12.50", reference="dep-1")
    db.dispose()
    return url


@pytest.mark.parametrize("args", [
    ("--json", "session", "list"),
    ("ledger", "check"),
])
def test_a_read_command_loads_no_dataframe_http_scheduler_or_migration_library(ledger_file: str,
                                                                              args: tuple[str, ...]) -> None:
    code, modules = loaded_modules("--db", ledger_file, *args)
    assert code == 0
    assert "sqlalchemy" in modules  # the probe really reached the database
    assert heavy(modules, NEVER_FOR_READS) == []


NEVER_FOR_LIGHT_READS = ("sqlalchemy", "sqlmodel", "pydantic", "pandas", "numpy", "httpx", "apscheduler", "alembic",
                         "psycopg", "transfer_wallet.models", "transfer_wallet.db")


@pytest.mark.parametrize(("args", "expected_code", "output"), [
    (("--json", "wallet", "balance", "P1"), 0, '"available": "12.50"'),
    (("wallet", "balance", "P1"), 0, "available  12.50"),
    (("wallet", "balance", "NOBODY"), 1, "error: unknown player 'NOBODY'"),
    (("session", "show", "s0123456789abcdef0123"), 1, "error: unknown session 's0123456789abcdef0123'"),
])
def test_wallet_balance_and_session_show_read_on_the_plain_driver_without_sqlalchemy(
        ledger_file: str, args: tuple[str, ...], expected_code: int, output: str) -> None:
    code, modules, shown = loaded_modules_and_output("--db", ledger_file, *args)
    assert code == expected_code
    assert output in shown  # the probe really read the database
    assert heavy(modules, NEVER_FOR_LIGHT_READS) == []
    assert "sqlite3" in modules


def loaded_modules_and_output(*args: str) -> tuple[int, set[str], str]:
    """Run ``tw ARGS`` in a fresh interpreter: exit code, modules imported, what it printed (stdout, stderr)."""
    probe = (
        "import json, runpy, sys\n"
        f"sys.argv = ['tw', *{list(args)!r}]\n"
        "code = 0\n"
        "try:\n    runpy.run_module('cli', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code if isinstance(exc.code, int) else 1\n"
        "sys.stderr.write('\\nMODULES=' + json.dumps({'code': code, 'modules': sorted(sys.modules)}) + '\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    shown, _, found = result.stderr.rpartition("MODULES=")
    document = json.loads(found)
    return document["code"], set(document["modules"]), result.stdout + shown


@pytest.mark.parametrize("url", [
    "sqlite:///tw.db", "sqlite:////tmp/a b/tw.db", "sqlite:///a@b.db", "sqlite:///:memory:", "sqlite://",
    "sqlite:///a%20b.db", "sqlite:///tw.db?mode=ro", "sqlite:///file:tw.db", "mysql://x/y", "not a url",
    "postgresql://u:p%40w@h:5432/tw", "postgres://u@h/tw?sslmode=disable", "postgresql+psycopg://u@h/tw",
])
def test_the_light_path_reads_a_url_as_sqlalchemy_does_or_leaves_it_to_the_full_layer(url: str) -> None:
    from sqlalchemy.engine import make_url

    from transfer_wallet.dbapi import light_target

    target = light_target(url)
    if target is None:
        assert not url.startswith("postgres") and url not in ("sqlite:///tw.db", "sqlite:////tmp/a b/tw.db")
    elif target.backend == "sqlite":
        assert target.address == make_url(url).database
    else:
        parsed, libpq = make_url(url), make_url(target.address)
        assert (libpq.username, libpq.password, libpq.host, libpq.port, libpq.database, dict(libpq.query)) == (
            parsed.username, parsed.password, parsed.host, parsed.port, parsed.database, dict(parsed.query))


def test_a_url_the_light_path_leaves_alone_reads_the_same_balance_through_the_full_layer(ledger_file: str) -> None:
    escaped = ledger_file[:-3] + "%2Edb"  # ".../tw%2Edb": SQLAlchemy unescapes it, the light path does not try
    light = loaded_modules_and_output("--db", ledger_file, "--json", "wallet", "balance", "P1")
    full = loaded_modules_and_output("--db", escaped, "--json", "wallet", "balance", "P1")
    assert (full[0], light[0]) == (0, 0)
    assert full[2] == light[2] and '"total": "12.50"' in full[2]
    assert "sqlalchemy" in full[1] and "sqlalchemy" not in light[1]

"""Helpers for the nightly-jobs tests: a providers file with drop folders, literal reports, row counts."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from transfer_wallet.models import Discrepancy, JobRunRecord

HEADER = "tx_id,operator_ref,player,direction,amount,currency,status,created_at_utc\n"
PROFILE = """
[providers.{name}.report]
timezone = "UTC"
[providers.{name}.report.columns]
provider_tx_id = "tx_id"
reference = "operator_ref"
player_id = "player"
type = "direction"
amount = "amount"
currency = "currency"
status = "status"
created_at = "created_at_utc"
[providers.{name}.report.values]
TRANSFER_IN = "IN"
TRANSFER_OUT = "OUT"
SUCCESS = "OK"
FAILED = "FAILED"
"""


def report_bytes(day: str, *rows: tuple[str, str, str]) -> bytes:
    """A report of ``day`` with rows ``(tx id, player, amount)`` (transfers in; none is in our ledger)."""
    lines = [f"{tx},,{player},IN,{amount},EUR,OK,{day}T10:00:00\n" for tx, player, amount in rows]
    return (HEADER + "".join(lines)).encode()


def providers_file(folder: Path, names: tuple[str, ...] = ("acme",), *, at: str = "06:00", retry_every_s: int = 900,
                   retry_until: str = "18:00", jobs: str = "") -> Path:
    """A providers TOML whose providers read reports from ``folder/drop/NAME-{date}.csv``."""
    text = f"[jobs]\n{jobs}\n"
    for port, name in enumerate(names, start=1):
        text += (f'\n[providers.{name}]\nbase_url = "http://127.0.0.1:{port}"\ncurrency = "EUR"\n'
                 + PROFILE.format(name=name)
                 + f'\n[providers.{name}.reconcile]\nat = "{at}"\ntimezone = "UTC"\n'
                   f'drop = "{folder}/drop/{name}-{{date}}.csv"\nretry_every_s = {retry_every_s}\n'
                   f'retry_until = "{retry_until}"\n')
    (folder / "drop").mkdir(exist_ok=True)
    path = folder / "providers.toml"
    path.write_text(text)
    return path


def drop(folder: Path, name: str, day: str, content: bytes) -> Path:
    """Put a report in the drop folder."""
    path = folder / "drop" / f"{name}-{day}.csv"
    path.write_bytes(content)
    return path


def history(db, **filters) -> list:
    """The ``job_runs`` rows (oldest first), optionally filtered by column values."""
    table = JobRunRecord.__table__  # type: ignore[attr-defined]
    query = select(table).order_by(table.c.id)
    for column, value in filters.items():
        query = query.where(table.c[column] == value)
    with db.engine.connect() as connection:
        return list(connection.execute(query).all())


def discrepancies_of(db, **filters) -> list:
    """The ``discrepancies`` rows (oldest first), optionally filtered."""
    table = Discrepancy.__table__  # type: ignore[attr-defined]
    query = select(table).order_by(table.c.id)
    for column, value in filters.items():
        query = query.where(table.c[column] == value)
    with db.engine.connect() as connection:
        return list(connection.execute(query).all())


def count(db, model) -> int:
    """Rows of ``model``'s table."""
    with db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model.__table__)).scalar_one())

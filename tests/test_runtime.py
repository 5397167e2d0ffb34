"""``tw.open_runtime``: one public way for a library user to run sessions against real providers.

The provider is the simulator on loopback (``tw provider serve acme --port 0``);
the database is real (SQLite file and PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from simulator_support import serving_acme

import transfer_wallet as tw

SECRETS = {"TW_ACME_SECRET_2026_11": "runtime-secret-11", "TW_ACME_SECRET_2026_09": "runtime-secret-09"}


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A providers file whose acme points at a simulator on a free loopback port."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with serving_acme(tmp_path, SECRETS, store="sim.db") as providers:
        yield providers


def test_a_library_user_opens_plays_and_closes_a_session_through_open_runtime(db, acme: Path) -> None:  # type: ignore[no-untyped-def]
    wallet = tw.Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "30.00", reference="dep-1")

    with tw.open_runtime(db, acme) as runtime:
        assert sorted(runtime.providers) == ["acme", "betsul"] and runtime.database is db
        view = runtime.sessions.open_session("P1", "acme", "10.00", key="open-1")
        assert str(wallet.balance("P1").locked) == "10.00 EUR"
        tw.PlayMirror(runtime.database).bet(view.id, "b-1", "r-1", "2.00")
        closed = runtime.sessions.close_session(view.id, key="close-1")
        clients = list(runtime.providers.values())

    assert (closed.status, str(closed.amount_out)) == ("closed", "10.00 EUR")
    assert all(client._client.is_closed for client in clients)  # the HTTP pools are closed on exit
    balance = wallet.balance("P1")
    assert (str(balance.available), str(balance.locked)) == ("30.00 EUR", "0.00 EUR")
    assert tw.check_ledger(db).clean  # a database passed in stays open for its owner


def test_open_runtime_opens_and_closes_its_own_database_from_a_url(tmp_path: Path, acme: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lib.db'}"
    tw.upgrade(tw.open_database(url))
    with tw.open_runtime(url, str(acme)) as runtime:
        tw.Wallet(runtime.database).create_player("P2", "EUR")
        assert runtime.sessions.list(player_id="P2") == []
    assert runtime.database.engine.pool.checkedout() == 0


def test_open_runtime_names_a_missing_providers_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(tw.ConfigError, match=f"providers file '{missing}' not found"):
        tw.open_runtime(f"sqlite:///{tmp_path / 'x.db'}", missing)
    assert not (tmp_path / "x.db").exists()  # refused before the database was touched


def test_open_runtime_is_part_of_the_pinned_public_api() -> None:
    assert {"open_runtime", "Runtime"} <= set(tw.__all__)
    assert tw.open_runtime.__doc__ and tw.Runtime.__doc__

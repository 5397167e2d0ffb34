"""Many processes opening and closing sessions for the same players at once (PostgreSQL):
never more locked than a player has, no deadlock reaching the caller, every cent accounted for;
twin opens with one key (threads, and two processes) open one session; two workers closing
one session both see it closed. On PostgreSQL each step is a server-side function call."""

from __future__ import annotations

import multiprocessing
import random

import pytest
from sqlalchemy import func, select

from transfer_wallet.db import open_database
from transfer_wallet.errors import InsufficientFundsError, InvalidStateError
from transfer_wallet.ledger import check_ledger
from transfer_wallet.models import GameSession
from transfer_wallet.money import Money, currency
from transfer_wallet.play import PlayMirror
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet

from session_switch import pg_db  # noqa: F401  (postgres with the server steps, then with the Python steps)

PLAYERS = ("P1", "P2", "P3")
DEPOSIT = "60.00"


def _worker(url: str, worker: int, operations: int, queue) -> None:  # type: ignore[no-untyped-def]
    db = open_database(url, pool_size=1)
    provider = InMemoryProvider(name="acme")
    manager = SessionManager(db, {"acme": provider}, {"acme": SessionPolicy("EUR", max_open_sessions=50)})
    mirror = PlayMirror(db)
    eur = currency("EUR")
    rng = random.Random(worker)
    errors: list[str] = []
    mine: list[str] = []
    for step in range(operations):
        try:
            if mine and rng.random() < 0.45:
                session_id = mine.pop(rng.randrange(len(mine)))
                view = manager.get(session_id)
                bet, won = Money(rng.randint(1, view.game_amount_in.amount_minor), eur), Money(rng.randint(0, 500), eur)
                provider.play(view.player_id, bet=bet, win=won)  # several sessions share this player's game wallet:
                mirror.bet(session_id, f"b{worker}-{step}", f"r{worker}-{step}", bet)  # the mirror says whose money is whose
                mirror.win(session_id, f"w{worker}-{step}", f"r{worker}-{step}", won)
                manager.close_session(session_id)
            else:
                view = manager.open_session(rng.choice(PLAYERS), "acme", Money(rng.randint(100, 2_500), currency("EUR")),
                                            key=f"w{worker}-{step}")
                mine.append(view.id)
        except (InsufficientFundsError, InvalidStateError):
            pass
        except Exception as exc:  # deadlocks, serialization failures, anything unexpected
            errors.append(f"{type(exc).__name__}: {exc}")
    for session_id in mine:
        manager.close_session(session_id)
    db.dispose()
    queue.put(errors)


@pytest.mark.postgres
def test_concurrent_sessions_on_postgres_never_overdraw_and_never_deadlock(pg_db):
    wallet = Wallet(pg_db)
    for player in PLAYERS:
        wallet.create_player(player, "EUR")
        wallet.deposit(player, DEPOSIT, reference=f"seed-{player}")
    url = pg_db.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_worker, args=(url, n, 60, queue)) for n in range(6)]
    for process in workers:
        process.start()
    errors = [queue.get(timeout=300) for _ in workers]
    for process in workers:
        process.join(timeout=60)
    assert all(e == [] for e in errors), errors
    sessions = GameSession.__table__
    with pg_db.engine.connect() as connection:
        opened = connection.execute(select(func.count()).select_from(sessions)).scalar_one()
        assert opened > 50  # the players really were contended
        for player in PLAYERS:
            spent = connection.execute(
                select(func.coalesce(func.sum(sessions.c.amount_in_minor - sessions.c.amount_out_minor), 0))
                .where(sessions.c.player_id == player, sessions.c.status == "closed")
            ).scalar_one()
            balance = wallet.balance(player)
            assert balance.locked.amount_minor == 0
            assert balance.available.amount_minor == 6_000 - spent >= 0
    assert check_ledger(pg_db).clean


def _race(functions):  # type: ignore[no-untyped-def]
    """Run the callables at the same moment in threads; their results or exceptions."""
    import threading

    barrier = threading.Barrier(len(functions))
    results: list[object] = [None] * len(functions)

    def run(index, function):  # type: ignore[no-untyped-def]
        barrier.wait()
        try:
            results[index] = function()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[index] = exc

    threads = [threading.Thread(target=run, args=(n, f)) for n, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.postgres
def test_the_same_open_sent_twice_at_once_opens_one_session(pg_db):
    wallet = Wallet(pg_db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="d1")
    manager = SessionManager(pg_db, {"acme": InMemoryProvider(name="acme")}, {"acme": SessionPolicy("EUR")})
    for attempt in range(5):
        key = f"open-{attempt}"
        results = _race([lambda: manager.open_session("P1", "acme", "10.00", key=key)] * 2)
        assert all(not isinstance(r, Exception) for r in results), results
        assert results[0].id == results[1].id
        manager.close_session(results[0].id)
    assert wallet.balance("P1").available.format() == "100.00"


@pytest.mark.postgres
def test_two_workers_closing_the_same_session_both_see_it_closed(pg_db):
    wallet = Wallet(pg_db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="d1")
    provider = InMemoryProvider(name="acme")
    manager = SessionManager(pg_db, {"acme": provider}, {"acme": SessionPolicy("EUR")})
    for _ in range(5):
        session = manager.open_session("P1", "acme", "10.00")
        results = _race([lambda: manager.close_session(session.id), lambda: manager.close_session(session.id)])
        assert all(not isinstance(r, Exception) and r.status == "closed" for r in results), results
    assert wallet.balance("P1").available.format() == "100.00"
    assert check_ledger(pg_db).clean


def _twin_opener(url: str, start_at: float, queue) -> None:  # type: ignore[no-untyped-def]
    import time

    db = open_database(url, pool_size=1)
    manager = SessionManager(db, {"acme": InMemoryProvider(name="acme")}, {"acme": SessionPolicy("EUR", max_open_sessions=10)})
    opened: list[str] = []
    for n in range(5):
        time.sleep(max(0.0, start_at + n * 0.25 - time.time()))  # both processes send open n at the same moment
        try:
            opened.append(manager.open_session("P1", "acme", "10.00", key=f"twin-{n}").id)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            opened.append(f"{type(exc).__name__}: {exc}")
    db.dispose()
    queue.put(opened)


@pytest.mark.postgres
def test_twin_opens_with_one_key_in_two_processes_open_one_session(pg_db):
    import time

    wallet = Wallet(pg_db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "100.00", reference="d1")
    url = pg_db.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start_at = time.time() + 8
    workers = [context.Process(target=_twin_opener, args=(url, start_at, queue)) for _ in range(2)]
    for process in workers:
        process.start()
    first, second = (queue.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(timeout=60)
    assert first == second and all(session_id.startswith("s") for session_id in first), (first, second)
    assert len(set(first)) == 5
    balance = wallet.balance("P1")
    assert (balance.available.format(), balance.locked.format()) == ("50.00", "50.00")
    assert check_ledger(pg_db).clean

"""Jobs: leases keep two schedulers from running the same sweep; the sweeps run through the jobs; caches stay bounded."""

from __future__ import annotations

import datetime as dt
import threading

from jobs import in_doubt, lease, scheduler, timeouts
from transfer_wallet import ledger
from transfer_wallet.db import LruCache
from transfer_wallet.errors import OutcomeUnknownError
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.wallet import Wallet

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def test_a_lease_is_held_by_one_holder_until_released_or_expired(db):
    first = lease.acquire(db, "sweep:x", ttl_s=60, now=T0, holder="a")
    assert first
    refused = lease.acquire(db, "sweep:x", ttl_s=60, now=T0 + dt.timedelta(seconds=59), holder="b")
    assert not refused and (refused.holder, refused.expires_at) == ("a", T0 + dt.timedelta(seconds=60))
    second = lease.acquire(db, "sweep:x", ttl_s=60, now=T0 + dt.timedelta(seconds=60), holder="b")  # a crashed
    assert second
    lease.release(db, first)  # not the holder any more: no effect
    assert not lease.acquire(db, "sweep:x", ttl_s=60, now=T0 + dt.timedelta(seconds=61), holder="c")
    lease.release(db, second)
    assert lease.acquire(db, "sweep:x", ttl_s=60, now=T0 + dt.timedelta(seconds=62), holder="c")


def test_the_jobs_sweep_through_their_lease_and_skip_when_it_is_held(db):
    wallet = Wallet(db)
    wallet.create_player("P1", "EUR")
    wallet.deposit("P1", "10.00", reference="d1")
    acme = InMemoryProvider(name="acme")
    manager = SessionManager(db, {"acme": acme}, {"acme": SessionPolicy("EUR", idle_timeout_s=60)}, clock=lambda: T0)
    acme.fail_next(OutcomeUnknownError("lost"), apply=True)
    session = manager.open_session("P1", "acme", "10.00", now=T0)
    elsewhere = lease.acquire(db, "sweep:in-doubt", ttl_s=300, holder="elsewhere")
    skipped = in_doubt.run(manager, now=T0 + dt.timedelta(minutes=2))
    assert skipped.skipped and skipped.report is None and skipped.lease.holder == "elsewhere"
    lease.release(db, elsewhere)
    assert in_doubt.run(manager, now=T0 + dt.timedelta(minutes=2)).report.completed == 1
    report = timeouts.run(manager, now=T0 + dt.timedelta(minutes=3)).report
    assert report.closed == 1
    assert manager.get(session.id).close_reason == "idle_timeout"
    assert Wallet(db).balance("P1").available.format() == "10.00"


def test_the_scheduler_registers_each_job_once_coalesced(db):
    manager = SessionManager(db, {}, {})
    built = scheduler.build(manager)
    jobs = {job.id: job for job in built.get_jobs()}
    assert set(jobs) == {"timeouts", "in-doubt", "key-age"}
    assert all(job.max_instances == 1 and job.coalesce for job in jobs.values())


def test_a_long_running_schedulers_account_caches_stay_bounded_and_still_serve_hits(db):
    # A scheduler lives for months and meets every player: its caches keep only the most recent.
    db.player_accounts = LruCache(3)
    wallet = Wallet(db)
    for number in range(1, 8):
        wallet.create_player(f"P{number}", "EUR")
        wallet.deposit(f"P{number}", "1.00", reference=f"d{number}")
    assert len(db.player_accounts) == 3
    assert set(db.player_accounts) == {"P5", "P6", "P7"}
    cached = db.player_accounts.get("P6")
    with db.engine.connect() as connection:
        assert ledger.player_accounts(db, connection, "P6") is cached  # a hit: the very tuple cached
        assert ledger.player_accounts(db, connection, "P1")[1].code == "player:P1:main"  # a miss reads again
    wallet.deposit("P1", "1.00", reference="d1-again")  # P1 comes back and pushes out the oldest
    assert set(db.player_accounts) == {"P6", "P7", "P1"}
    assert Wallet(db).balance("P1").available.format() == "2.00"
    assert len(db.account_ids) == 1  # the EUR cashier account, once


def test_the_lru_cache_is_bounded_under_concurrent_use():
    cache: LruCache[str, int] = LruCache(50)
    barrier = threading.Barrier(4)

    def churn(worker: int) -> None:
        barrier.wait()
        for number in range(2_000):
            cache.update({f"{worker}:{number}": number})
            assert cache.get(f"{worker}:{number}") in (number, None)  # others may have pushed it out

    threads = [threading.Thread(target=churn, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 50 and len(list(cache)) == 50
    assert cache == {key: cache[key] for key in cache}

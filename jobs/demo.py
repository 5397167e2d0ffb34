"""The whole story in one call (``tw demo``): a day at two providers, the nightly reconciliation, the files.

``run_demo(db, options)`` on any database (a fresh SQLite file needs no set-up: it
migrates first), for each provider (acme and betsul by default, two report formats):

1. starts the provider's simulator in-process on a free loopback port, on the run's
   clock (``RunClock``), with its store kept beside the database so the provider
   remembers earlier runs, as a real one does;
2. simulates **yesterday in the provider's report timezone** (``tw simulate``'s load
   generator): fresh players and deposits, seeded sessions with faults (lost answers
   leave transfers in doubt for the sweeps; a share is left to time out), and the last
   few sessions opened just before midnight and left to time out, so they cross it.
   Nothing is dated after the wall clock: when now is too close to midnight for the
   timeouts to run, the day is compressed (openings end earlier, nothing crosses);
3. runs the sweeps (timeouts, in-doubt) as the scheduler would, at the wall clock;
4. has the provider make the report mistakes real providers make
   (``simulator.report_faults``) in its own report format;
5. runs the nightly reconciliation of yesterday and exports CSV, XLSX and HTML.

Then it checks the ledger. Every id of a run carries the run id, and a run that fails
half-way closes the sessions it left open, so no money stays locked and the demo can
run again on the same file. ``reconcile_day`` runs the reconciliation through the
nightly job (``jobs.reconcile.run``), as the scheduler would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from transfer_wallet import migrations
from transfer_wallet.config import ProviderConfig, load_providers
from transfer_wallet.db import Database
from transfer_wallet.errors import ConfigError, TransferWalletError
from transfer_wallet.ledger import LedgerReport, check_ledger
from transfer_wallet.models import utc_now
from transfer_wallet.money import Money, currency
from transfer_wallet.simulator.clock import RunClock, tail_s
from transfer_wallet.simulator.loadgen import SimulationPlan, SimulationSummary, ensure_throwaway_secrets, run_simulation
from transfer_wallet.simulator.report import business_day_window, render_report
from transfer_wallet.simulator.report_faults import PlantedMistake, plant_mistakes

DEMO_PROVIDERS = ("acme", "betsul")
#: Faults of the demo's simulators: server errors, rate limits, answers lost after the transfer applied.
DEMO_FAULTS = ("transfer:500=0.1", "transfer:429=0.05:0", "transfer:lost=0.04")
#: Sessions opened in the last minutes before midnight and left to time out (they cross midnight).
CROSSING_SESSIONS = 3
ROUND_S = 30
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo runs: sessions and players per provider, seed, rounds per session, where files go."""

    sessions: int = 150
    players: int = 40
    seed: int = 7
    rounds: int = 3
    out_dir: Path = Path("demo-out")
    providers: tuple[str, ...] = DEMO_PROVIDERS
    providers_file: str | None = None


@dataclass
class ProviderDay:
    """One provider's part of the story."""

    provider: str
    business_date: dt.date
    simulation: SimulationSummary
    crossing_midnight: int = 0
    compressed: bool = False
    planted: list[PlantedMistake] = field(default_factory=list)
    reconciliation: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


@dataclass
class DemoResult:
    """The story: each provider's day, the sweeps, the ledger check."""

    run_id: str
    days: list[ProviderDay]
    sweeps: list[str]
    ledger: LedgerReport
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """The story completed: every session of the run final, money conserved, the ledger check clean."""
        return self.ledger.clean and all(
            d.simulation.conserved and set(d.simulation.by_status) <= {"closed", "failed"} for d in self.days)

    def money_moved(self) -> dict[str, dict[str, str]]:
        """Per wallet currency: moved into the games and back out (decimal strings)."""
        moved: dict[str, list[int]] = {}
        for day in self.days:
            totals = moved.setdefault(day.simulation.currency, [0, 0])
            totals[0] += day.simulation.moved_in
            totals[1] += day.simulation.moved_out
        return {code: {"in": Money(i, currency(code)).format(), "out": Money(o, currency(code)).format()}
                for code, (i, o) in sorted(moved.items())}

    def as_dict(self) -> dict[str, Any]:
        """The whole story as one JSON-ready document."""
        return {
            "run_id": self.run_id, "ok": self.ok, "seconds": round(self.seconds, 1), "money_moved": self.money_moved(),
            "providers": [_day_document(d) for d in self.days], "sweeps": self.sweeps,
            "ledger_check": {"clean": self.ledger.clean, "entries": self.ledger.entries,
                             "findings": [f"{f.check}: {f.detail}" for f in self.ledger.findings]},
        }


def _day_document(day: ProviderDay) -> dict[str, Any]:
    sim = day.simulation
    return {
        "provider": day.provider, "business_date": day.business_date.isoformat(), "sessions": sim.sessions,
        "sessions_by_state": dict(sorted(sim.by_status.items())), "currency": sim.currency,
        "moved_in": Money(sim.moved_in, currency(sim.currency)).format(),
        "moved_out": Money(sim.moved_out, currency(sim.currency)).format(),
        "rounds": sim.rounds, "in_doubt_during_the_day": sum(n for k, n in sim.failures.items() if "in doubt" in k),
        "faults_met": dict(sorted(sim.failures.items())),
        "crossing_midnight": day.crossing_midnight, "compressed": day.compressed, "simulated_from": sim.as_dict()["started_at"],
        "simulated_to": sim.as_dict()["ended_at"], "planted": [p.as_dict() for p in day.planted],
        "discrepancies_by_type": day.reconciliation.get("discrepancies_by_type", {}),
        "reconciliation": day.reconciliation, "files": [str(p) for p in day.files],
    }


def run_demo(db: Database, options: DemoOptions, *, progress: Progress | None = None) -> DemoResult:
    """Tell the whole story (see the module docstring); ``progress`` hears of the long steps."""
    started = utc_now()
    configs = load_providers(options.providers_file)
    missing = [name for name in options.providers if name not in configs]
    if missing:
        raise ConfigError(f"the demo needs provider(s) {', '.join(missing)} in the providers file")
    migrations.upgrade(db)
    run_id = uuid.uuid4().hex[:6]
    days: list[ProviderDay] = []
    sweeps: list[str] = []
    for number, name in enumerate(options.providers):
        # Two HTTP attempts per request: a lost answer or a 500 now and then leaves a transfer in doubt.
        config = dataclasses.replace(configs[name], max_attempts=2)
        day_options = dataclasses.replace(options, seed=options.seed + number)
        days.append(_provider_day(db, config, day_options, f"{run_id}{number}", progress, sweeps))
    result = DemoResult(run_id, days, sweeps, check_ledger(db))
    result.seconds = (utc_now() - started).total_seconds()
    return result


def _provider_day(db: Database, config: ProviderConfig, options: DemoOptions, run_id: str,
                  progress: Progress | None, sweeps: list[str]) -> ProviderDay:
    """Simulate yesterday at one provider, sweep, plant the report mistakes, reconcile, export."""
    from transfer_wallet.simulator.server import SimulatorServer

    now = utc_now()
    business_date = now.astimezone(config.report.tzinfo).date() - dt.timedelta(days=1)
    plan, planned_crossing = day_plan(config, business_date, now, options)
    clock = RunClock(plan.open_at[0], limit=now)
    ensure_throwaway_secrets(config)
    store = simulator_store_path(db, options.out_dir, config.name)
    server = SimulatorServer(config, store, seed=options.seed, now=clock, round_prefix=f"{config.name}-{run_id}")
    server.start()
    try:
        plan = dataclasses.replace(plan, url=server.url)
        try:
            summary = run_simulation(db, config, plan, clock=clock, run_id=run_id,
                                     progress=_named(progress, f"{config.name} sessions"))
        except BaseException:
            release_run(db, config, server.url, run_id, clock)
            raise
        sweeps.extend(_sweep(db, config, server.url))
        crossed = _crossing(db, config, server.url, summary, business_date)
        start, end = business_day_window(business_date, config.report.timezone)
        margin = dt.timedelta(seconds=int(getattr(config.report, "cutoff_margin_s", 3600)))
        transfers, planted = plant_mistakes(server.store.transfers_between(start, end), seed=options.seed,
                                            tag=run_id, inside=(start + margin, end - margin))
        report = render_report(transfers, config.report)
    finally:
        server.stop()
    day = ProviderDay(config.name, business_date, summary, crossing_midnight=crossed, planted=planted,
                      compressed=planned_crossing == 0)
    out = options.out_dir / f"{config.name}-{business_date.isoformat()}"
    day.reconciliation, day.files = reconcile_day(db, config, business_date, report, out_dir=out)
    return day


def reconcile_day(db: Database, config: ProviderConfig, business_date: dt.date, report: bytes, *,
                  out_dir: Path) -> tuple[dict[str, Any], list[Path]]:
    """The nightly reconciliation of one provider-day, through the nightly job itself
    (``jobs.reconcile.run``: its window lease, job history and exports): ``(run document, file paths)``.

    ``force``: a second demo on the same database reconciles the same window again.
    """
    from jobs import reconcile

    run = reconcile.run(db, config, business_date, now=utc_now(), report=report, out_dir=out_dir, force=True)
    if not isinstance(run.report, reconcile.ReconcileReport):
        raise TransferWalletError(f"reconciliation of {config.name} {business_date}: {run.summary()}")
    return run.report.result.as_dict(), run.report.files


def day_plan(config: ProviderConfig, business_date: dt.date, now: dt.datetime,
             options: DemoOptions) -> tuple[SimulationPlan, int]:
    """The day's plan (openings spread over the provider's business day) and how many sessions cross midnight.

    When now is too close to the day's end for the last timeouts to run, openings end
    earlier (nothing crosses midnight) so that nothing is dated after now.
    """
    start, end = business_day_window(business_date, config.report.timezone)
    tail = dt.timedelta(seconds=tail_s(options.rounds, ROUND_S, config.idle_timeout_s))
    crossing = CROSSING_SESSIONS if end + tail <= now and options.sessions > 2 * CROSSING_SESSIONS else 0
    last = end if crossing else min(end, now - tail)
    regular = options.sessions - crossing
    span = (last - dt.timedelta(minutes=10) - start) / regular
    opens = [start + span * n for n in range(regular)]
    opens += [end - dt.timedelta(seconds=80 * (crossing - n + 2)) for n in range(crossing)]
    plan = SimulationPlan(players=options.players, sessions=options.sessions, seed=options.seed, faults=DEMO_FAULTS,
                          timeout_share=0.1, rounds_per_session=options.rounds, funding="500.00",
                          open_at=tuple(o.replace(microsecond=0) for o in opens), round_s=ROUND_S,
                          timeout_last=crossing)
    return plan, crossing


def _crossing(db: Database, config: ProviderConfig, url: str, summary: SimulationSummary,
              business_date: dt.date) -> int:
    """How many of the run's sessions opened before the day's end and closed after it."""
    from transfer_wallet.simulator.loadgen import run_sessions

    _, end = business_day_window(business_date, config.report.timezone)
    with _manager(db, config, url, utc_now) as manager:
        views = run_sessions(manager, set(summary.session_ids))
    return sum(1 for v in views if v.opened_at < end and v.closed_at is not None and v.closed_at >= end)


def simulator_store_path(db: Database, out_dir: Path, provider: str) -> Path:
    """Where the provider's simulator keeps its store: beside a SQLite database file, else in ``out_dir``."""
    database = db.engine.url.database if db.engine.url.get_backend_name() == "sqlite" else None
    folder = Path(f"{database}.simulators") if database and database != ":memory:" else out_dir / "simulators"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"sim-{provider}.db"


def _sweep(db: Database, config: ProviderConfig, url: str) -> list[str]:
    """The timeout and in-doubt jobs, once each, at the wall clock, as the scheduler would run them."""
    from jobs import in_doubt, timeouts

    with _manager(db, config, url, utc_now) as manager:
        return [f"{config.name}: {job.run(manager, now=utc_now()).summary()}" for job in (timeouts, in_doubt)]


def release_run(db: Database, config: ProviderConfig, url: str, run_id: str, clock: RunClock) -> None:
    """After a failure: close every session of the run that is still open, so no money stays locked."""
    with _manager(db, config, url, clock) as manager:
        for view in manager.list(provider=config.name, limit=10_000):
            if view.player_id.startswith(f"sim{run_id}-") and view.status not in ("closed", "failed"):
                try:
                    if view.status == "active":
                        manager.close_session(view.id, reason="demo_aborted")
                except TransferWalletError:
                    pass  # left closing: the in-doubt and timeout jobs finish it
        clock.advance_to(clock.limit)
        manager.resolve_in_doubt()
        manager.expire_sessions()


class _manager:
    """``with _manager(db, config, url, clock) as manager``: a session manager over HTTP to the simulator."""

    def __init__(self, db: Database, config: ProviderConfig, url: str, clock: Callable[[], dt.datetime]) -> None:
        from transfer_wallet.providers.http import HttpProvider
        from transfer_wallet.sessions import SessionManager, SessionPolicy

        self.client = HttpProvider(config, base_url=url)
        self.manager = SessionManager(db, {config.name: self.client}, {config.name: SessionPolicy.from_config(config)},
                                      clock=clock)

    def __enter__(self) -> Any:
        return self.manager

    def __exit__(self, *exc: object) -> None:
        self.client.close()


def _named(progress: Progress | None, step: str) -> Progress | None:
    if progress is None:
        return None
    return lambda _step, done, total: progress(step, done, total)


def discrepancy_counts(result: DemoResult) -> Counter[tuple[str, str]]:
    """(provider, type) -> count of discrepancies the nightly runs found."""
    counts: Counter[tuple[str, str]] = Counter()
    for day in result.days:
        for kind, count in day.reconciliation.get("discrepancies_by_type", {}).items():
            counts[(day.provider, kind)] += count
    return counts

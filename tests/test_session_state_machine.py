"""Stateful property test: random session operations against a flaky provider keep every invariant.

Two providers: ``acme`` plays in the players' currency (EUR), ``dollarama`` in USD,
so every transfer there is converted at a stored rate (which moves during the run;
the reverse USD -> EUR rate is published only at some point, so settlements before
it fall back to the inverse of the transfer-in rate).

After every step: each currency sums to zero, locked money equals the open
sessions' money, no available balance is negative, and a replayed open returns
the first session. At the end, once the providers behave and everything is
resolved and closed, each player's money equals the deposit plus what their
sessions brought back minus what they took in, and at each provider what the
sessions brought back minus what they took in equals what the rounds paid out:
nothing lost, nothing created.

The machine runs on SQLite (the Python steps) and on PostgreSQL, where each session step
is one call of its server-side function (migration 0008) and the USD provider's steps,
being cross-currency, take the Python path: one set of rules, checked on both.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from transfer_wallet import fx, migrations
from transfer_wallet.db import open_database
from transfer_wallet.models import metadata
from transfer_wallet.errors import (
    InsufficientFundsError,
    InvalidStateError,
    OutcomeUnknownError,
    ProviderInsufficientFundsError,
    ProviderUnavailableError,
    RejectedError,
    ValidationError,
)
from transfer_wallet.ledger import check_ledger
from transfer_wallet.money import Money, currency
from transfer_wallet.play import PlayMirror
from transfer_wallet.providers.fake import InMemoryProvider
from transfer_wallet.sessions import SessionManager, SessionPolicy
from transfer_wallet.sessions.state import SessionCore
from transfer_wallet.wallet import Wallet

EUR = currency("EUR")
USD = currency("USD")
PLAYERS = ("A", "B")
PROVIDERS = ("acme", "dollarama")
GAME_CURRENCY = {"acme": EUR, "dollarama": USD}
EUR_USD_RATES = ("1.0854", "0.9", "1.5", "1.2345")
DEPOSIT_MINOR = 10_000
T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)
FAULTS = {
    "unknown-applied": (OutcomeUnknownError("response lost"), True),
    "unknown-not-applied": (OutcomeUnknownError("timeout"), False),
    "unavailable": (ProviderUnavailableError("503"), False),
    "rejected": (RejectedError("player busy"), False),
}
_template: dict[str, Path] = {}


def _fresh_database():  # type: ignore[no-untyped-def]
    if "path" not in _template:
        folder = Path(tempfile.mkdtemp(prefix="tw-stateful-"))
        database = open_database(f"sqlite:///{folder / 'template.db'}")
        migrations.upgrade(database)
        database.dispose()
        _template["path"] = folder / "template.db"
    folder = Path(tempfile.mkdtemp(prefix="tw-stateful-"))
    shutil.copyfile(_template["path"], folder / "ledger.db")
    return open_database(f"sqlite:///{folder / 'ledger.db'}"), folder


class SessionMachine(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.db, self.folder = self._database()
        self.now = T0
        clock = lambda: self.now  # noqa: E731
        self.providers = {name: InMemoryProvider(name=name, currency_code=GAME_CURRENCY[name].code, clock=clock)
                          for name in PROVIDERS}
        policies = {name: SessionPolicy(GAME_CURRENCY[name].code, idle_timeout_s=600, max_session_s=3600,
                                        stuck_after_attempts=4, retry_base_s=10, retry_max_s=60)
                    for name in PROVIDERS}
        self.manager = SessionManager(self.db, self.providers, policies, clock=clock)
        fx.set_rate(self.db, "EUR", "USD", "1.0854", effective_at=T0 - dt.timedelta(days=1))  # no reverse rate yet
        self.mirror = PlayMirror(self.db)
        self.wallet = Wallet(self.db)
        for player in PLAYERS:
            self.wallet.create_player(player, "EUR")
            self.wallet.deposit(player, Money(DEPOSIT_MINOR, EUR), reference=f"dep-{player}")
        self.opened: dict[str, tuple[str, str, str, int]] = {}  # key -> (session id, player, provider, amount)
        self.counter = itertools.count()

    def _database(self):  # type: ignore[no-untyped-def]
        return _fresh_database()

    def teardown(self) -> None:
        self.db.dispose()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _tick(self, seconds: int) -> None:
        self.now += dt.timedelta(seconds=seconds)

    @rule(target=sessions, player=st.sampled_from(PLAYERS), provider=st.sampled_from(PROVIDERS),
          cents=st.integers(1, 6_000))
    def open(self, player: str, provider: str, cents: int):  # type: ignore[no-untyped-def]
        key = f"k{next(self.counter)}"
        try:
            view = self.manager.open_session(player, provider, Money(cents, EUR), key=key)
        except (InsufficientFundsError, InvalidStateError):
            return "none"
        except ValidationError as error:  # a few cents that buy no whole USD cent at the rate of the moment
            assert provider != "acme" and "buys nothing in USD" in str(error), error
            return "none"
        self.opened[key] = (view.id, player, provider, cents)
        return view.id

    @rule()
    def replay_an_open(self) -> None:
        for key, (session_id, player, provider, cents) in list(self.opened.items())[:3]:
            assert self.manager.open_session(player, provider, Money(cents, EUR), key=key).id == session_id

    @rule(rate=st.sampled_from(EUR_USD_RATES), reverse=st.booleans())
    def the_rate_moves(self, rate: str, reverse: bool) -> None:
        """A new EUR -> USD rate from now on; with ``reverse``, a USD -> EUR rate slightly worse than its inverse."""
        self._tick(1)
        fx.set_rate(self.db, "EUR", "USD", rate, effective_at=self.now)
        if reverse:
            reverse_rate = (Decimal("0.99") / Decimal(rate)).quantize(Decimal("0.000001"))
            fx.set_rate(self.db, "USD", "EUR", reverse_rate, effective_at=self.now)

    @rule(session=sessions, cents=st.integers(1, 3_000), won=st.integers(0, 5_000))
    def play_a_round(self, session: str, cents: int, won: int) -> None:
        if session == "none" or self.manager.get(session).status != "active":
            return
        view = self.manager.get(session)
        game = GAME_CURRENCY[view.provider]
        try:
            self.providers[view.provider].play(view.player_id, bet=Money(cents, game), win=Money(won, game))
        except ProviderInsufficientFundsError:
            return
        n = next(self.counter)
        self.mirror.bet(session, f"b{n}", f"r{n}", Money(cents, game))
        self.mirror.win(session, f"w{n}", f"r{n}", Money(won, game))
        self._tick(5)

    @rule(session=sessions, cents=st.integers(1, 3_000))
    def bet_then_refund(self, session: str, cents: int) -> None:
        if session == "none" or self.manager.get(session).status != "active":
            return
        game = GAME_CURRENCY[self.manager.get(session).provider]
        n = next(self.counter)
        try:
            self.mirror.bet(session, f"b{n}", f"r{n}", Money(cents, game))
        except InsufficientFundsError:
            return
        self.mirror.refund(session, f"x{n}", f"r{n}", f"b{n}")

    @rule(session=sessions)
    def close(self, session: str) -> None:
        if session == "none":
            return
        try:
            self.manager.close_session(session)
        except InvalidStateError:
            pass  # still opening: in doubt

    @rule(provider=st.sampled_from(PROVIDERS), fault=st.sampled_from(sorted(FAULTS)), times=st.integers(1, 3))
    def provider_misbehaves(self, provider: str, fault: str, times: int) -> None:
        error, apply = FAULTS[fault]
        self.providers[provider].fail_next(error, apply=apply, times=times,
                                operations={"transfer_in", "transfer_out", "transfer_status"})

    @rule(seconds=st.integers(1, 1_200))
    def time_passes_and_jobs_run(self, seconds: int) -> None:
        self._tick(seconds)
        self.manager.expire_sessions()
        self.manager.resolve_in_doubt()

    @invariant()
    def ledger_is_sound(self) -> None:
        report = check_ledger(self.db)
        assert report.clean, report.findings
        assert all(total == 0 for total in report.totals.values())
        for player in PLAYERS:
            balance = self.wallet.balance(player)
            assert balance.available.amount_minor >= 0 and balance.locked.amount_minor >= 0

    def _transfer_in_residues(self) -> dict[str, int]:
        """Each session's transfer-in FX residue (wallet minor units kept by the FX rounding account)."""
        query = "SELECT session_id, fx_residue_minor FROM transfers WHERE direction = 'IN'"
        with self.db.engine.connect() as connection:
            return {row[0]: row[1] for row in connection.exec_driver_sql(query)}

    def _fx_rounding_balance(self) -> int:
        """The sum of the postings on the EUR FX rounding account (0 if it was never used)."""
        query = ("SELECT COALESCE(SUM(p.amount_minor), 0) FROM postings p JOIN accounts a ON a.id = p.account_id "
                 "WHERE a.code = 'fx_rounding:EUR'")
        with self.db.engine.connect() as connection:
            return int(connection.exec_driver_sql(query).scalar_one())

    @precondition(lambda self: True)
    @rule()
    def drain_everything(self) -> None:
        """The providers recover; every session is resolved and closed; money adds up to the cent."""
        for provider in self.providers.values():
            provider._scripts.clear()
        for _ in range(6):
            self._tick(3_600)
            self.manager.resolve_in_doubt()
            for view in self.manager.list(limit=10_000):
                if view.status in ("active", "closing"):
                    self.manager.close_session(view.id)
        views = self.manager.list(limit=10_000)
        for view in views:
            assert view.status in ("closed", "failed"), view
        closed = [v for v in views if v.status == "closed"]
        residues = self._transfer_in_residues()
        for player in PLAYERS:
            balance = self.wallet.balance(player)
            assert balance.locked.amount_minor == 0
            # The player paid amount_in plus the transfer-in's FX residue (the EUR cents that bought
            # no whole USD cent), which the design books to the FX rounding account, not back to them.
            brought_back = sum(v.amount_out.amount_minor - v.amount_in.amount_minor - residues[v.id]  # type: ignore[union-attr]
                               for v in closed if v.player_id == player)
            assert balance.available.amount_minor == DEPOSIT_MINOR + brought_back
            for name, provider in self.providers.items():
                assert provider.balance(player).amount_minor == 0
                rounds_net = sum(r.net.amount_minor for r in provider.rounds(player, T0 - dt.timedelta(days=1)))
                game_result = sum(v.game_amount_out.amount_minor - v.game_amount_in.amount_minor  # type: ignore[union-attr]
                                  for v in closed if v.player_id == player and v.provider == name)
                assert game_result == rounds_net, (player, name)
        # ...and that account holds exactly those residues: no cent of them lost or created.
        assert self._fx_rounding_balance() == sum(residues[v.id] for v in closed)


SessionMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_random_session_operations_keep_every_invariant = pytest.mark.filterwarnings("ignore")(SessionMachine.TestCase)


class PostgresSessionMachine(SessionMachine):
    """The same machine on PostgreSQL, where every session step is a server-side function call."""

    url = ""

    def _database(self):  # type: ignore[no-untyped-def]
        database = open_database(self.url)
        with database.engine.begin() as connection:
            tables = ", ".join(table.name for table in metadata.sorted_tables)
            connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        return database, None


@pytest.mark.postgres
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("server_steps", [True, False], ids=["server-steps", "python-steps"])
def test_random_session_operations_keep_every_invariant_on_postgresql(_pg_migrated_url, monkeypatch, server_steps):
    """With the server-side steps, and (fewer examples: the SQLite machine runs the same Python) without."""
    monkeypatch.setattr(SessionCore, "server_steps", server_steps)
    PostgresSessionMachine.url = _pg_migrated_url
    run_state_machine_as_test(PostgresSessionMachine, settings=settings(
        max_examples=25 if server_steps else 10, stateful_step_count=25, deadline=None))

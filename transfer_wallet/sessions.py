"""Transfer sessions: lock money in, move it to a provider, bring the rest back, exactly.

State machine (``TRANSITIONS`` is the whole table; anything else is refused)::

    OPENING --provider ok--> ACTIVE --close/timeout--> CLOSING --provider ok--> CLOSED
       |  \\--definitive refusal--> FAILED (funds back)      |  \\--unknown/refused--> CLOSING (retried, then stuck)
       \\--unknown--> OPENING (in doubt: resolve_in_doubt finishes it)

Every provider call follows the same three steps, so that a crash between any
two of them loses nothing (the next ``resolve_in_doubt`` / ``expire_sessions``
pass finishes the work):

1. one database transaction records the intent (funds locked, transfer PENDING);
2. the provider is called with our transfer id, **outside** any transaction;
3. one database transaction records the outcome, guarded by the transfer's
   state (``UPDATE ... WHERE status IN ('pending', 'in_doubt')``), so that two
   workers finishing the same transfer apply it once.

An unknown outcome is never refunded on a guess: the money stays locked until
the provider says what happened (``transfer_status``) or a re-send with the
same transfer id gives a definite answer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Context, Decimal
from typing import Any, Callable, Mapping

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from transfer_wallet import ledger
from transfer_wallet.config import ProviderConfig
from transfer_wallet.db import Database
from transfer_wallet.errors import (
    AuthenticationFailedError,
    IdempotencyConflictError,
    InvalidStateError,
    NotFoundError,
    OutcomeUnknownError,
    ProviderError,
    ProviderInsufficientFundsError,
    RejectedError,
    TransferConflictError,
    ValidationError,
)
from transfer_wallet.models import (
    ACTIVE,
    CLOSED,
    CLOSING,
    COMPLETED,
    FAILED,
    FX_ROUNDING,
    HOUSE,
    IN_DOUBT,
    OPEN_STATES,
    OPENING,
    PENDING,
    REFUSED,
    Account,
    Discrepancy,
    GameRound,
    GameSession,
    Transfer,
    utc_now,
)
from transfer_wallet.money import Money, convert, currency, parse_rate

_sessions = GameSession.__table__
_transfers = Transfer.__table__
_rounds = GameRound.__table__
_discrepancies = Discrepancy.__table__
_accounts = Account.__table__

#: The allowed session transitions; ``_move`` refuses anything else.
TRANSITIONS: dict[str, frozenset[str]] = {
    OPENING: frozenset({ACTIVE, FAILED}),
    ACTIVE: frozenset({CLOSING}),
    CLOSING: frozenset({CLOSED}),
    CLOSED: frozenset(),
    FAILED: frozenset(),
}
#: Definitive refusals: the provider did not apply the transfer and never will under this id.
DEFINITIVE = (AuthenticationFailedError, ProviderInsufficientFundsError, RejectedError, TransferConflictError)
#: How long a PENDING transfer may wait for its own step 3 before the in-doubt job takes it over.
PENDING_GRACE_S = 60
MAX_BATCH = 200
#: Close reasons of the timeout sweep (re-checked against the deadline under the session lock).
TIMEOUT_REASONS = frozenset({"idle_timeout", "max_length", "player_limit"})


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Per-provider session rules: game currency, timeouts, retries."""

    currency: str
    idle_timeout_s: int = 900
    max_session_s: int = 4 * 3600
    max_open_sessions: int = 1
    max_attempts: int = 8
    retry_base_s: int = 30
    retry_max_s: int = 3600

    @classmethod
    def from_config(cls, config: ProviderConfig) -> "SessionPolicy":
        extra = config.extra
        return cls(
            currency=config.currency,
            idle_timeout_s=config.idle_timeout_s,
            max_session_s=config.max_session_s,
            max_open_sessions=int(extra.get("max_open_sessions", 1)),  # type: ignore[arg-type]
            max_attempts=int(extra.get("stuck_after_attempts", 8)),  # type: ignore[arg-type]
        )

    def next_attempt(self, attempts: int, now: dt.datetime) -> dt.datetime:
        """Exponential backoff: base * 2^(attempts-1), capped."""
        delay = min(self.retry_base_s * 2 ** max(attempts - 1, 0), self.retry_max_s)
        return now + dt.timedelta(seconds=delay)


@dataclass(frozen=True, slots=True)
class TransferView:
    """One provider transfer of a session, as stored."""

    id: str
    direction: str
    status: str
    amount: Money | None
    game_amount: Money | None
    fx_rate: str | None
    attempts: int
    last_error: str | None
    provider_tx_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "direction": self.direction, "status": self.status,
            "amount": self.amount.format() if self.amount else None,
            "game_amount": self.game_amount.format() if self.game_amount else None,
            "fx_rate": self.fx_rate, "attempts": self.attempts, "last_error": self.last_error,
            "provider_tx_id": self.provider_tx_id,
        }


@dataclass(frozen=True, slots=True)
class SessionView:
    """A session as operators see it: state, money, deadlines, transfers."""

    id: str
    player_id: str
    provider: str
    status: str
    in_doubt: bool
    stuck: bool
    amount_in: Money
    game_amount_in: Money
    game_balance: Money
    amount_out: Money | None
    game_amount_out: Money | None
    opened_at: dt.datetime
    last_activity_at: dt.datetime
    deadline_at: dt.datetime
    closed_at: dt.datetime | None
    close_reason: str | None
    failure_reason: str | None
    transfers: tuple[TransferView, ...] = field(default=())

    @property
    def display_status(self) -> str:
        """``opening (in doubt)``, ``closing (stuck)`` ... as shown to operators."""
        notes = [n for n, on in (("in doubt", self.in_doubt), ("stuck", self.stuck)) if on]
        return f"{self.status} ({', '.join(notes)})" if notes else self.status

    def as_dict(self) -> dict[str, Any]:
        def fmt(value: Money | None) -> str | None:
            return value.format() if value is not None else None

        return {
            "session_id": self.id, "player_id": self.player_id, "provider": self.provider,
            "status": self.status, "in_doubt": self.in_doubt, "stuck": self.stuck,
            "currency": self.amount_in.currency.code, "amount_in": fmt(self.amount_in),
            "game_currency": self.game_amount_in.currency.code, "game_amount_in": fmt(self.game_amount_in),
            "game_balance": fmt(self.game_balance), "amount_out": fmt(self.amount_out),
            "game_amount_out": fmt(self.game_amount_out), "opened_at": self.opened_at.isoformat(),
            "last_activity_at": self.last_activity_at.isoformat(), "deadline_at": self.deadline_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "close_reason": self.close_reason, "failure_reason": self.failure_reason,
            "transfers": [t.as_dict() for t in self.transfers],
        }


@dataclass
class SweepReport:
    """What a timeout or in-doubt pass did."""

    examined: int = 0
    closed: int = 0
    completed: int = 0
    refunded: int = 0
    still_in_doubt: int = 0
    stuck: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def request_digest(document: dict[str, Any]) -> str:
    """SHA-256 of a request's canonical JSON: what a replay under the same key must match."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def session_deadline(session: Row, now: dt.datetime) -> dt.datetime:
    """When an active session times out after activity at ``now``: idle or maximum length, first."""
    return min(now + dt.timedelta(seconds=session.idle_timeout_s),
               session.opened_at + dt.timedelta(seconds=session.max_session_s))


def _canonical_amount(amount: Money | str) -> str:
    """The amount as a request hash sees it: "20", "20.00" and Money(2000, EUR) are one request."""
    from decimal import InvalidOperation

    if isinstance(amount, Money):
        return format(amount.to_decimal().normalize(), "f")
    try:
        return format(Decimal(str(amount).strip()).normalize(), "f")
    except (InvalidOperation, ValueError):
        return str(amount)


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def _lock_rows(connection: Connection, ids: list[int]) -> None:
    """Row locks in id order (PostgreSQL); SQLite's BEGIN IMMEDIATE already serialises writers."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(_accounts.c.id).where(_accounts.c.id.in_(ids)).order_by(_accounts.c.id).with_for_update())


def _session_row(connection: Connection, session_id: str, *, lock: bool = False) -> Row:
    query = select(_sessions).where(_sessions.c.id == session_id)
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFoundError(f"unknown session '{session_id}'")
    return row


def _move(connection: Connection, row: Row, target: str, **values: Any) -> None:
    """Apply an allowed transition, guarded by the state we read (no lost transition)."""
    if target not in TRANSITIONS[row.status]:
        raise InvalidStateError(f"session {row.id} cannot go from {row.status} to {target}")
    result = connection.execute(
        update(_sessions).where(_sessions.c.id == row.id, _sessions.c.status == row.status).values(status=target, **values)
    )
    if result.rowcount != 1:
        raise InvalidStateError(f"session {row.id} changed state concurrently; try again")


def _guard_transfer(connection: Connection, transfer_id: str, target: str, now: dt.datetime, **values: Any) -> bool:
    """Finish a transfer once: True if this call moved it out of pending/in-doubt."""
    result = connection.execute(
        update(_transfers)
        .where(_transfers.c.id == transfer_id, _transfers.c.status.in_((PENDING, IN_DOUBT)))
        .values(status=target, updated_at=now, **values)
    )
    return result.rowcount == 1


class SessionManager:
    """Opens, mirrors, closes, expires and recovers transfer sessions.

    ``providers`` maps a provider name to its ``Provider`` (HTTP client, simulator
    client or in-process fake) and ``policies`` to its ``SessionPolicy``.
    """

    def __init__(
        self,
        db: Database,
        providers: Mapping[str, Any],
        policies: Mapping[str, SessionPolicy],
        *,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.db = db
        self.providers = providers
        self.policies = policies
        self.clock = clock

    # -- lookups ------------------------------------------------------------------------------

    def _provider(self, name: str) -> tuple[Any, SessionPolicy]:
        if name not in self.providers or name not in self.policies:
            known = ", ".join(sorted(self.providers)) or "none configured"
            raise NotFoundError(f"unknown provider '{name}' (known: {known})")
        return self.providers[name], self.policies[name]

    def get(self, session_id: str) -> SessionView:
        """The session with its transfers; ``NotFoundError`` if unknown."""
        return self.db.transaction(lambda c: self._view(c, session_id), readonly=True)

    def _view(self, connection: Connection, session_id: str) -> SessionView:
        row = _session_row(connection, session_id)
        transfers = connection.execute(
            select(_transfers).where(_transfers.c.session_id == session_id).order_by(_transfers.c.created_at, _transfers.c.id)
        ).all()
        return _to_view(row, transfers)

    def list(
        self, *, status: str | None = None, player_id: str | None = None, provider: str | None = None,
        stuck: bool | None = None, in_doubt: bool | None = None, limit: int = 100,
    ) -> list[SessionView]:
        """Sessions, newest first, filtered; at most ``limit``."""
        limit = max(1, min(limit, 10_000))

        def work(connection: Connection) -> list[SessionView]:
            query = select(_sessions).order_by(_sessions.c.opened_at.desc(), _sessions.c.id).limit(limit)
            if status:
                query = query.where(_sessions.c.status == status)
            if player_id:
                query = query.where(_sessions.c.player_id == player_id)
            if provider:
                query = query.where(_sessions.c.provider == provider)
            if stuck is not None:
                query = query.where(_sessions.c.stuck == stuck)
            if in_doubt:
                doubtful = select(_transfers.c.session_id).where(_transfers.c.status.in_((PENDING, IN_DOUBT)))
                query = query.where(_sessions.c.id.in_(doubtful))
            rows = connection.execute(query).all()
            ids = [r.id for r in rows]
            transfers = connection.execute(select(_transfers).where(_transfers.c.session_id.in_(ids))).all() if ids else []
            by_session: dict[str, list[Row]] = {}
            for t in transfers:
                by_session.setdefault(t.session_id, []).append(t)
            return [_to_view(r, sorted(by_session.get(r.id, []), key=lambda t: (t.created_at, t.id))) for r in rows]

        return self.db.transaction(work, readonly=True)

    # -- transfer-in --------------------------------------------------------------------------

    def open_session(
        self, player_id: str, provider: str, amount: Money | str, *, key: str | None = None, now: dt.datetime | None = None
    ) -> SessionView:
        """Lock ``amount`` and move it into ``provider``'s game wallet; returns the session.

        A repeat with the same ``key`` returns the same session (whatever its state
        now); the same key for another player, provider or amount is a conflict.
        The session comes back ACTIVE, FAILED (refused, funds back, reason kept) or
        OPENING with ``in_doubt`` (money stays locked until resolved).
        """
        from transfer_wallet.wallet import validate_player_id, validate_reference

        validate_player_id(player_id)
        provider_client, policy = self._provider(provider)
        key = validate_reference(key) if key is not None else f"auto-{uuid.uuid4()}"
        request = {"player_id": player_id, "provider": provider, "amount": _canonical_amount(amount)}
        digest = request_digest(request)
        now = now or self.clock()
        try:
            created = self.db.transaction(lambda c: self._open_step1(c, player_id, provider, policy, amount, key, digest, now))
        except IntegrityError:
            created = None  # a concurrent open with the same key won the race: replay it below
        if created is None:
            return self.db.transaction(lambda c: self._replay_open(c, key, digest), readonly=True)
        session_id, transfer_id, game_amount = created
        _, view = self._send(provider_client, policy, transfer_id, "IN", player_id, game_amount, now, view_of=session_id)
        assert view is not None
        return view

    def _replay_open(self, connection: Connection, key: str, digest: str) -> SessionView:
        row = connection.execute(select(_sessions.c.id, _sessions.c.open_request_hash).where(_sessions.c.open_key == key)).first()
        if row is None:
            raise InvalidStateError(f"session for key '{key}' not found after a conflicting insert; try again")
        if row.open_request_hash != digest:
            raise IdempotencyConflictError(f"idempotency key '{key}' was already used for a different session request")
        return self._view(connection, row.id)

    def _open_step1(
        self, connection: Connection, player_id: str, provider: str, policy: SessionPolicy,
        amount: Money | str, key: str, digest: str, now: dt.datetime,
    ) -> tuple[str, str, Money] | None:
        from transfer_wallet import limits
        from transfer_wallet.fx import rate_at
        from transfer_wallet.wallet import _as_money

        if connection.execute(select(_sessions.c.id).where(_sessions.c.open_key == key)).first():
            return None
        wallet_ccy, main, locked = ledger.player_accounts(self.db, connection, player_id)
        money = _as_money(amount, wallet_ccy, player_id)
        _lock_rows(connection, [main.id, locked.id])  # serialises this player's opens: counts and limits hold
        if connection.execute(select(_sessions.c.id).where(_sessions.c.open_key == key)).first():
            return None  # the same open, repeated concurrently, got here first: replay it
        open_count = connection.execute(
            select(func.count()).select_from(_sessions).where(
                _sessions.c.player_id == player_id, _sessions.c.provider == provider, _sessions.c.status.in_(OPEN_STATES)
            )
        ).scalar_one()
        if open_count >= policy.max_open_sessions:
            raise InvalidStateError(
                f"player '{player_id}' already has {open_count} open session(s) at {provider} (max {policy.max_open_sessions})"
            )
        player_max_s = limits.check_transfer_in(connection, player_id, money.amount_minor, now=now)
        max_session_s = min(policy.max_session_s, player_max_s) if player_max_s else policy.max_session_s

        rate: str | None = None
        if policy.currency != wallet_ccy:
            stored = rate_at(connection, wallet_ccy, policy.currency, now)
            conversion = convert(money, policy.currency, stored.rate)
            rate = str(stored.rate)
        else:
            conversion = convert(money, policy.currency, Decimal(1))
        if conversion.target.amount_minor <= 0:
            raise ValidationError(f"{money} buys nothing in {policy.currency} at rate {rate}; transfer more")
        session_id = f"s{uuid.uuid4().hex[:20]}"
        transfer_id = f"{session_id}-in"
        legs = [ledger.Leg(main, -money.amount_minor), ledger.Leg(locked, conversion.consumed.amount_minor)]
        if conversion.residue.amount_minor:
            rounding = ledger.system_account(self.db, connection, FX_ROUNDING, wallet_ccy)
            legs.append(ledger.Leg(rounding, conversion.residue.amount_minor))
        ledger.post(connection, kind="session_lock", idempotency_key=f"session:{session_id}:lock", legs=legs)
        deadline = min(now + dt.timedelta(seconds=policy.idle_timeout_s), now + dt.timedelta(seconds=max_session_s))
        connection.execute(_sessions.insert().values(
            id=session_id, player_id=player_id, provider=provider, status=OPENING, wallet_currency=wallet_ccy,
            game_currency=policy.currency, amount_in_minor=conversion.consumed.amount_minor,
            game_amount_in_minor=conversion.target.amount_minor, game_balance_minor=0, mirrored=False,
            open_key=key, open_request_hash=digest, idle_timeout_s=policy.idle_timeout_s, max_session_s=max_session_s,
            opened_at=now, last_activity_at=now, deadline_at=deadline, close_attempts=0, stuck=False,
        ))
        connection.execute(_transfers.insert().values(
            id=transfer_id, session_id=session_id, player_id=player_id, provider=provider, direction="IN",
            status=PENDING, wallet_currency=wallet_ccy, amount_minor=conversion.consumed.amount_minor,
            game_currency=policy.currency, game_amount_minor=conversion.target.amount_minor, fx_rate=rate,
            fx_residue_minor=conversion.residue.amount_minor, attempts=0, created_at=now, updated_at=now,
        ))
        return session_id, transfer_id, conversion.target

    # -- the provider call and its outcome -----------------------------------------------------

    def _send(
        self, provider: Any, policy: SessionPolicy, transfer_id: str, direction: str,
        player_id: str, game_amount: Money | None, now: dt.datetime, *, view_of: str | None = None,
    ) -> tuple[str, SessionView | None]:
        """Steps 2 and 3 for one transfer: call, then record the outcome in one transaction.

        Returns the outcome kind and, if ``view_of`` names a session, that session as it
        stands after step 3 (read in the same transaction: no extra round trip).
        """
        try:
            if direction == "IN":
                assert game_amount is not None
                result = provider.transfer_in(transfer_id, player_id, game_amount)
            else:  # None: withdraw everything
                result = provider.transfer_out(transfer_id, player_id, game_amount)
        except DEFINITIVE as error:
            outcome, record = "refused", lambda c, e=error: self._refused(c, policy, transfer_id, e, now)
        except Exception as error:  # noqa: BLE001 - unknown, timeouts, bugs: nothing proves it was not applied
            outcome, record = "in_doubt", lambda c, e=error: self._in_doubt(c, policy, transfer_id, e, now)
        else:
            problem = _answer_problem(result, transfer_id, direction, player_id)
            if problem:
                outcome, record = "in_doubt", lambda c, e=OutcomeUnknownError(problem): self._in_doubt(c, policy, transfer_id, e, now)
            else:
                outcome, record = "applied", lambda c: self._applied(
                    c, policy, transfer_id, result.amount, result.provider_tx_id, now, applied_at=result.created_at
                )

        def step3(connection: Connection) -> SessionView | None:
            record(connection)
            return self._view(connection, view_of) if view_of else None

        return outcome, self.db.transaction(step3)

    def _transfer_row(self, connection: Connection, transfer_id: str) -> Row:
        row = connection.execute(select(_transfers).where(_transfers.c.id == transfer_id)).first()
        if row is None:
            raise NotFoundError(f"unknown transfer '{transfer_id}'")
        return row

    def _locked_transfer(self, connection: Connection, transfer_id: str) -> tuple[Row, Row]:
        """(transfer, session): the session row locked first, then the transfer read fresh.

        Every finisher of a transfer takes the session lock before reading the transfer's
        state, so the worker that loses a race sees the winner's result, not a stale one.
        """
        session_id = connection.execute(select(_transfers.c.session_id).where(_transfers.c.id == transfer_id)).scalar()
        if session_id is None:
            raise NotFoundError(f"unknown transfer '{transfer_id}'")
        session = _session_row(connection, session_id, lock=True)
        return self._transfer_row(connection, transfer_id), session

    def _applied(
        self, connection: Connection, policy: SessionPolicy, transfer_id: str, game_amount: Money,
        provider_tx_id: str, now: dt.datetime, *, applied_at: dt.datetime | None = None,
    ) -> None:
        transfer, session = self._locked_transfer(connection, transfer_id)
        if transfer.status not in (PENDING, IN_DOUBT):
            return  # another worker finished it first
        problem = _amount_problem(transfer, session, game_amount)
        if problem:  # never book an answer that does not fit what we asked
            self._in_doubt(connection, policy, transfer_id, OutcomeUnknownError(problem), now)
            self._flag(connection, session, transfer, "PROVIDER_ANSWER_MISMATCH", problem, now)
            return
        if transfer.direction == "IN":
            if not _guard_transfer(connection, transfer_id, COMPLETED, now, provider_tx_id=provider_tx_id, completed_at=now):
                return
            _move(connection, session, ACTIVE, game_balance_minor=session.game_amount_in_minor, last_activity_at=now,
                  stuck=False, deadline_at=session_deadline(session, now))
            return
        self._settle(connection, session, transfer, game_amount, provider_tx_id, now, rate_at_time=applied_at or now)

    def _settle(
        self, connection: Connection, session: Row, transfer: Row, game_out: Money, provider_tx_id: str,
        now: dt.datetime, *, rate_at_time: dt.datetime | None = None,
    ) -> None:
        """Transfer-out applied: money back to main, game result to the house, conservation checked.

        The FX rate is the one in force when the provider applied the transfer, not when
        a late worker happens to record it.
        """
        from transfer_wallet.fx import rate_at

        wallet_ccy = currency(session.wallet_currency)
        rate: str | None = None
        if session.game_currency == session.wallet_currency:
            conversion = convert(game_out, wallet_ccy, Decimal(1))
        else:
            try:
                rate_value = rate_at(connection, session.game_currency, session.wallet_currency, rate_at_time or now).rate
            except NotFoundError:  # the money is back already: fall back to the inverse of the rate we used in
                rate_in = self._transfer_in_rate(connection, session.id)
                rate_value = parse_rate((Decimal(1) / rate_in).quantize(Decimal("1e-12"), rounding=ROUND_FLOOR, context=Context(prec=40)))
            conversion = convert(game_out, wallet_ccy, rate_value)
            rate = str(rate_value)
        amount_out = conversion.target.amount_minor
        _, main, locked = ledger.player_accounts(self.db, connection, session.player_id)
        legs = [ledger.Leg(locked, -session.amount_in_minor)]
        if amount_out:
            legs.append(ledger.Leg(main, amount_out))
        game_result = session.amount_in_minor - amount_out  # the house wins what the player lost
        if game_result:
            house = ledger.system_account(self.db, connection, HOUSE, session.wallet_currency, session.provider)
            legs.append(ledger.Leg(house, game_result))
        posted = ledger.post(connection, kind="session_settle", idempotency_key=f"session:{session.id}:settle", legs=legs)
        if not _guard_transfer(
            connection, transfer.id, COMPLETED, now, provider_tx_id=provider_tx_id, completed_at=now,
            amount_minor=amount_out, game_amount_minor=game_out.amount_minor, fx_rate=rate,
            fx_residue_minor=conversion.residue.amount_minor, entry_id=posted.entry_id,
        ):
            raise InvalidStateError(f"transfer {transfer.id} was finished concurrently")  # rolls the settle back
        _move(connection, session, CLOSED, closed_at=now, amount_out_minor=amount_out,
              game_amount_out_minor=game_out.amount_minor, next_attempt_at=None, stuck=False)
        if session.mirrored and game_out.amount_minor != session.game_balance_minor:
            expected = Money(session.game_balance_minor, game_out.currency)
            connection.execute(_discrepancies.insert().values(
                kind="SESSION_CONSERVATION", provider=session.provider, session_id=session.id, transfer_id=transfer.id,
                player_id=session.player_id, currency=session.game_currency, expected_minor=session.game_balance_minor,
                actual_minor=game_out.amount_minor, status="open", created_at=now, updated_at=now,
                detail=(f"provider returned {game_out} but transfer-in - bets + wins + refunds = {expected} "
                        f"(difference {game_out - expected})"),
            ))

    def _transfer_in_rate(self, connection: Connection, session_id: str) -> Decimal:
        rate = connection.execute(
            select(_transfers.c.fx_rate).where(_transfers.c.session_id == session_id, _transfers.c.direction == "IN")
        ).scalar()
        if not rate:
            raise NotFoundError(f"no FX rate recorded for session {session_id}")
        return Decimal(rate)

    def _refused(self, connection: Connection, policy: SessionPolicy, transfer_id: str, error: BaseException, now: dt.datetime) -> None:
        transfer, session = self._locked_transfer(connection, transfer_id)
        if not _guard_transfer(connection, transfer_id, REFUSED, now, last_error=_short(error), attempts=transfer.attempts + 1):
            return
        if transfer.direction == "IN":  # nothing reached the provider: every cent goes back
            _, main, locked = ledger.player_accounts(self.db, connection, session.player_id)
            legs = [ledger.Leg(locked, -session.amount_in_minor), ledger.Leg(main, session.amount_in_minor + transfer.fx_residue_minor)]
            if transfer.fx_residue_minor:
                rounding = ledger.system_account(self.db, connection, FX_ROUNDING, session.wallet_currency)
                legs.append(ledger.Leg(rounding, -transfer.fx_residue_minor))
            ledger.post(connection, kind="session_unlock", idempotency_key=f"session:{session.id}:unlock", legs=legs)
            _move(connection, session, FAILED, failure_reason=_short(error), closed_at=now)
            if isinstance(error, TransferConflictError):
                self._flag(connection, session, transfer, "TRANSFER_CONFLICT", f"provider holds another transfer under id {transfer.id}", now)
            return
        # transfer-out refused: the money is still at the provider; retry later under a new id
        attempts = session.close_attempts + 1
        connection.execute(update(_sessions).where(_sessions.c.id == session.id).values(
            close_attempts=attempts, next_attempt_at=policy.next_attempt(attempts, now), stuck=attempts >= policy.max_attempts,
            failure_reason=_short(error),
        ))

    def _in_doubt(self, connection: Connection, policy: SessionPolicy, transfer_id: str, error: BaseException, now: dt.datetime) -> None:
        transfer, _session = self._locked_transfer(connection, transfer_id)
        attempts = transfer.attempts + 1
        next_attempt_at = policy.next_attempt(attempts, now)
        if not _guard_transfer(connection, transfer_id, IN_DOUBT, now, attempts=attempts, last_error=_short(error),
                               next_attempt_at=next_attempt_at):
            return  # finished meanwhile: nothing is in doubt any more
        values: dict[str, Any] = {"stuck": attempts >= policy.max_attempts}
        if transfer.direction == "OUT":  # the closing retry waits for the same backoff
            values.update(close_attempts=attempts, next_attempt_at=next_attempt_at)
        connection.execute(update(_sessions).where(_sessions.c.id == transfer.session_id).values(**values))

    def _flag(self, connection: Connection, session: Row, transfer: Row, kind: str, detail: str, now: dt.datetime) -> None:
        connection.execute(_discrepancies.insert().values(
            kind=kind, provider=session.provider, session_id=session.id, transfer_id=transfer.id,
            player_id=session.player_id, currency=session.game_currency, detail=detail, status="open",
            created_at=now, updated_at=now,
        ))

    # -- transfer-out -------------------------------------------------------------------------

    def close_session(
        self, session_id: str, *, key: str | None = None, reason: str = "player", now: dt.datetime | None = None
    ) -> SessionView:
        """Withdraw everything from the game wallet and settle; safe to repeat.

        Closing a closed or failed session returns it unchanged. A ``key`` already
        used to close another session is a conflict.
        """
        from transfer_wallet.wallet import validate_reference

        if key is not None:
            validate_reference(key)
        now = now or self.clock()
        try:
            step = self.db.transaction(lambda c: self._close_step1(c, session_id, key, reason, now))
        except IntegrityError:  # the same close key set on another session at the same moment
            raise IdempotencyConflictError(f"close key '{key}' is being used for another session") from None
        if step is None:
            return self.get(session_id)
        provider_name, transfer_id, player_id, game_amount = step
        provider, policy = self._provider(provider_name)
        _, view = self._send(provider, policy, transfer_id, "OUT", player_id, game_amount, now, view_of=session_id)
        assert view is not None
        return view

    def _close_step1(
        self, connection: Connection, session_id: str, key: str | None, reason: str, now: dt.datetime
    ) -> tuple[str, str, str, Money | None] | None:
        """Move to CLOSING and pick the transfer-out to send: the open one (same id) or a new one.

        With one session per player at the provider we withdraw everything; where a
        player may hold several sessions there, only this session's mirrored game
        balance (withdrawing all would take the other sessions' money).
        """
        session = _session_row(connection, session_id, lock=True)
        if key is not None:
            other = connection.execute(select(_sessions.c.id).where(_sessions.c.close_key == key)).scalar()
            if other is not None and other != session_id:
                raise IdempotencyConflictError(f"close key '{key}' was already used for session {other}")
            if session.close_key is None:
                connection.execute(update(_sessions).where(_sessions.c.id == session_id).values(close_key=key))
        if session.status in (CLOSED, FAILED):
            return None
        if session.status == OPENING:
            raise InvalidStateError(f"session {session_id} is still opening (transfer-in not confirmed); run `tw jobs run in-doubt` first")
        if session.status == ACTIVE:
            if reason in TIMEOUT_REASONS and session.deadline_at > now:
                return None  # play extended the session after the sweep picked it: not due any more
            _move(connection, session, CLOSING, closing_at=now, close_reason=reason)
        game_ccy = currency(session.game_currency)
        outs = connection.execute(
            select(_transfers.c.id, _transfers.c.status, _transfers.c.game_amount_minor)
            .where(_transfers.c.session_id == session_id, _transfers.c.direction == "OUT")
            .order_by(_transfers.c.created_at, _transfers.c.id)
        ).all()
        open_out = [t for t in outs if t.status in (PENDING, IN_DOUBT)]
        if open_out:  # re-send the same id with the same content: the provider applies it at most once
            last = open_out[-1]
            amount = Money(last.game_amount_minor, game_ccy) if last.game_amount_minor is not None else None
            return session.provider, last.id, session.player_id, amount
        _, policy = self._provider(session.provider)
        amount = None if policy.max_open_sessions == 1 else Money(session.game_balance_minor, game_ccy)
        transfer_id = f"{session_id}-out{len(outs) + 1}"
        connection.execute(_transfers.insert().values(
            id=transfer_id, session_id=session_id, player_id=session.player_id, provider=session.provider,
            direction="OUT", status=PENDING, wallet_currency=session.wallet_currency, game_currency=session.game_currency,
            game_amount_minor=amount.amount_minor if amount is not None else None, attempts=0, created_at=now, updated_at=now,
        ))
        if amount is not None and amount.amount_minor == 0:
            # Everything of this session was lost at the provider: nothing to withdraw, settle here.
            self._settle(connection, _session_row(connection, session_id), self._transfer_row(connection, transfer_id),
                         amount, "none", now)
            return None
        return session.provider, transfer_id, session.player_id, amount

    # -- sweeps -------------------------------------------------------------------------------

    def expire_sessions(self, now: dt.datetime | None = None, *, limit: int = MAX_BATCH) -> SweepReport:
        """Close every active session past its deadline; retry closings that are due."""
        now = now or self.clock()
        report = SweepReport()
        due = self.db.transaction(lambda c: c.execute(
            select(_sessions.c.id, _sessions.c.status, _sessions.c.last_activity_at, _sessions.c.idle_timeout_s,
                   _sessions.c.opened_at, _sessions.c.max_session_s, _sessions.c.provider)
            .where(or_(and_(_sessions.c.status == ACTIVE, _sessions.c.deadline_at <= now),
                       and_(_sessions.c.status == CLOSING, or_(_sessions.c.next_attempt_at.is_(None), _sessions.c.next_attempt_at <= now))))
            .order_by(_sessions.c.deadline_at).limit(limit)
        ).all(), readonly=True)
        for row in due:
            report.examined += 1
            reason = _timeout_reason(row, self.policies.get(row.provider)) if row.status == ACTIVE else "retry"
            try:
                view = self.close_session(row.id, reason=reason, now=now)
            except Exception as error:  # one bad session never stops the sweep
                report.errors.append(f"{row.id}: {_short(error)}")
                continue
            report.closed += view.status == CLOSED
            report.stuck += view.stuck
        return report

    def resolve_in_doubt(self, now: dt.datetime | None = None, *, limit: int = MAX_BATCH) -> SweepReport:
        """Finish transfers whose outcome is unknown: ask the provider, re-send the same id if unseen."""
        now = now or self.clock()
        report = SweepReport()
        grace = now - dt.timedelta(seconds=PENDING_GRACE_S)
        rows = self.db.transaction(lambda c: c.execute(
            select(_transfers.c.id, _transfers.c.direction, _transfers.c.provider, _transfers.c.player_id,
                   _transfers.c.game_amount_minor, _transfers.c.game_currency)
            .where(or_(and_(_transfers.c.status == IN_DOUBT,
                            or_(_transfers.c.next_attempt_at.is_(None), _transfers.c.next_attempt_at <= now)),
                       and_(_transfers.c.status == PENDING, _transfers.c.updated_at <= grace)))
            .order_by(_transfers.c.created_at).limit(limit)
        ).all(), readonly=True)
        for row in rows:
            report.examined += 1
            try:
                outcome = self._resolve_one(row, now)
            except Exception as error:
                report.errors.append(f"{row.id}: {_short(error)}")
                continue
            if outcome == "applied":
                report.completed += 1
            elif outcome == "refused":
                report.refunded += row.direction == "IN"
            else:
                report.still_in_doubt += 1
        return report

    def _resolve_one(self, row: Row, now: dt.datetime) -> str:
        from transfer_wallet.providers.protocol import TransferState

        provider, policy = self._provider(row.provider)
        game_amount = Money(row.game_amount_minor, currency(row.game_currency)) if row.game_amount_minor is not None else None
        try:
            status = provider.transfer_status(row.id)
        except (OutcomeUnknownError, ProviderError) as error:
            self.db.transaction(lambda c, e=error: self._in_doubt(c, policy, row.id, e, now))
            return "in_doubt"
        problem = _answer_problem(status, row.id, row.direction, row.player_id)
        if problem:
            self.db.transaction(lambda c: self._in_doubt(c, policy, row.id, OutcomeUnknownError(problem), now))
            return "in_doubt"
        if status.state == TransferState.APPLIED and status.amount is not None:
            self.db.transaction(lambda c: self._applied(
                c, policy, row.id, status.amount, status.provider_tx_id or "", now, applied_at=status.created_at
            ))
            return "applied"
        if status.state == TransferState.FAILED:
            error = RejectedError(f"provider reports transfer {row.id} failed ({status.error_code or 'no code'})")
            self.db.transaction(lambda c: self._refused(c, policy, row.id, error, now))
            return "refused"
        # NOT_FOUND: never seen (or not yet): re-send under the same id, which applies at most once
        return self._send(provider, policy, row.id, row.direction, row.player_id, game_amount, now)[0]


def _answer_problem(answer: Any, transfer_id: str, direction: str, player_id: str) -> str | None:
    """Why a provider's answer (result or status) is not about the transfer we asked for, or None."""
    answered_direction = getattr(getattr(answer, "direction", None), "value", getattr(answer, "direction", None))
    if answer.transfer_id != transfer_id:
        return f"provider answered for transfer {answer.transfer_id!r}, not {transfer_id!r}"
    if answered_direction is not None and answered_direction != direction:
        return f"provider answered {answered_direction} for {direction} transfer {transfer_id}"
    if getattr(answer, "player_id", None) not in (None, player_id):
        return f"provider answered for player {answer.player_id!r}, not {player_id!r} (transfer {transfer_id})"
    return None


def _amount_problem(transfer: Row, session: Row, game_amount: Money) -> str | None:
    """Why the amount a provider says it moved cannot be booked for this transfer, or None."""
    if game_amount.currency.code != session.game_currency:
        return (f"provider moved {game_amount} for transfer {transfer.id}, but the session plays in "
                f"{session.game_currency}")
    if game_amount.amount_minor < 0:
        return f"provider reports a negative amount {game_amount} for transfer {transfer.id}"
    asked = transfer.game_amount_minor  # IN: always set; OUT: set unless "withdraw everything"
    if asked is not None and game_amount.amount_minor != asked:
        return (f"provider moved {game_amount} for transfer {transfer.id}, but we asked for "
                f"{Money(asked, game_amount.currency)}")
    return None


def _timeout_reason(row: Row, policy: SessionPolicy | None) -> str:
    """Which deadline came first: idle, the provider's maximum length, or the player's own limit."""
    idle_at = row.last_activity_at + dt.timedelta(seconds=row.idle_timeout_s)
    max_at = row.opened_at + dt.timedelta(seconds=row.max_session_s)
    if idle_at <= max_at:
        return "idle_timeout"
    return "max_length" if policy is None or row.max_session_s >= policy.max_session_s else "player_limit"


def _to_view(row: Row, transfers: list[Row]) -> SessionView:
    wallet, game = currency(row.wallet_currency), currency(row.game_currency)
    views = tuple(
        TransferView(
            id=t.id, direction=t.direction, status=t.status,
            amount=Money(t.amount_minor, wallet) if t.amount_minor is not None else None,
            game_amount=Money(t.game_amount_minor, game) if t.game_amount_minor is not None else None,
            fx_rate=t.fx_rate, attempts=t.attempts, last_error=t.last_error, provider_tx_id=t.provider_tx_id,
        )
        for t in transfers
    )
    return SessionView(
        id=row.id, player_id=row.player_id, provider=row.provider, status=row.status,
        in_doubt=any(t.status in (PENDING, IN_DOUBT) for t in views) and row.status in (OPENING, CLOSING),
        stuck=bool(row.stuck), amount_in=Money(row.amount_in_minor, wallet),
        game_amount_in=Money(row.game_amount_in_minor, game), game_balance=Money(row.game_balance_minor, game),
        amount_out=Money(row.amount_out_minor, wallet) if row.amount_out_minor is not None else None,
        game_amount_out=Money(row.game_amount_out_minor, game) if row.game_amount_out_minor is not None else None,
        opened_at=row.opened_at, last_activity_at=row.last_activity_at, deadline_at=row.deadline_at,
        closed_at=row.closed_at, close_reason=row.close_reason, failure_reason=row.failure_reason, transfers=views,
    )


def policies_from_config(configs: Mapping[str, ProviderConfig]) -> dict[str, SessionPolicy]:
    """A ``SessionPolicy`` per configured provider."""
    return {name: SessionPolicy.from_config(config) for name, config in configs.items()}


__all__ = [
    "SessionManager",
    "SessionPolicy",
    "SessionView",
    "SweepReport",
    "TRANSITIONS",
    "TransferView",
    "policies_from_config",
]

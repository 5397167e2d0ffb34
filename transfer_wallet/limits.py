"""Responsible gaming: transfer-in and loss limits, session length, self-exclusion.

What a player can limit (``player_limits.kind``, see ``models.LIMIT_KINDS``):

- ``transfer_in_day|week|month``: money moved into game sessions, in the player's currency;
- ``loss_day|week|month``: the net game result: losses minus wins of the sessions closed in
  the window, plus everything still at stake in open sessions (it can all be lost);
- ``session_length``: the longest a session may run, in seconds;
- ``self_exclusion``: no transfer-in at all until an instant.

Windows are ROLLING and end now: a day is the last 24 h, a week the last 7 days, a month
the last 30 days. That is stricter than calendar windows (no fresh allowance at midnight or
on the 1st) and free of timezone questions (whose midnight?).

A change is a new row; a row that has come into force is never updated or deleted. The
limit in force at ``now`` is the row with the latest ``effective_from <= now`` per
(player, kind) (on a tie, the later row); a NULL value/until means "no limit". A stricter limit -- lowering one, setting one where there was
none, extending a self-exclusion -- takes effect at once. A looser one -- raising, removing,
shortening or ending a self-exclusion -- only after a 24 h cooling-off
(``effective_from = now + 24h``; for a self-exclusion at its own end if that comes sooner).
A new change replaces any change of that kind still pending: the pending row is deleted (it
was never in force), so a pending raise cannot outlive a later lowering.

``set_limits``/``set_limit`` and ``limits_for`` are units of work of their own;
``check_transfer_in`` and ``session_length_limit_s`` run inside the session manager's
transaction (the one that locks the funds).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Mapping

from sqlalchemy import and_, bindparam, case, delete, func, insert, or_, select
from sqlalchemy.engine import Connection

from transfer_wallet.db import Database
from transfer_wallet.errors import LimitExceededError, NotFoundError, ValidationError
from transfer_wallet.models import CLOSED, FAILED, LIMIT_KINDS, OPEN_STATES, GameSession, Player, PlayerLimit, table_of, utc_now
from transfer_wallet.money import Currency, Money, MoneyError, currency
from transfer_wallet.timeutil import parse_instant
from transfer_wallet.wallet import validate_player_id

_limits = table_of(PlayerLimit)
_sessions = table_of(GameSession)
_players = table_of(Player)

COOLING_OFF = dt.timedelta(hours=24)
#: Rolling windows, each ending now.
WINDOWS: dict[str, dt.timedelta] = {
    "day": dt.timedelta(hours=24), "week": dt.timedelta(days=7), "month": dt.timedelta(days=30),
}
TRANSFER_IN_KINDS = tuple(f"transfer_in_{window}" for window in WINDOWS)
LOSS_KINDS = tuple(f"loss_{window}" for window in WINDOWS)
#: Money limits, in the order ``check_transfer_in`` checks them.
MONEY_KINDS = TRANSFER_IN_KINDS + LOSS_KINDS
SESSION_LENGTH = "session_length"
SELF_EXCLUSION = "self_exclusion"
MAX_SESSION_LENGTH_S = 7 * 24 * 3600

_DURATION = re.compile(r"([0-9]{1,9})\s*([smhd]?)", re.IGNORECASE)
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

#: A limit's value: Money (transfer-in, loss), seconds (session length), an instant
#: (self-exclusion end); None is "no limit".
LimitValue = Money | int | dt.datetime | None
#: The same as stored: minor units, seconds or an instant.
_Raw = int | dt.datetime | None


def _render(value: LimitValue) -> str | int | None:
    """A limit value for JSON: decimal string in major units, seconds, or ISO instant."""
    if isinstance(value, Money):
        return value.format()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


@dataclass(frozen=True, slots=True)
class LimitChange:
    """One change as recorded: the value in force before, the new one, and when it counts."""

    player_id: str
    kind: str
    old_value: LimitValue
    new_value: LimitValue
    effective_from: dt.datetime
    immediate: bool
    """True when the change is in force at once; False while it waits out the cooling-off."""

    def as_dict(self) -> dict[str, object]:
        return {
            "player_id": self.player_id, "kind": self.kind,
            "old_value": _render(self.old_value), "new_value": _render(self.new_value),
            "effective_from": self.effective_from.isoformat(), "immediate": self.immediate,
        }


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A looser limit waiting out its cooling-off."""

    kind: str
    value: LimitValue
    effective_from: dt.datetime


@dataclass(frozen=True, slots=True)
class PlayerLimits:
    """A player's limits in force at ``as_of``, the changes pending, and what counts against them."""

    player_id: str
    currency: Currency
    as_of: dt.datetime
    in_force: Mapping[str, LimitValue]
    """Every kind of ``LIMIT_KINDS``; None where there is no limit."""
    pending: tuple[PendingChange, ...]
    transfer_in: Mapping[str, Money]
    """Per window ("day", "week", "month"): transferred in, failed sessions excluded."""
    net_loss: Mapping[str, Money]
    """Per window: losses minus wins of the sessions closed in it (negative: the player is ahead)."""
    open_exposure: Money
    """Everything transferred into sessions still open: it counts against every loss limit."""

    def counted(self, kind: str) -> Money:
        """What counts against the money limit ``kind`` now."""
        prefix, _, window = kind.rpartition("_")
        if prefix == "transfer_in":
            return self.transfer_in[window]
        return self.net_loss[window] + self.open_exposure

    def remaining(self, kind: str) -> Money | None:
        """What the money limit ``kind`` still allows (never below zero); None without a limit."""
        limit = self.in_force.get(kind)
        if not isinstance(limit, Money):
            return None
        return Money(max(0, limit.amount_minor - self.counted(kind).amount_minor), self.currency)

    def as_dict(self) -> dict[str, object]:
        return {
            "player_id": self.player_id,
            "currency": self.currency.code,
            "as_of": self.as_of.isoformat(),
            "limits": {kind: _render(value) for kind, value in self.in_force.items()},
            "pending": [
                {"kind": p.kind, "value": _render(p.value), "effective_from": p.effective_from.isoformat()}
                for p in self.pending
            ],
            "usage": {
                **{f"transfer_in_{w}": money.format() for w, money in self.transfer_in.items()},
                **{f"loss_{w}": money.format() for w, money in self.net_loss.items()},
                "open_exposure": self.open_exposure.format(),
            },
            "remaining": {
                kind: left.format() for kind in MONEY_KINDS if (left := self.remaining(kind)) is not None
            },
        }


# -- parsing ---------------------------------------------------------------------------------


def _quote(text: object) -> str:
    quoted = repr(text)
    return quoted if len(quoted) <= 40 else quoted[:36] + "...'"


def _check_kind(kind: object) -> str:
    if kind not in LIMIT_KINDS:
        raise ValidationError(f"unknown limit kind {_quote(kind)}: use one of {', '.join(LIMIT_KINDS)}")
    return str(kind)


def _parse_duration_s(text: str) -> int:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValidationError(f"session length {_quote(text)} is not a duration like 90m, 2h or 3600s")
    seconds = int(match[1]) * _UNIT_S[match[2].lower()]
    if seconds <= 0:
        raise ValidationError(f"session length {_quote(text)} must be longer than 0 seconds")
    if seconds > MAX_SESSION_LENGTH_S:
        raise ValidationError(f"session length {_quote(text)} is longer than 7 days")
    return seconds


def _parse_until(text: str, now: dt.datetime) -> dt.datetime:
    """An ISO 8601 date (start of that day, UTC) or date-time (naive = UTC) in the future, before year 3000."""
    until = parse_instant(text, "self-exclusion end", naive_is_utc=True)
    if until <= now:
        raise ValidationError(f"self-exclusion end {until.isoformat()} is not in the future")
    return until


def _parse(kind: str, text: str | None, ccy: Currency, now: dt.datetime) -> _Raw:
    """The stored form of ``text`` for ``kind``; ``ValidationError`` (one line) when it is bad."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValidationError(f"{kind} limit must be given as text, not {type(text).__name__}")
    if kind in MONEY_KINDS:
        try:
            return Money.parse(text, ccy, allow_zero=True).amount_minor
        except MoneyError as exc:
            raise ValidationError(f"{kind} limit: {exc}") from None
    if kind == SESSION_LENGTH:
        return _parse_duration_s(text)
    return _parse_until(text, now)


def _now(now: dt.datetime | None) -> dt.datetime:
    when = utc_now() if now is None else now
    if when.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    return when.astimezone(dt.timezone.utc)


# -- queries ---------------------------------------------------------------------------------


def _raw(kind: str, row: Any, at: dt.datetime) -> _Raw:
    """The limit a row sets at ``at``: a self-exclusion that has ended is no limit."""
    if row is None:
        return None
    if kind == SELF_EXCLUSION:
        return row.until if row.until is not None and row.until > at else None
    return row.value


def _public(kind: str, raw: _Raw, ccy: Currency) -> LimitValue:
    return Money(raw, ccy) if kind in MONEY_KINDS and isinstance(raw, int) else raw


def _build_rows_in_force() -> Any:
    """kind, value, until of the row in force per kind (latest ``effective_from``, then latest id) at ``:now``."""
    ranked = (
        select(
            _limits.c.kind, _limits.c.value, _limits.c.until,
            func.row_number().over(
                partition_by=_limits.c.kind, order_by=(_limits.c.effective_from.desc(), _limits.c.id.desc())
            ).label("rank"),
        )
        .where(_limits.c.player_id == bindparam("player_id"), _limits.c.effective_from <= bindparam("now"))
        .subquery()
    )
    return select(ranked.c.kind, ranked.c.value, ranked.c.until).where(ranked.c.rank == 1)


def _build_usage() -> Any:
    """One aggregate over a player's sessions (see ``_usage``); the window starts are parameters ``since_*``."""
    s = _sessions.c
    now = bindparam("now", type_=_sessions.c.opened_at.type)
    columns: list[Any] = []
    for window in WINDOWS:
        since = bindparam(f"since_{window}", type_=_sessions.c.opened_at.type)
        transferred = and_(s.status != FAILED, s.opened_at > since, s.opened_at <= now)
        closed = and_(s.status == CLOSED, s.closed_at > since, s.closed_at <= now)
        # A closed session without an amount out lost everything: count it so.
        result = s.amount_in_minor - func.coalesce(s.amount_out_minor, 0)
        columns.append(func.sum(case((transferred, s.amount_in_minor), else_=0)).label(f"transfer_in_{window}"))
        columns.append(func.sum(case((closed, result), else_=0)).label(f"loss_{window}"))
    columns.append(func.sum(case((s.status.in_(OPEN_STATES), s.amount_in_minor), else_=0)).label("exposure"))
    columns.append(select(_players.c.currency).where(_players.c.id == bindparam("player_id")).scalar_subquery()
                   .label("currency"))
    month = bindparam("since_month", type_=_sessions.c.opened_at.type)
    return select(*columns).where(
        s.player_id == bindparam("player_id"), or_(s.opened_at > month, s.closed_at > month, s.status.in_(OPEN_STATES)))


# The statements of the checks and reads below, built once (issue 11: nothing built per call); bound per call.
_ROWS_IN_FORCE = _build_rows_in_force()
_USAGE = _build_usage()
_SESSION_LENGTH_IN_FORCE = (
    select(_limits.c.value)
    .where(_limits.c.player_id == bindparam("player_id"), _limits.c.kind == SESSION_LENGTH,
           _limits.c.effective_from <= bindparam("now"))
    .order_by(_limits.c.effective_from.desc(), _limits.c.id.desc())
    .limit(1)
)


def _rows_in_force(connection: Connection, player_id: str, now: dt.datetime) -> dict[str, Any]:
    """kind -> the row in force at ``now`` (latest ``effective_from``, then latest id)."""
    rows = connection.execute(_ROWS_IN_FORCE, {"player_id": player_id, "now": now})
    return {row.kind: row for row in rows}


def _usage(connection: Connection, player_id: str, now: dt.datetime) -> dict[str, Any]:
    """One aggregate over the player's sessions: transfer-in and realised net loss per window,
    the exposure of open sessions, and the player's currency (None: no such player)."""
    params: dict[str, Any] = {"player_id": player_id, "now": now}
    params.update({f"since_{window}": now - span for window, span in WINDOWS.items()})
    row = connection.execute(_USAGE, params).one()
    usage: dict[str, Any] = {key: int(value or 0) for key, value in row._mapping.items() if key != "currency"}
    usage["currency"] = row.currency
    return usage


def _counted_minor(kind: str, usage: Mapping[str, Any]) -> int:
    """What counts against the money limit ``kind``: loss limits include the open exposure."""
    return usage[kind] + (usage["exposure"] if kind in LOSS_KINDS else 0)


def _label(kind: str) -> str:
    prefix, _, window = kind.rpartition("_")
    return f"{'transfer-in' if prefix == 'transfer_in' else 'loss'} limit per {window}"


# -- checks inside the session manager's transaction ----------------------------------------


def check_transfer_in(connection: Connection, player_id: str, amount_minor: int, *, now: dt.datetime) -> int | None:
    """Refuse a transfer-in of ``amount_minor`` (player's currency) that a limit forbids.

    Runs in the caller's transaction, which must already serialise this player's transfer-ins
    (the session manager locks the player's accounts first) and must insert the new session in
    it, so that two transfer-ins can never both fit under the same limit. Checks, in order:
    self-exclusion, transfer-in per day/week/month, loss per day/week/month, and raises
    ``LimitExceededError`` naming the limit and what is left. A loss limit counts the open
    sessions in full, so it holds even if everything at stake is lost. One query when the
    player has no money limit, two otherwise.

    Returns the player's own session-length limit in force (seconds) or None, read by the
    same query, so that opening a session needs no extra round trip for it.
    """
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ValidationError(f"transfer-in amount must be a positive number of minor units, got {amount_minor!r}")
    when = _now(now)
    in_force = _rows_in_force(connection, player_id, when)
    excluded_until = _raw(SELF_EXCLUSION, in_force.get(SELF_EXCLUSION), when)
    if isinstance(excluded_until, dt.datetime):
        raise LimitExceededError(f"self-excluded until {excluded_until.isoformat()}", limit=SELF_EXCLUSION)
    session_length = in_force[SESSION_LENGTH].value if SESSION_LENGTH in in_force else None
    limits = {kind: in_force[kind].value for kind in MONEY_KINDS if kind in in_force and in_force[kind].value is not None}
    if not limits:
        return session_length
    usage = _usage(connection, player_id, when)
    if usage["currency"] is None:
        raise NotFoundError(f"unknown player '{player_id}'")
    ccy = currency(usage["currency"])
    for kind, limit_minor in limits.items():
        counted = _counted_minor(kind, usage)
        if counted + amount_minor > limit_minor:
            remaining = max(0, limit_minor - counted)
            raise LimitExceededError(
                f"{_label(kind)} reached: {Money(remaining, ccy)} left of {Money(limit_minor, ccy)}",
                limit=kind, remaining_minor=remaining,
            )
    return session_length


def session_length_limit_s(connection: Connection, player_id: str, *, now: dt.datetime) -> int | None:
    """The player's own maximum session length in force at ``now`` (seconds), or None."""
    return connection.execute(_SESSION_LENGTH_IN_FORCE, {"player_id": player_id, "now": _now(now)}).scalar()


# -- services --------------------------------------------------------------------------------


def _effective_from(kind: str, old: _Raw, new: _Raw, now: dt.datetime) -> dt.datetime:
    """Now for a stricter (or equal) limit; after the cooling-off for a looser one."""
    if old is None:
        return now  # nothing in force: any new limit is stricter
    if kind == SELF_EXCLUSION:
        assert isinstance(old, dt.datetime)
        if isinstance(new, dt.datetime) and new >= old:
            return now
        return min(now + COOLING_OFF, old)  # the cooling-off never outlasts the exclusion itself
    if isinstance(new, int) and isinstance(old, int) and new <= old:
        return now
    return now + COOLING_OFF


def set_limits(
    db: Database, player_id: str, changes: Mapping[str, str | None], *, now: dt.datetime | None = None
) -> list[LimitChange]:
    """Change several limits of a player in one transaction (all or nothing).

    ``changes`` maps a kind to its new value as text (see ``set_limit``) or None to remove it.
    Returns the changes in ``LIMIT_KINDS`` order. Bad kinds or values raise
    ``ValidationError``, an unknown player ``NotFoundError``; then nothing is written.
    """
    validate_player_id(player_id)
    when = _now(now)
    if not changes:
        raise ValidationError("no limit to change: give at least one")
    for kind in changes:
        _check_kind(kind)
    kinds = [kind for kind in LIMIT_KINDS if kind in changes]

    def work(connection: Connection) -> list[LimitChange]:
        # FOR NO KEY UPDATE serialises changes of this player's limits without blocking
        # inserts that merely reference the player (foreign keys take KEY SHARE).
        code = connection.execute(
            select(_players.c.currency).where(_players.c.id == player_id).with_for_update(key_share=True)
        ).scalar()
        if code is None:
            raise NotFoundError(f"unknown player '{player_id}'")
        ccy = currency(code)
        new_values = {kind: _parse(kind, changes[kind], ccy, when) for kind in kinds}
        in_force = _rows_in_force(connection, player_id, when)
        result = []
        for kind in kinds:
            old = _raw(kind, in_force.get(kind), when)
            effective_from = _effective_from(kind, old, new_values[kind], when)
            result.append(LimitChange(
                player_id, kind, _public(kind, old, ccy), _public(kind, new_values[kind], ccy),
                effective_from, immediate=effective_from == when,
            ))
        connection.execute(
            delete(_limits).where(_limits.c.player_id == player_id, _limits.c.kind.in_(kinds), _limits.c.effective_from > when)
        )
        connection.execute(insert(_limits), [
            {
                "player_id": player_id, "kind": kind, "created_at": when, "effective_from": change.effective_from,
                "value": None if kind == SELF_EXCLUSION else new_values[kind],
                "until": new_values[kind] if kind == SELF_EXCLUSION else None,
            }
            for kind, change in zip(kinds, result)
        ])
        return result

    return db.transaction(work)


def set_limit(
    db: Database, player_id: str, kind: str, value: str | None, *, now: dt.datetime | None = None
) -> LimitChange:
    """Set, lower, raise or remove (``value=None``) one limit of a player.

    ``value`` for ``transfer_in_*``/``loss_*`` is an amount in major units of the player's
    currency ("100.00"; "0" allows nothing); for ``session_length`` a duration ("90m", "2h",
    "3600s", "3600") of at most 7 days; for ``self_exclusion`` an ISO 8601 date (start of that
    day, UTC) or date-time (naive means UTC) in the future. Stricter limits count at once,
    looser ones after the 24 h cooling-off (see the module docstring).
    """
    return set_limits(db, player_id, {kind: value}, now=now)[0]


def limits_for(db: Database, player_id: str, *, now: dt.datetime | None = None) -> PlayerLimits:
    """The player's limits in force at ``now``, the changes pending, and current usage."""
    validate_player_id(player_id)
    when = _now(now)

    def work(connection: Connection) -> PlayerLimits:
        usage = _usage(connection, player_id, when)
        if usage["currency"] is None:
            raise NotFoundError(f"unknown player '{player_id}'")
        ccy = currency(usage["currency"])
        in_force = _rows_in_force(connection, player_id, when)
        pending = connection.execute(
            select(_limits.c.kind, _limits.c.value, _limits.c.until, _limits.c.effective_from)
            .where(_limits.c.player_id == player_id, _limits.c.effective_from > when)
            .order_by(_limits.c.effective_from, _limits.c.id)
        ).all()
        return PlayerLimits(
            player_id=player_id,
            currency=ccy,
            as_of=when,
            in_force={kind: _public(kind, _raw(kind, in_force.get(kind), when), ccy) for kind in LIMIT_KINDS},
            pending=tuple(
                PendingChange(row.kind, _public(row.kind, _raw(row.kind, row, row.effective_from), ccy), row.effective_from)
                for row in pending
            ),
            transfer_in={w: Money(usage[f"transfer_in_{w}"], ccy) for w in WINDOWS},
            net_loss={w: Money(usage[f"loss_{w}"], ccy) for w in WINDOWS},
            open_exposure=Money(usage["exposure"], ccy),
        )

    return db.transaction(work, readonly=True)


__all__ = [
    "COOLING_OFF",
    "LIMIT_KINDS",
    "LimitChange",
    "LimitValue",
    "PendingChange",
    "PlayerLimits",
    "WINDOWS",
    "check_transfer_in",
    "limits_for",
    "session_length_limit_s",
    "set_limit",
    "set_limits",
]

"""Play mirroring: the provider's bets, wins and refunds, replayed into a session.

Each call is keyed by the provider's transaction id (unique per provider) and
carries its round id, with the semantics real wallets use:

- same id + same content: replays the first result; same id + other content: conflict;
- a bet above the session's game balance: refused as insufficient funds (402);
- a refund of a bet we never saw: accepted and remembered as a tombstone, so the
  late bet with that id is refused;
- a refund after the round's win: refused; a second refund of the same bet: does nothing.

Mirroring moves no ledger money (the money is at the provider); it keeps the
session's game balance so that the transfer-out can be checked against it, and
the rounds as game history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from transfer_wallet.db import Database
from transfer_wallet.dbapi import run_on
from transfer_wallet.errors import IdempotencyConflictError, InsufficientFundsError, InvalidStateError, ValidationError
from transfer_wallet.models import ACTIVE, GameRound, GameSession, PlayTransaction, table_of, utc_now
from transfer_wallet.money import Money, currency
from transfer_wallet.providers.protocol import Round, check_identifier
from transfer_wallet.session_views import read_rounds
from transfer_wallet.sessions import _session_row, request_digest, session_deadline

_sessions = table_of(GameSession)
_plays = table_of(PlayTransaction)
_rounds = table_of(GameRound)


@dataclass(frozen=True, slots=True)
class PlayResult:
    """The outcome of one mirrored bet, win or refund (or of its replay)."""

    session_id: str
    provider_tx_id: str
    kind: str
    round_id: str
    amount: Money
    game_balance: Money
    replayed: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id, "provider_tx_id": self.provider_tx_id, "kind": self.kind,
            "round_id": self.round_id, "amount": self.amount.format(), "currency": self.amount.currency.code,
            "game_balance": self.game_balance.format(), "replayed": self.replayed, "note": self.note,
        }


class PlayMirror:
    """Mirrors provider play into sessions; one database transaction per call."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def bet(self, session_id: str, provider_tx_id: str, round_id: str, amount: Money | str, *,
            game_id: str | None = None, now: dt.datetime | None = None) -> PlayResult:
        """Mirror a stake: the game balance goes down; refused above the balance."""
        return self._play("bet", session_id, provider_tx_id, round_id, amount, None, game_id, now)

    def win(self, session_id: str, provider_tx_id: str, round_id: str, amount: Money | str, *,
            game_id: str | None = None, now: dt.datetime | None = None) -> PlayResult:
        """Mirror a win (zero settles a lost round): the game balance goes up."""
        return self._play("win", session_id, provider_tx_id, round_id, amount, None, game_id, now)

    def refund(self, session_id: str, provider_tx_id: str, round_id: str, bet_tx_id: str, *,
               now: dt.datetime | None = None) -> PlayResult:
        """Mirror a rollback of bet ``bet_tx_id``: its stake comes back, once."""
        return self._play("refund", session_id, provider_tx_id, round_id, None, bet_tx_id, None, now)

    def mirror_round(self, session_id: str, played: Round, *, now: dt.datetime | None = None) -> PlayResult:
        """Mirror one round from the provider's history: its bet, then its refund or its win.

        Transaction ids are derived from the round id (``{round}-bet``, ``-win``,
        ``-refund``), so mirroring the same history again replays instead of doubling.
        """
        bet_tx_id = f"{played.round_id}-bet"
        self.bet(session_id, bet_tx_id, played.round_id, played.bet, game_id=played.game_id, now=now)
        if played.refund.amount_minor:
            return self.refund(session_id, f"{played.round_id}-refund", played.round_id, bet_tx_id, now=now)
        return self.win(session_id, f"{played.round_id}-win", played.round_id, played.win, game_id=played.game_id, now=now)

    def _play(self, kind: str, session_id: str, provider_tx_id: str, round_id: str, amount: Money | str | None,
              refund_of: str | None, game_id: str | None, now: dt.datetime | None) -> PlayResult:
        check_identifier(session_id, "session id")
        check_identifier(provider_tx_id, "provider transaction id")
        check_identifier(round_id, "round id")
        if refund_of is not None:
            check_identifier(refund_of, "bet transaction id")
        if game_id is not None:
            check_identifier(game_id, "game id")  # stored in game_rounds.game_id, 64 characters
        when = now or utc_now()

        def work(connection: Connection) -> PlayResult:
            return self._apply(connection, kind, session_id, provider_tx_id, round_id, amount, refund_of, game_id, when)

        try:
            return self.db.transaction(work)
        except IntegrityError:
            # The same provider transaction id was mirrored concurrently (maybe into another
            # session): run again, now it replays or is reported as a conflict.
            return self.db.transaction(work)

    def _apply(self, connection: Connection, kind: str, session_id: str, provider_tx_id: str, round_id: str,
               amount: Money | str | None, refund_of: str | None, game_id: str | None, now: dt.datetime) -> PlayResult:
        session = self._session(connection, session_id)
        game_ccy = currency(session.game_currency)
        money = _game_money(amount, game_ccy, kind) if amount is not None else None
        digest = request_digest(dict(kind=kind, session=session_id, round=round_id,
                                     amount=money.amount_minor if money else None, refund_of=refund_of))
        existing = connection.execute(
            select(_plays).where(_plays.c.provider == session.provider, _plays.c.provider_tx_id == provider_tx_id)
        ).first()
        if existing is not None:
            if existing.request_hash != digest:
                raise IdempotencyConflictError(
                    f"provider transaction '{provider_tx_id}' was already mirrored with different content"
                )
            return _result(session_id, existing, game_ccy, replayed=True)
        if session.status != ACTIVE:
            raise InvalidStateError(f"session {session_id} is {session.status}: play is mirrored into active sessions only")
        if kind in ("bet", "win"):
            assert money is not None, "bet() and win() always pass an amount"
            mirror = self._bet if kind == "bet" else self._win
            return mirror(connection, session, provider_tx_id, round_id, money, digest, game_id, now)
        return self._refund(connection, session, provider_tx_id, round_id, refund_of or "", digest, now)

    # -- the three kinds ---------------------------------------------------------------------

    def _bet(self, connection: Connection, session: Row, tx_id: str, round_id: str, money: Money,
             digest: str, game_id: str | None, now: dt.datetime) -> PlayResult:
        tombstone = connection.execute(
            select(_plays.c.provider_tx_id).where(
                _plays.c.provider == session.provider, _plays.c.refund_of == tx_id, _plays.c.kind == "refund"
            )
        ).first()
        if tombstone is not None:
            raise InvalidStateError(f"bet '{tx_id}' was already rolled back by refund '{tombstone.provider_tx_id}'; refused")
        round_row = self._round(connection, session, round_id)
        if round_row is not None and round_row.status != "open":
            raise InvalidStateError(f"round '{round_id}' is already {round_row.status}; no more bets")
        if money.amount_minor > session.game_balance_minor:
            raise InsufficientFundsError(
                f"insufficient funds (402): bet {money} exceeds the session's game balance "
                f"{Money(session.game_balance_minor, money.currency)}"
            )
        balance = self._move_balance(connection, session, -money.amount_minor, now)
        self._upsert_round(connection, session, round_row, round_id, game_id, now, bet=money.amount_minor)
        return self._record(connection, session, "bet", tx_id, round_id, money, None, False, digest, balance, now)

    def _win(self, connection: Connection, session: Row, tx_id: str, round_id: str, money: Money,
             digest: str, game_id: str | None, now: dt.datetime) -> PlayResult:
        round_row = self._round(connection, session, round_id)
        if round_row is not None and round_row.status == "refunded":
            raise InvalidStateError(f"round '{round_id}' was refunded; a win is refused")
        balance = self._move_balance(connection, session, money.amount_minor, now)
        self._upsert_round(connection, session, round_row, round_id, game_id, now, win=money.amount_minor, status="settled")
        return self._record(connection, session, "win", tx_id, round_id, money, None, False, digest, balance, now)

    def _refund(self, connection: Connection, session: Row, tx_id: str, round_id: str, bet_tx_id: str,
                digest: str, now: dt.datetime) -> PlayResult:
        game_ccy = currency(session.game_currency)
        bet = connection.execute(
            select(_plays).where(_plays.c.provider == session.provider, _plays.c.provider_tx_id == bet_tx_id)
        ).first()
        earlier = connection.execute(
            select(_plays.c.provider_tx_id).where(_plays.c.provider == session.provider, _plays.c.refund_of == bet_tx_id)
        ).first()
        if earlier is not None:  # a second refund of the same bet does nothing
            balance = Money(session.game_balance_minor, game_ccy)
            return self._record(connection, session, "refund", tx_id, round_id, Money.zero(game_ccy), bet_tx_id, True,
                                digest, balance, now, note=f"bet already refunded by '{earlier.provider_tx_id}': nothing moved")
        if bet is None:  # rollback before (or instead of) the bet: remember it, move nothing
            balance = Money(session.game_balance_minor, game_ccy)
            return self._record(connection, session, "refund", tx_id, round_id, Money.zero(game_ccy), bet_tx_id, True,
                                digest, balance, now, note=f"bet '{bet_tx_id}' unknown: remembered, a late bet will be refused")
        if bet.kind != "bet":
            raise ValidationError(f"'{bet_tx_id}' is a {bet.kind}, not a bet")
        if bet.session_id != session.id:
            raise ValidationError(f"bet '{bet_tx_id}' belongs to session {bet.session_id}")
        round_row = self._round(connection, session, bet.round_id)
        if round_row is not None and round_row.status == "settled":
            raise InvalidStateError(f"round '{bet.round_id}' already has its win; a refund is refused")
        money = Money(bet.amount_minor, game_ccy)
        balance = self._move_balance(connection, session, bet.amount_minor, now)
        self._upsert_round(connection, session, round_row, bet.round_id, None, now, refund=bet.amount_minor, status="refunded")
        return self._record(connection, session, "refund", tx_id, bet.round_id, money, bet_tx_id, False, digest, balance, now)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _session(connection: Connection, session_id: str) -> Row:
        return _session_row(connection, session_id, lock=True)

    @staticmethod
    def _round(connection: Connection, session: Row, round_id: str) -> Row | None:
        return connection.execute(
            select(_rounds).where(_rounds.c.provider == session.provider, _rounds.c.round_id == round_id)
        ).first()

    @staticmethod
    def _move_balance(connection: Connection, session: Row, delta: int, now: dt.datetime) -> Money:
        deadline = session_deadline(session, now)
        new_balance = connection.execute(
            update(_sessions)
            .where(_sessions.c.id == session.id, _sessions.c.status == ACTIVE,
                   _sessions.c.game_balance_minor + delta >= 0)
            .values(game_balance_minor=_sessions.c.game_balance_minor + delta, mirrored=True,
                    last_activity_at=now, deadline_at=deadline)
            .returning(_sessions.c.game_balance_minor)
        ).scalar()
        if new_balance is None:
            raise InvalidStateError(f"session {session.id} changed concurrently; try again")
        return Money(new_balance, currency(session.game_currency))

    @staticmethod
    def _upsert_round(connection: Connection, session: Row, round_row: Row | None, round_id: str, game_id: str | None,
                      now: dt.datetime, *, bet: int = 0, win: int = 0, refund: int = 0, status: str | None = None) -> None:
        if round_row is None:
            connection.execute(_rounds.insert().values(
                session_id=session.id, provider=session.provider, round_id=round_id, game_id=game_id,
                bet_minor=bet, win_minor=win, refund_minor=refund, status=status or "open", started_at=now, updated_at=now,
            ))
            return
        if round_row.session_id != session.id:
            raise ValidationError(f"round '{round_id}' belongs to session {round_row.session_id}")
        connection.execute(update(_rounds).where(_rounds.c.id == round_row.id).values(
            bet_minor=round_row.bet_minor + bet, win_minor=round_row.win_minor + win,
            refund_minor=round_row.refund_minor + refund, status=status or round_row.status,
            game_id=round_row.game_id or game_id, updated_at=now,
        ))

    @staticmethod
    def _record(connection: Connection, session: Row, kind: str, tx_id: str, round_id: str, money: Money,
                refund_of: str | None, tombstone: bool, digest: str, balance: Money, now: dt.datetime,
                note: str = "") -> PlayResult:
        connection.execute(_plays.insert().values(
            session_id=session.id, provider=session.provider, provider_tx_id=tx_id, round_id=round_id, kind=kind,
            amount_minor=money.amount_minor, refund_of=refund_of, tombstone=tombstone, request_hash=digest,
            balance_after_minor=balance.amount_minor, created_at=now,
        ))
        return PlayResult(session.id, tx_id, kind, round_id, money, balance, replayed=False, note=note)


def _game_money(amount: Money | str, game_ccy: Any, kind: str) -> Money:
    if isinstance(amount, Money):
        if amount.currency != game_ccy:
            raise ValidationError(f"amount is in {amount.currency.code} but the session plays in {game_ccy.code}")
        money = amount
    else:
        money = Money.parse(amount, game_ccy, allow_zero=kind == "win")
    if money.amount_minor < 0 or (money.amount_minor == 0 and kind != "win"):
        raise ValidationError(f"a {kind} amount must be positive")
    return money


def _result(session_id: str, row: Row, game_ccy: Any, *, replayed: bool) -> PlayResult:
    return PlayResult(session_id, row.provider_tx_id, row.kind, row.round_id, Money(row.amount_minor, game_ccy),
                      Money(row.balance_after_minor, game_ccy), replayed=replayed,
                      note="tombstone" if row.tombstone else "")


def rounds_of(db: Database, session_id: str) -> list[dict[str, Any]]:
    """A session's rounds as game history, oldest first (``session_views.read_rounds``)."""
    return db.transaction(lambda connection: run_on(connection, lambda cursor: read_rounds(cursor, session_id)),
                          readonly=True)

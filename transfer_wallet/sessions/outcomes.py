"""Steps 2 and 3 of every transfer: call the provider, then record what it answered.

The answer is one of three outcomes, each recorded in one transaction guarded by the
transfer's state (so two workers finishing the same transfer apply it once):

- **applied**: a transfer-in activates the session; a transfer-out settles it;
- **refused** (``ProviderRefusedError``): a transfer-in gives every cent back; a
  transfer-out is retried later under a new id (the money is still at the provider).
  A close's refusal is believed only once ``transfer_status`` agrees: providers often
  answer a re-sent id with "duplicate"/rejected although its first attempt applied;
- **in doubt** (anything else): the money stays locked until the provider says what
  happened. An answer about another transfer, direction, player, currency or amount
  is never booked: it is in doubt, and a mismatching amount is flagged.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, Row

from transfer_wallet import discrepancies, ledger
from transfer_wallet.discrepancies import Finding
from transfer_wallet.errors import (
    OutcomeUnknownError,
    ProviderError,
    ProviderRefusedError,
    RejectedError,
    TransferConflictError,
)
from transfer_wallet.models import ACTIVE, COMPLETED, FAILED, FX_ROUNDING, IN_DOUBT, PENDING, REFUSED
from transfer_wallet.money import Money
from transfer_wallet.sessions import server_steps
from transfer_wallet.sessions.settlement import Settlement
from transfer_wallet.sessions.state import (
    SessionPolicy,
    guard_transfer,
    locked_transfer,
    move,
    session_deadline,
    short,
    update_session,
)
from transfer_wallet.sessions.views import SessionView, read_view

if TYPE_CHECKING:
    from transfer_wallet.providers.protocol import Provider

#: What a provider says it applied: the game amount, its transaction id, when (None: not said).
Answer = tuple[Money, str, "dt.datetime | None"]


class Outcomes(Settlement):
    """The provider call and the recording of its outcome."""

    def _send(
        self, provider: Provider, policy: SessionPolicy, transfer_id: str, direction: str,
        player_id: str, game_amount: Money | None, now: dt.datetime, *, view_of: str | None = None,
        confirm_refusal: bool = False,
    ) -> tuple[str, SessionView | None]:
        """Steps 2 and 3 for one transfer: call, then record the outcome in one transaction.

        With ``confirm_refusal`` a refusal (other than a conflict) is booked only if the provider's
        status says the transfer is not there or failed (``confirmed_refusal``).
        Returns the outcome kind and, if ``view_of`` names a session, that session as it
        stands after step 3 (read in the same transaction: no extra round trip).
        """
        failure: BaseException | None = None
        answer: Answer | None = None
        try:
            if direction == "IN":
                assert game_amount is not None
                result = provider.transfer_in(transfer_id, player_id, game_amount)
            else:  # None: withdraw everything
                result = provider.transfer_out(transfer_id, player_id, game_amount)
        except ProviderRefusedError as error:
            outcome, failure = "refused", error
            if confirm_refusal and not isinstance(error, TransferConflictError):
                outcome, failure, answer = confirmed_refusal(provider, transfer_id, direction, player_id, error)
        except Exception as error:  # noqa: BLE001 - unknown, timeouts, bugs: nothing proves it was not applied
            outcome, failure = "in_doubt", error
        else:
            problem = answer_problem(result, transfer_id, direction, player_id)
            outcome, failure = ("in_doubt", OutcomeUnknownError(problem)) if problem else ("applied", None)
            answer = (result.amount, result.provider_tx_id, result.created_at) if failure is None else None
        _, view = self._record(outcome, policy, transfer_id, now, answer=answer, failure=failure, view_of=view_of)
        return outcome, view

    def _record(
        self, outcome: str, policy: SessionPolicy, transfer_id: str, now: dt.datetime, *,
        answer: Answer | None = None, failure: BaseException | None = None, view_of: str | None = None,
    ) -> tuple[bool, SessionView | None]:
        """Step 3: record ``outcome`` ("applied" with the provider's ``answer``, "refused" or "in_doubt" with
        its ``failure``) in one transaction; (booked, the session ``view_of`` names, as it stands after).

        ``booked`` is False only for an applied answer that could not be booked (it stays in doubt, flagged).

        On PostgreSQL one call of the outcome's function does it, unless that function hands the step back
        (an answer that does not fit, another currency, something to flag): then the Python step runs.
        """
        if self._on_server() and not isinstance(failure, TransferConflictError):  # a conflict is flagged: Python
            done, view = self._record_on_server(outcome, policy, transfer_id, now, answer, failure, view_of)
            if done:
                return True, view

        def step3(connection: Connection) -> tuple[bool, SessionView | None]:
            booked = True
            if outcome == "applied":
                assert answer is not None
                game_amount, provider_tx_id, applied_at = answer
                booked = self._applied(connection, policy, transfer_id, game_amount, provider_tx_id, now,
                                       applied_at=applied_at)
            elif outcome == "refused":
                assert failure is not None
                self._refused(connection, policy, transfer_id, failure, now)
            else:
                assert failure is not None
                self._in_doubt(connection, policy, transfer_id, failure, now)
            return booked, read_view(connection, view_of) if view_of else None

        return self.db.transaction(step3)

    def _record_on_server(
        self, outcome: str, policy: SessionPolicy, transfer_id: str, now: dt.datetime,
        answer: Answer | None, failure: BaseException | None, view_of: str | None,
    ) -> tuple[bool, SessionView | None]:
        """(whether the function did the step, the session's view) for one outcome function call."""
        view = view_of is not None
        if outcome == "applied":
            assert answer is not None
            fallback, seen = server_steps.applied(self.db, policy, transfer_id, answer[0], answer[1], now, view=view)
        elif outcome == "refused":
            assert failure is not None
            fallback, seen = server_steps.refused(self.db, policy, transfer_id, short(failure), now, view=view)
        else:
            assert failure is not None
            fallback, seen = server_steps.in_doubt(self.db, policy, transfer_id, short(failure), now, view=view)
        return fallback is None, seen

    def _applied(
        self, connection: Connection, policy: SessionPolicy, transfer_id: str, game_amount: Money,
        provider_tx_id: str, now: dt.datetime, *, applied_at: dt.datetime | None = None,
    ) -> bool:
        """The provider applied the transfer: activate (IN) or settle (OUT), once.

        False when the answer could not be booked (it stays in doubt, flagged);
        True when it is booked, by this call or by another worker before it.
        """
        transfer, session = locked_transfer(connection, transfer_id)
        if transfer.status not in (PENDING, IN_DOUBT):
            return True  # another worker finished it first
        problem = amount_problem(transfer, session, game_amount)
        if problem:  # never book an answer that does not fit what we asked
            self._in_doubt(connection, policy, transfer_id, OutcomeUnknownError(problem), now)
            _flag(connection, session, transfer, "PROVIDER_ANSWER_MISMATCH", problem, now)
            return False
        if transfer.direction == "IN":
            if guard_transfer(connection, transfer_id, COMPLETED, now, provider_tx_id=provider_tx_id, completed_at=now):
                move(connection, session, ACTIVE, game_balance_minor=session.game_amount_in_minor, last_activity_at=now,
                     stuck=False, deadline_at=session_deadline(session, now))
            return True
        self._settle(connection, session, transfer, game_amount, provider_tx_id, now, rate_at_time=applied_at or now)
        return True

    def _refused(self, connection: Connection, policy: SessionPolicy, transfer_id: str, error: BaseException, now: dt.datetime) -> None:
        """The provider definitively did not apply the transfer."""
        transfer, session = locked_transfer(connection, transfer_id)
        if not guard_transfer(connection, transfer_id, REFUSED, now, last_error=short(error), attempts=transfer.attempts + 1):
            return
        if transfer.direction == "IN":
            self._refund(connection, session, transfer, error, now)
            return
        # transfer-out refused: the money is still at the provider; retry later under a new id
        attempts = session.close_attempts + 1
        update_session(connection, session.id, close_attempts=attempts, next_attempt_at=policy.next_attempt(attempts, now),
                       stuck=attempts >= policy.stuck_after_attempts, failure_reason=short(error))

    def _refund(self, connection: Connection, session: Row, transfer: Row, error: BaseException, now: dt.datetime) -> None:
        """A refused transfer-in: nothing reached the provider, every cent (FX residue too) goes back."""
        _, main, locked = ledger.player_accounts(self.db, connection, session.player_id)
        legs = [ledger.Leg(locked, -session.amount_in_minor),
                ledger.Leg(main, session.amount_in_minor + transfer.fx_residue_minor)]
        if transfer.fx_residue_minor:
            rounding = ledger.system_account(self.db, connection, FX_ROUNDING, session.wallet_currency)
            legs.append(ledger.Leg(rounding, -transfer.fx_residue_minor))
        ledger.post(connection, kind="session_unlock", idempotency_key=f"session:{session.id}:unlock", legs=legs)
        move(connection, session, FAILED, failure_reason=short(error), closed_at=now)
        if isinstance(error, TransferConflictError):
            _flag(connection, session, transfer, "TRANSFER_CONFLICT", f"provider holds another transfer under id {transfer.id}", now)

    def _in_doubt(self, connection: Connection, policy: SessionPolicy, transfer_id: str, error: BaseException, now: dt.datetime) -> None:
        """We cannot know what the provider did: keep the money locked, retry with backoff."""
        transfer, _session = locked_transfer(connection, transfer_id)
        attempts = transfer.attempts + 1
        next_attempt_at = policy.next_attempt(attempts, now)
        if not guard_transfer(connection, transfer_id, IN_DOUBT, now, attempts=attempts, last_error=short(error),
                              next_attempt_at=next_attempt_at):
            return  # finished meanwhile: nothing is in doubt any more
        values: dict[str, Any] = {"stuck": attempts >= policy.stuck_after_attempts}
        if transfer.direction == "OUT":  # the closing retry waits for the same backoff
            values.update(close_attempts=attempts, next_attempt_at=next_attempt_at)
        update_session(connection, transfer.session_id, **values)


def ask_status(
    provider: Provider, transfer_id: str, direction: str, player_id: str,
) -> tuple[str, BaseException | None, Answer | None]:
    """What ``transfer_status`` says about one transfer, as an outcome to record.

    ("applied", None, answer), ("refused", error, None) for FAILED, ("in_doubt", error, None) when
    the status cannot be read or is about something else, ("unseen", None, None) when the provider
    does not know the id, ("no amount", error, None) when it says applied without saying how much.
    """
    from transfer_wallet.providers.protocol import TransferState

    try:
        status = provider.transfer_status(transfer_id)
    except (OutcomeUnknownError, ProviderError) as error:
        return "in_doubt", error, None
    problem = answer_problem(status, transfer_id, direction, player_id)
    if problem:
        return "in_doubt", OutcomeUnknownError(problem), None
    if status.state == TransferState.APPLIED:
        if status.amount is None:
            return "no amount", OutcomeUnknownError(f"provider reports transfer {transfer_id} applied "
                                                    "without an amount"), None
        return "applied", None, (status.amount, status.provider_tx_id or "", status.created_at)
    if status.state == TransferState.FAILED:
        return "refused", RejectedError(f"provider reports transfer {transfer_id} failed "
                                        f"({status.error_code or 'no code'})"), None
    return "unseen", None, None


def confirmed_refusal(
    provider: Provider, transfer_id: str, direction: str, player_id: str, refusal: ProviderRefusedError,
) -> tuple[str, BaseException | None, Answer | None]:
    """The outcome of a refused send once the provider's status is asked: a refusal of a re-sent id
    may be a "duplicate" answer to an attempt that did apply.

    Applied: the status's answer is booked. Not there: ``refusal`` stands. Failed: refused with the
    status's reason. Anything else (no status, a status that does not fit, applied without an
    amount): in doubt, nothing booked; the in-doubt job asks again.
    """
    outcome, failure, answer = ask_status(provider, transfer_id, direction, player_id)
    if outcome == "unseen":
        return "refused", refusal, None
    if outcome == "no amount":
        return "in_doubt", failure, None
    return outcome, failure, answer


def _flag(connection: Connection, session: Row, transfer: Row, kind: str, detail: str, now: dt.datetime) -> None:
    """Record a discrepancy about ``transfer`` for finance."""
    discrepancies.record(connection, Finding(
        kind=kind, detail=detail, provider=session.provider, session_id=session.id, transfer_id=transfer.id,
        player_id=session.player_id, currency=session.game_currency,
    ), now=now)


def answer_problem(answer: Any, transfer_id: str, direction: str, player_id: str) -> str | None:
    """Why a provider's answer (result or status) is not about the transfer we asked for, or None."""
    answered_direction = getattr(getattr(answer, "direction", None), "value", getattr(answer, "direction", None))
    if answer.transfer_id != transfer_id:
        return f"provider answered for transfer {answer.transfer_id!r}, not {transfer_id!r}"
    if answered_direction is not None and answered_direction != direction:
        return f"provider answered {answered_direction} for {direction} transfer {transfer_id}"
    if getattr(answer, "player_id", None) not in (None, player_id):
        return f"provider answered for player {answer.player_id!r}, not {player_id!r} (transfer {transfer_id})"
    return None


def amount_problem(transfer: Row, session: Row, game_amount: Money) -> str | None:
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

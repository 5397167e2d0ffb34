"""JSON shapes of the reference provider API (``docs/provider-api.md``).

Shared by the HTTP client and the simulator so both sides agree byte for byte.
Amounts travel as decimal strings in major units next to a currency code
(``{"amount": "12.50", "currency": "EUR"}``), never as JSON numbers; times as
ISO 8601 UTC with a ``Z``. Decoding errors raise ``WireError`` (a ``ValueError``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from transfer_wallet.errors import ValidationError
from transfer_wallet.money import Money, MoneyError, currency
from transfer_wallet.providers.protocol import (
    Direction,
    Game,
    ProviderState,
    ProviderStatus,
    Round,
    TransferResult,
    TransferState,
    TransferStatus,
)
from transfer_wallet.timeutil import parse_instant


class WireError(ValueError):
    """A body does not have the documented shape."""


def dumps(document: Any) -> bytes:
    """Canonical compact JSON bytes (sorted keys, UTF-8): what is signed is what is sent."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def loads(body: bytes) -> dict[str, Any]:
    """A JSON object from ``body``; ``WireError`` for anything else. Floats are refused."""

    def no_float(text: str) -> Any:
        raise WireError(f"numbers with a fraction are not allowed on the wire ({text})")

    try:
        document = json.loads(body.decode("utf-8"), parse_float=no_float)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"body is not JSON: {exc}") from None
    except RecursionError:  # "[[[[...": nesting deeper than the parser's stack
        raise WireError("body is nested too deeply") from None
    if not isinstance(document, dict):
        raise WireError("body must be a JSON object")
    return document


def format_time(value: dt.datetime) -> str:
    """``2026-11-24T10:00:00.123456Z``."""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: Any) -> dt.datetime:
    """An aware UTC datetime from ISO 8601 text with an offset or ``Z``."""
    if not isinstance(text, str):
        raise WireError(f"expected an ISO 8601 time, got {type(text).__name__}")
    try:
        return parse_instant(text, "time")
    except ValidationError as exc:
        raise WireError(str(exc)) from None


def money_fields(value: Money) -> dict[str, str]:
    """``{"amount": "12.50", "currency": "EUR"}``."""
    return {"amount": value.format(), "currency": value.currency.code}


def parse_money(document: Any, *, allow_zero: bool = True) -> Money:
    """A ``Money`` from ``{"amount": "12.50", "currency": "EUR"}``."""
    if not isinstance(document, dict):
        raise WireError("expected an object with amount and currency")
    text, code = document.get("amount"), document.get("currency")
    if not isinstance(text, str) or not isinstance(code, str):
        raise WireError("amount and currency must be strings")
    try:
        return Money.parse(text, currency(code), allow_zero=allow_zero)
    except MoneyError as exc:
        raise WireError(str(exc)) from None


def field(document: Any, key: str) -> dict[str, Any]:
    """The object at ``document[key]``; ``WireError`` when either is not a JSON object."""
    if not isinstance(document, dict):
        raise WireError("expected a JSON object")
    value = document.get(key)
    if not isinstance(value, dict):
        raise WireError(f"'{key}' must be an object, got {type(value).__name__}")
    return value


def items(document: Any, key: str) -> list[Any]:
    """The array at ``document[key]``; ``WireError`` when either is of another type."""
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise WireError(f"'{key}' must be an array")
    return list(document[key])


def _str(document: Any, key: str) -> str:
    if not isinstance(document, dict):
        raise WireError(f"expected an object with '{key}'")
    value = document.get(key)
    if not isinstance(value, str):
        raise WireError(f"'{key}' must be a string")
    return value


def _optional_str(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise WireError(f"'{key}' must be a string")
    return value


def transfer_state(document: Any) -> tuple[TransferState | None, str | None]:
    """The ``state`` and ``error_code`` of a transfer response's ``transfer`` object.

    An unknown state is ``None`` (the caller decides what it means; for a transfer it
    is "outcome unknown"); a missing ``transfer`` object is a ``WireError``.
    """
    transfer = field(document, "transfer")
    text = _str(transfer, "state")
    known = {state.value: state for state in TransferState}
    return known.get(text), _optional_str(transfer, "error_code")


def transfer_document(
    transfer_id: str,
    provider_tx_id: str,
    player_id: str,
    direction: Direction,
    amount: Money,
    created_at: dt.datetime,
    state: TransferState = TransferState.APPLIED,
    error_code: str | None = None,
) -> dict[str, Any]:
    """The ``transfer`` object of transfer and transfer-status responses."""
    document: dict[str, Any] = {
        "transfer_id": transfer_id,
        "provider_tx_id": provider_tx_id,
        "player_id": player_id,
        "direction": direction.value,
        "amount": money_fields(amount),
        "state": state.value,
        "created_at": format_time(created_at),
    }
    if error_code:
        document["error_code"] = error_code
    return document


def parse_transfer_result(document: dict[str, Any], *, replayed: bool) -> TransferResult:
    """A ``TransferResult`` from a transfer response body (its state is checked by the caller)."""
    try:
        transfer = field(document, "transfer")
        return TransferResult(
            transfer_id=_str(transfer, "transfer_id"),
            provider_tx_id=_str(transfer, "provider_tx_id"),
            player_id=_str(transfer, "player_id"),
            direction=Direction(_str(transfer, "direction")),
            amount=parse_money(transfer["amount"]),
            balance_after=parse_money(field(document, "balance")),
            created_at=parse_time(transfer.get("created_at")),
            replayed=replayed,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad transfer response: {exc}") from None


def parse_transfer_status(document: dict[str, Any]) -> TransferStatus:
    """A ``TransferStatus`` from a ``GET /v1/transfers/{id}`` body."""
    try:
        transfer = field(document, "transfer")
        return TransferStatus(
            transfer_id=_str(transfer, "transfer_id"),
            state=TransferState(_str(transfer, "state")),
            direction=Direction(_str(transfer, "direction")),
            player_id=_str(transfer, "player_id"),
            amount=parse_money(transfer["amount"]),
            provider_tx_id=_str(transfer, "provider_tx_id"),
            created_at=parse_time(transfer.get("created_at")),
            error_code=_optional_str(transfer, "error_code"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad transfer status: {exc}") from None


def round_document(item: Round) -> dict[str, Any]:
    """One element of ``rounds``."""
    return {
        "round_id": item.round_id,
        "player_id": item.player_id,
        "game_id": item.game_id,
        "currency": item.bet.currency.code,
        "bet": item.bet.format(),
        "win": item.win.format(),
        "refund": item.refund.format(),
        "started_at": format_time(item.started_at),
        "ended_at": format_time(item.ended_at),
    }


def parse_round(document: Any) -> Round:
    """A ``Round`` from one element of ``rounds``."""
    if not isinstance(document, dict):
        raise WireError("a round must be an object")
    try:
        code = _str(document, "currency")
        return Round(
            round_id=_str(document, "round_id"),
            player_id=_str(document, "player_id"),
            game_id=_str(document, "game_id"),
            bet=parse_money({"amount": document["bet"], "currency": code}),
            win=parse_money({"amount": document["win"], "currency": code}),
            refund=parse_money({"amount": document["refund"], "currency": code}),
            started_at=parse_time(document.get("started_at")),
            ended_at=parse_time(document.get("ended_at")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad round: {exc}") from None


def game_document(game: Game) -> dict[str, str]:
    """One element of ``games``."""
    return {"game_id": game.game_id, "name": game.name, "category": game.category}


def parse_game(document: Any) -> Game:
    """A ``Game`` from one element of ``games``."""
    if not isinstance(document, dict):
        raise WireError("a game must be an object")
    return Game(_str(document, "game_id"), _str(document, "name"), _str(document, "category"))


def status_document(status: ProviderStatus) -> dict[str, str]:
    """The ``GET /v1/status`` body."""
    return {
        "provider": status.provider,
        "state": status.state.value,
        "currency": status.currency,
        "server_time": format_time(status.server_time),
        "version": status.version,
    }


def parse_status(document: dict[str, Any]) -> ProviderStatus:
    """A ``ProviderStatus`` from the ``GET /v1/status`` body."""
    try:
        return ProviderStatus(
            provider=_str(document, "provider"),
            state=ProviderState(_str(document, "state")),
            currency=_str(document, "currency"),
            server_time=parse_time(document.get("server_time")),
            version=_optional_str(document, "version") or "",
        )
    except (TypeError, ValueError) as exc:
        raise WireError(f"bad status: {exc}") from None

"""The simulator's endpoints as plain functions: request in, ``Response`` out, no sockets.

``server.py`` does the HTTP, signatures and faults and calls ``dispatch``; each
function here validates its input (400 with a code), touches the store and returns
a JSON document (or the CSV report). See ``docs/provider-api.md``.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from transfer_wallet.errors import ConfigError, ValidationError
from transfer_wallet.money import Money, MoneyError
from transfer_wallet.providers import wire
from transfer_wallet.providers.protocol import (
    Direction,
    ProviderState,
    ProviderStatus,
    check_identifier,
)
from transfer_wallet.simulator.faults import parse_rule
from transfer_wallet.simulator.play import MAX_ROUNDS_PER_PLAY, catalogue
from transfer_wallet.simulator.report import export_report
from transfer_wallet.simulator.store import StoredTransfer

if TYPE_CHECKING:  # pragma: no cover
    from transfer_wallet.simulator.server import SimulatorServer

VERSION = "tw-simulator-1"
MAX_ROUNDS_PER_QUERY = 1000


@dataclass
class Response:
    """What an endpoint answers: status, body and extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """An error answer: ``status`` and a stable ``code``."""

    def __init__(self, status: int, code: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra or {}

    def response(self) -> Response:
        """The JSON error body ``{"error": {"code", "message"}, ...}``."""
        return Response(self.status, wire.dumps({"error": {"code": self.code, "message": str(self)}, **self.extra}))


def _json(status: int, document: dict[str, Any]) -> Response:
    return Response(status, wire.dumps(document))


def _body(raw: bytes) -> dict[str, Any]:
    try:
        return wire.loads(raw)
    except wire.WireError as exc:
        raise ApiError(400, "BAD_REQUEST", str(exc)) from None


def _identifier(value: Any, what: str) -> str:
    try:
        return check_identifier(value, what)
    except ValidationError as exc:
        raise ApiError(400, "BAD_REQUEST", str(exc)) from None


def _transfer_doc(stored: StoredTransfer) -> dict[str, Any]:
    return wire.transfer_document(
        stored.transfer_id, stored.provider_tx_id, stored.player_id, stored.direction, stored.amount,
        stored.created_at, stored.state, stored.error_code,
    )


def transfer(sim: SimulatorServer, direction: Direction, raw: bytes) -> Response:
    """``POST /v1/transfers/in|out``: apply once; 201 applied, 200 replayed, 402, 409."""
    document = _body(raw)
    transfer_id = _identifier(document.get("transfer_id"), "transfer_id")
    player_id = _identifier(document.get("player_id"), "player_id")
    if document.get("currency") != sim.unit.code:
        raise ApiError(400, "CURRENCY_MISMATCH", f"game wallets are in {sim.unit.code}")
    text = document.get("amount")
    if text is None and direction is Direction.OUT:
        amount_minor = None
    else:
        if not isinstance(text, str):
            raise ApiError(400, "BAD_AMOUNT", "amount must be a decimal string like \"12.50\"")
        try:
            amount_minor = Money.parse(text, sim.unit).amount_minor
        except MoneyError as exc:
            raise ApiError(400, "BAD_AMOUNT", str(exc)) from None
    outcome = sim.store.apply_transfer(direction, transfer_id, player_id, amount_minor, sim.now())
    stored = outcome.transfer
    assert stored is not None
    if outcome.kind == "conflict":
        raise ApiError(409, "TRANSFER_CONFLICT", f"transfer id {transfer_id} was used with different content")
    if outcome.kind in ("failed", "replayed_failed"):
        raise ApiError(402, "INSUFFICIENT_FUNDS", "game balance too low", {"transfer": _transfer_doc(stored)})
    assert stored.balance_after is not None
    document = {"transfer": _transfer_doc(stored), "balance": wire.money_fields(stored.balance_after)}
    return _json(201 if outcome.kind == "applied" else 200, document)


def transfer_status(sim: SimulatorServer, transfer_id: str) -> Response:
    """``GET /v1/transfers/{id}``: 200 with the transfer, or 404."""
    stored = sim.store.transfer(_identifier(transfer_id, "transfer_id"))
    if stored is None:
        raise ApiError(404, "NOT_FOUND", "no transfer with this id")
    return _json(200, {"transfer": _transfer_doc(stored)})


def balance(sim: SimulatorServer, player_id: str) -> Response:
    """``GET /v1/players/{id}/balance``."""
    player_id = _identifier(player_id, "player_id")
    return _json(200, {"player_id": player_id, "balance": wire.money_fields(sim.store.balance(player_id))})


def rounds(sim: SimulatorServer, player_id: str, query: dict[str, str]) -> Response:
    """``GET /v1/players/{id}/rounds?since=ISO&limit=N``."""
    player_id = _identifier(player_id, "player_id")
    try:
        since = wire.parse_time(query.get("since"))
    except wire.WireError as exc:
        raise ApiError(400, "BAD_REQUEST", f"since: {exc}") from None
    limit_text = query.get("limit", "500")
    if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= MAX_ROUNDS_PER_QUERY:
        raise ApiError(400, "BAD_REQUEST", f"limit must be 1..{MAX_ROUNDS_PER_QUERY}")
    found = sim.store.rounds(player_id, since, int(limit_text))
    return _json(200, {"rounds": [wire.round_document(r) for r in found]})


def play(sim: SimulatorServer, player_id: str, raw: bytes) -> Response:
    """``POST /v1/players/{id}/play`` (simulator only): ``{"rounds": N, "seed": S}``."""
    player_id = _identifier(player_id, "player_id")
    document = _body(raw)
    count, seed = document.get("rounds", 1), document.get("seed")
    if not isinstance(count, int) or not 1 <= count <= MAX_ROUNDS_PER_PLAY:
        raise ApiError(400, "BAD_REQUEST", f"rounds must be an integer 1..{MAX_ROUNDS_PER_PLAY}")
    if seed is not None and not isinstance(seed, int):
        raise ApiError(400, "BAD_REQUEST", "seed must be an integer")
    played, after = sim.play(player_id, count, seed)
    return _json(200, {"rounds": [wire.round_document(r) for r in played], "balance": wire.money_fields(after)})


def games(sim: SimulatorServer) -> Response:
    """``GET /v1/games``."""
    return _json(200, {"games": [wire.game_document(g) for g in catalogue(sim.config.name)]})


def status(sim: SimulatorServer) -> Response:
    """``GET /v1/status``."""
    current = ProviderStatus(sim.config.name, ProviderState.UP, sim.unit.code, sim.now(), VERSION)
    return _json(200, wire.status_document(current))


def report(sim: SimulatorServer, query: dict[str, str]) -> Response:
    """``GET /v1/reports/transfers?date=YYYY-MM-DD``: the CSV report."""
    try:
        business_date = dt.date.fromisoformat(query.get("date", ""))
    except ValueError:
        raise ApiError(400, "BAD_REQUEST", "date must be YYYY-MM-DD") from None
    body = export_report(sim.store, sim.config.report, business_date)
    return Response(200, body, "text/csv; charset=utf-8")


def admin_faults(sim: SimulatorServer, method: str, raw: bytes) -> Response:
    """``GET|POST /v1/admin/faults``: read or replace the fault plan."""
    if method == "POST":
        document = _body(raw)
        texts, seed = document.get("rules", []), document.get("seed", sim.faults.seed)
        if not isinstance(texts, list) or not isinstance(seed, int):
            raise ApiError(400, "BAD_REQUEST", "rules must be a list of strings and seed an integer")
        try:
            sim.faults.replace([parse_rule(str(t)) for t in texts], seed)
        except ConfigError as exc:
            raise ApiError(400, "BAD_FAULT", str(exc)) from None
    return _json(200, sim.faults.describe())


def admin_requests(sim: SimulatorServer) -> Response:
    """``GET /v1/admin/requests``: the request log, newest last."""
    return _json(200, {"requests": sim.request_log_snapshot()})


_ID = r"([^/?]+)"
Route = tuple[str, "re.Pattern[str]", str]
ROUTES: list[Route] = [
    ("POST", re.compile(r"^/v1/transfers/in$"), "transfer_in"),
    ("POST", re.compile(r"^/v1/transfers/out$"), "transfer_out"),
    ("GET", re.compile(rf"^/v1/transfers/{_ID}$"), "transfer_status"),
    ("GET", re.compile(rf"^/v1/players/{_ID}/balance$"), "balance"),
    ("GET", re.compile(rf"^/v1/players/{_ID}/rounds$"), "rounds"),
    ("POST", re.compile(rf"^/v1/players/{_ID}/play$"), "play"),
    ("GET", re.compile(r"^/v1/games$"), "games"),
    ("GET", re.compile(r"^/v1/status$"), "status"),
    ("GET", re.compile(r"^/v1/reports/transfers$"), "report"),
    ("GET", re.compile(r"^/v1/admin/faults$"), "admin_faults"),
    ("POST", re.compile(r"^/v1/admin/faults$"), "admin_faults"),
    ("GET", re.compile(r"^/v1/admin/requests$"), "admin_requests"),
]


def route(method: str, target: str) -> tuple[str, list[str], dict[str, str]]:
    """``(endpoint, path arguments, query)`` for a request target; ``ApiError`` 404/405."""
    split = urllib.parse.urlsplit(target)
    query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
    path_matched = False
    for route_method, pattern, endpoint in ROUTES:
        match = pattern.match(split.path)
        if match:
            path_matched = True
            if route_method == method:
                return endpoint, [urllib.parse.unquote(a) for a in match.groups()], query
    if path_matched:
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"{method} not allowed here")
    raise ApiError(404, "NO_SUCH_ENDPOINT", "no such endpoint")


def dispatch(sim: SimulatorServer, endpoint: str, method: str, args: list[str], query: dict[str, str], raw: bytes) -> Response:
    """Call the endpoint function; an ``ApiError`` becomes its error response."""
    handlers: dict[str, Callable[[], Response]] = {
        "transfer_in": lambda: transfer(sim, Direction.IN, raw),
        "transfer_out": lambda: transfer(sim, Direction.OUT, raw),
        "transfer_status": lambda: transfer_status(sim, args[0]),
        "balance": lambda: balance(sim, args[0]),
        "rounds": lambda: rounds(sim, args[0], query),
        "play": lambda: play(sim, args[0], raw),
        "games": lambda: games(sim),
        "status": lambda: status(sim),
        "report": lambda: report(sim, query),
        "admin_faults": lambda: admin_faults(sim, method, raw),
        "admin_requests": lambda: admin_requests(sim),
    }
    try:
        return handlers[endpoint]()
    except ApiError as exc:
        return exc.response()


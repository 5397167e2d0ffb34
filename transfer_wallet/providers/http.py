"""The HTTP adapter: a ``Provider`` that speaks the reference API (``docs/provider-api.md``).

One ``HttpProvider`` per provider owns one pooled keep-alive ``httpx.Client`` with
explicit connect/read timeouts. Every attempt is signed afresh (new request id and
timestamp); every response is verified against the key ring.

Retries (tenacity): 429 (honouring ``Retry-After``), 5xx, network errors and
timeouts are retried with exponential backoff and jitter, bounded by
``max_attempts`` and ``max_retry_s`` (a wait that would cross the deadline stops
instead). A retried transfer re-sends the same transfer id and body. 401, 402,
409 and other 4xx are raised at once. When the retries run out, a *transfer*
raises ``OutcomeUnknownError`` (the last cause chained) — never a failure — and a
read raises the last ``RateLimitedError``/``ProviderUnavailableError``.

An answer is trusted only as far as it proves: a transfer counts as applied only
when its signed answer says ``APPLIED``; ``FAILED`` is a definitive refusal
(``RejectedError`` with the provider's error code); any other state, a malformed
body or one larger than ``MAX_RESPONSE_BYTES`` leaves a transfer's outcome unknown.

The game list is cached for 1 h and the provider status for 5 min. Sleep, clocks
and the jitter source are injectable so tests control time.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import httpx
import tenacity

from transfer_wallet.config import ProviderConfig
from transfer_wallet.errors import (
    AuthenticationFailedError,
    OutcomeUnknownError,
    ProviderError,
    ProviderInsufficientFundsError,
    ProviderRefusedError,
    ProviderTransientError,
    ProviderUnavailableError,
    RateLimitedError,
    RejectedError,
    TransferConflictError,
    ValidationError,
)
from transfer_wallet.money import Money, currency
from transfer_wallet.providers import wire
from transfer_wallet.providers.protocol import (
    Direction,
    Game,
    ProviderStatus,
    Round,
    TransferResult,
    TransferState,
    TransferStatus,
    check_identifier,
    check_transfer_request,
    utc,
)
from transfer_wallet.providers.signing import (
    DEFAULT_WINDOW_S,
    HEADER_REQUEST_ID,
    KeyRing,
    SignatureError,
    sign_request,
    verify_response,
)

log = logging.getLogger("transfer_wallet.providers.http")

GAMES_TTL_S = 3600.0
STATUS_TTL_S = 300.0
MAX_ROUNDS_PER_CALL = 1000
MAX_RESPONSE_BYTES = 1 << 20
"""The largest answer read (1 MiB): a bigger body is refused, never buffered whole."""
MAX_REPORT_BYTES = 256 << 20
"""The largest daily transfer report read (256 MiB)."""


class TtlCache:
    """A tiny thread-safe cache of loaded values with a time-to-live per entry."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get_or_load(self, key: str, ttl_s: float, load: Callable[[], Any]) -> Any:
        """The cached value of ``key`` if younger than ``ttl_s``, else ``load()`` (errors are not cached)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._clock() < entry[0]:
                return entry[1]
        value = load()
        with self._lock:
            self._entries[key] = (self._clock() + ttl_s, value)
        return value

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()


class _Backoff(tenacity.wait.wait_base):
    """Exponential backoff with "equal jitter", never shorter than the provider's Retry-After."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random) -> None:
        self.initial_s, self.max_s, self.rng = initial_s, max_s, rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exponential = min(self.max_s, self.initial_s * 2 ** (retry_state.attempt_number - 1))
        delay = exponential / 2 + self.rng.uniform(0, exponential / 2)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after_s", None) or 0.0
        return max(delay, retry_after)


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_s)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes


class HttpProvider:
    """A ``Provider`` over HTTP. Thread-safe; close it (or use ``with``) to free the pool.

    ``pooled=False`` opens a new connection per request (benchmark baseline).
    ``transport`` replaces the network (``httpx.MockTransport`` in tests);
    ``keyring`` replaces the keys of ``config`` (secrets from the environment).
    """

    def __init__(
        self,
        config: ProviderConfig,
        *,
        base_url: str | None = None,
        keyring: KeyRing | None = None,
        transport: httpx.BaseTransport | None = None,
        pooled: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
        verify_window_s: float = DEFAULT_WINDOW_S,
    ) -> None:
        self.name = config.name
        self.config = config
        self.base_url = (base_url or config.base_url).rstrip("/")
        self._currency = currency(config.currency)
        self._ring = keyring or KeyRing.from_config(config)
        self._sleep, self._monotonic, self._wall = sleep, monotonic, wall_clock
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._rng = rng or random.Random()
        self._window_s = verify_window_s
        self._cache = TtlCache(monotonic)
        timeout = httpx.Timeout(
            connect=config.connect_timeout_s, read=config.read_timeout_s,
            write=config.read_timeout_s, pool=config.connect_timeout_s,
        )
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32 if pooled else 0)
        if transport is None:
            # TCP_NODELAY: headers and body leave as separate writes; Nagle would stall them.
            nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            transport = httpx.HTTPTransport(limits=limits, socket_options=nodelay)
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport, limits=limits)

    def __repr__(self) -> str:
        return f"HttpProvider(name={self.name!r}, base_url={self.base_url!r}, keys={self._ring.key_ids!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HttpProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Provider protocol -------------------------------------------------------------

    def transfer_in(self, transfer_id: str, player_id: str, amount: Money) -> TransferResult:
        """Move ``amount`` into the player's game wallet (idempotent by ``transfer_id``)."""
        return self._transfer(Direction.IN, transfer_id, player_id, amount)

    def transfer_out(self, transfer_id: str, player_id: str, amount: Money | None) -> TransferResult:
        """Move ``amount`` (``None``: everything) back out; the result says what moved."""
        return self._transfer(Direction.OUT, transfer_id, player_id, amount)

    def balance(self, player_id: str) -> Money:
        """The player's game-wallet balance."""
        return self._get(_player_path(player_id, "balance"), lambda d: wire.parse_money(wire.field(d, "balance")))

    def transfer_status(self, transfer_id: str) -> TransferStatus:
        """APPLIED, FAILED or NOT_FOUND for ``transfer_id``."""
        path = f"/v1/transfers/{_segment(check_identifier(transfer_id, 'transfer id'))}"
        reply = self._call("GET", path, not_found_ok=True)
        if reply.status == 404:
            return TransferStatus(transfer_id, TransferState.NOT_FOUND)
        return self._decode(reply, wire.parse_transfer_status)

    def rounds(self, player_id: str, since: dt.datetime, *, limit: int = 500) -> list[Round]:
        """Rounds of ``player_id`` that ended at or after ``since``, oldest first."""
        if not 1 <= limit <= MAX_ROUNDS_PER_CALL:
            raise ValidationError(f"limit must be between 1 and {MAX_ROUNDS_PER_CALL}")
        query = {"since": wire.format_time(utc(since)), "limit": str(limit)}
        return self._get(_player_path(player_id, "rounds"), _parse_rounds, query)

    def games(self) -> list[Game]:
        """The game catalogue (cached 1 h)."""
        load = lambda: self._get("/v1/games", lambda d: [wire.parse_game(g) for g in wire.items(d, "games")])  # noqa: E731
        return list(self._cache.get_or_load("games", GAMES_TTL_S, load))

    def status(self) -> ProviderStatus:
        """The provider's health (cached 5 min)."""
        return self._cache.get_or_load("status", STATUS_TTL_S, lambda: self._get("/v1/status", wire.parse_status))

    # -- reference-API extras --------------------------------------------------------------

    def transfer_report(self, business_date: dt.date) -> bytes:
        """The provider's daily transfer report (CSV bytes in its own format)."""
        query = {"date": business_date.isoformat()}
        return self._call("GET", "/v1/reports/transfers", query=query, max_body_bytes=MAX_REPORT_BYTES).body

    # -- plumbing --------------------------------------------------------------------------

    def _transfer(self, direction: Direction, transfer_id: str, player_id: str, amount: Money | None) -> TransferResult:
        check_transfer_request(self.name, self._currency, direction, transfer_id, player_id, amount)
        body = {
            "transfer_id": transfer_id,
            "player_id": player_id,
            "amount": None if amount is None else amount.format(),
            "currency": self._currency.code,
        }
        path = "/v1/transfers/in" if direction is Direction.IN else "/v1/transfers/out"
        reply = self._call("POST", path, body=body, transfer_id=transfer_id)
        where = f"{self.name}: transfer {transfer_id}"
        try:
            document = wire.loads(reply.body)
            state, error_code = wire.transfer_state(document)
            if state is TransferState.APPLIED:
                result = wire.parse_transfer_result(document, replayed=reply.status == 200)
                if (result.transfer_id, result.direction, result.player_id) != (transfer_id, direction, player_id):
                    raise wire.WireError("it answers for another transfer, direction or player")
                return result
        except wire.WireError as exc:
            raise OutcomeUnknownError(f"{where}: unreadable response ({exc})") from exc
        if state is TransferState.FAILED:
            refusal = RejectedError(f"{where}: the provider says FAILED ({_one_line(error_code or '?')})")
            refusal.error_code = error_code
            raise refusal
        raise OutcomeUnknownError(f"{where}: the answer's state is not APPLIED or FAILED; ask transfer_status")

    def _get(self, path: str, parse: Callable[[dict[str, Any]], Any], query: dict[str, str] | None = None) -> Any:
        return self._decode(self._call("GET", path, query=query), parse)

    def _decode(self, reply: _Reply, parse: Callable[[dict[str, Any]], Any]) -> Any:
        try:
            return parse(wire.loads(reply.body))
        except (wire.WireError, KeyError, TypeError) as exc:  # KeyError/TypeError: ad-hoc parsers of extras
            raise ProviderUnavailableError(f"{self.name}: unreadable response ({exc})") from exc

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        transfer_id: str | None = None,
        not_found_ok: bool = False,
        max_attempts: int | None = None,
        max_body_bytes: int = MAX_RESPONSE_BYTES,
    ) -> _Reply:
        """Send with retries; a transfer whose retries run out becomes ``OutcomeUnknownError``."""
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        content = wire.dumps(body) if body is not None else b""
        start = self._monotonic()
        max_attempts = max_attempts or self.config.max_attempts
        max_retry_s = self.config.max_retry_s

        def stop(state: tenacity.RetryCallState) -> bool:
            elapsed = self._monotonic() - start
            return state.attempt_number >= max_attempts or elapsed + state.upcoming_sleep > max_retry_s

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.info("%s %s %s: %s; retry %d/%d in %.3f s", self.name, method, path,
                        type(exc).__name__, state.attempt_number, max_attempts - 1, state.upcoming_sleep)

        retrying = tenacity.Retrying(
            stop=stop,
            wait=_Backoff(*self._backoff, self._rng),
            retry=tenacity.retry_if_exception_type(ProviderTransientError),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        ambiguous: list[ProviderUnavailableError] = []

        def attempt() -> _Reply:
            try:
                return self._attempt(method, target, content, transfer_id, not_found_ok, max_body_bytes)
            except ProviderUnavailableError as exc:  # a 5xx, timeout or network error may have applied it
                ambiguous.append(exc)
                raise

        try:
            return retrying(attempt)
        except ProviderRefusedError as exc:
            if transfer_id is None or not ambiguous:
                raise
            # An earlier attempt may have been applied: a later refusal no longer proves that
            # nothing moved (and a refund on it would create money). Ask transfer_status.
            raise OutcomeUnknownError(
                f"{self.name}: transfer {transfer_id}: refused ({type(exc).__name__}) after an attempt whose "
                f"outcome is unknown ({type(ambiguous[-1]).__name__}); ask transfer_status"
            ) from exc
        except ProviderTransientError as exc:
            if transfer_id is None:
                raise
            raise OutcomeUnknownError(
                f"{self.name}: transfer {transfer_id}: outcome unknown after "
                f"{retrying.statistics.get('attempt_number', 1)} attempt(s) "
                f"({type(exc).__name__}); ask transfer_status or re-send the same transfer id"
            ) from exc

    def _attempt(self, method: str, target: str, content: bytes, transfer_id: str | None, not_found_ok: bool,
                 max_body_bytes: int) -> _Reply:
        """One signed HTTP exchange, its failure mapped onto the error tree."""
        path = target.split("?", 1)[0]
        request = self._client.build_request(method, target, content=content)
        raw_target = request.url.raw_path.decode("ascii")
        request.headers.update(sign_request(self._ring, method, raw_target, content, now_s=self._wall()))
        if content:
            request.headers["Content-Type"] = "application/json"
        request_id = request.headers[HEADER_REQUEST_ID]
        started = time.perf_counter()
        response, body = self._exchange(request, f"{self.name}: {method} {path}", transfer_id, max_body_bytes)
        status = response.status_code
        log.debug("%s %s %s -> %d in %.1f ms (request %s)", self.name, method, path, status,
                  (time.perf_counter() - started) * 1000, request_id)
        try:
            verify_response(self._ring, status, body, response.headers, request_id,
                            now_s=self._wall(), window_s=self._window_s)
            signed = True
        except SignatureError as exc:
            signed, reason = False, exc.reason
        where = f"{self.name}: {method} {path}"
        if status == 401:  # refused before anything is applied; cannot always be signed
            if transfer_id is not None and not signed:
                # We cannot tell a genuine refusal from a forged one; refunding on a forged 401
                # for a transfer the provider applied would create money.
                raise OutcomeUnknownError(
                    f"{where}: transfer {transfer_id}: authentication failed ({_error_text(body)}) in an "
                    f"unverifiable response ({reason}); check credentials, the money stays locked"
                )
            raise AuthenticationFailedError(f"{where}: authentication failed ({_error_text(body)}); check credentials")
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._wall())
            raise RateLimitedError(f"{where}: rate limited (429)", retry_after_s=retry_after)
        if status >= 500:
            raise ProviderUnavailableError(f"{where}: provider error {status} ({_error_text(body)})")
        if not signed:
            # A refusal or success we cannot authenticate proves nothing about a transfer.
            if transfer_id is not None:
                raise OutcomeUnknownError(f"{where}: transfer {transfer_id}: response signature invalid ({reason})")
            raise AuthenticationFailedError(f"{where}: response signature invalid ({reason})")
        if 200 <= status < 300 or (status == 404 and not_found_ok):
            return _Reply(status, body)
        message = f"{where}: {status} {_error_text(body)}"
        errors: dict[int, type[ProviderError]] = {
            402: ProviderInsufficientFundsError, 409: TransferConflictError,
        }
        raise errors.get(status, RejectedError)(message)

    def _exchange(self, request: httpx.Request, where: str, transfer_id: str | None,
                  max_body_bytes: int) -> tuple[httpx.Response, bytes]:
        """Send ``request`` and read at most ``max_body_bytes`` of the answer (network errors mapped)."""
        try:
            response = self._client.send(request, stream=True)
            try:
                body = _read_capped(response, max_body_bytes)
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            raise ProviderUnavailableError(f"{where}: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"{where}: network error ({type(exc).__name__})") from exc
        if body is None:
            oversize = f"{where}: answer larger than {max_body_bytes} bytes, not read"
            if transfer_id is not None:
                raise OutcomeUnknownError(f"{oversize}; transfer {transfer_id}: ask transfer_status")
            raise ProviderError(oversize)
        return response, body


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _player_path(player_id: str, action: str) -> str:
    return f"/v1/players/{_segment(check_identifier(player_id, 'player id'))}/{action}"


def _parse_rounds(document: dict[str, Any]) -> list[Round]:
    return [wire.parse_round(r) for r in wire.items(document, "rounds")]


def _read_capped(response: httpx.Response, max_bytes: int) -> bytes | None:
    """The body of a streamed ``response``, or None once it is known to exceed ``max_bytes``."""
    declared = response.headers.get("Content-Length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _one_line(text: object) -> str:
    """``text`` from a provider, short, printable and on one line."""
    return "".join(c if c.isprintable() else " " for c in str(text)).strip()[:200]


def _error_text(body: bytes) -> str:
    """``CODE: message`` from an error body, short and on one line."""
    try:
        error = wire.field(wire.loads(body), "error")
        text = f"{error.get('code', '?')}: {error.get('message', '')}"
    except wire.WireError:
        text = body[:80].decode("utf-8", "replace")
    return " ".join(_one_line(text).split())[:200]

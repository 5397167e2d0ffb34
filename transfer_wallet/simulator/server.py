"""The simulator's HTTP server: a real socket, signatures, the IP allow-list, faults, logging.

``SimulatorServer`` is a ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive.
For each request it: reads the body, checks the client IP against the provider's
``allowed_ips`` (403), routes (404/405), verifies the signature and refuses a
request id already seen in the replay window (401; the ids are kept in the store,
so a restart on the same store still refuses them), draws the faults of the
endpoint, calls ``api.dispatch`` and signs the response. Every request is logged
(``transfer_wallet.simulator``) and kept in a bounded in-memory log served at
``GET /v1/admin/requests``. No secret or signature value is ever logged.

``open_simulator`` builds the server ``tw provider serve`` runs (fault plan, port,
store and bind errors decided in one place).
"""

from __future__ import annotations

import collections
import datetime as dt
import ipaddress
import logging
import random
import socket
import socketserver
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from transfer_wallet.config import ProviderConfig
from transfer_wallet.errors import ConfigError
from transfer_wallet.money import Money, currency
from transfer_wallet.providers import wire
from transfer_wallet.providers.protocol import Round
from transfer_wallet.providers.signing import (
    DEFAULT_WINDOW_S,
    HEADER_KEY_ID,
    HEADER_REQUEST_ID,
    KeyRing,
    SignatureError,
    Verifier,
    sign_response,
)
from transfer_wallet.simulator import api
from transfer_wallet.simulator.faults import FaultDecision, FaultPlan, choose_plan
from transfer_wallet.simulator.play import simulate_rounds
from transfer_wallet.simulator.store import SimulatorStore

log = logging.getLogger("transfer_wallet.simulator")

MAX_BODY_BYTES = 64 * 1024
REQUEST_LOG_SIZE = 2000


class SimulatorServer(ThreadingHTTPServer):
    """A provider simulator bound to ``host:port`` (port 0: any free port; see ``url``)."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self,
        config: ProviderConfig,
        store_path: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keyring: KeyRing | None = None,
        faults: FaultPlan | None = None,
        seed: int = 0,
        now: Callable[[], dt.datetime] | None = None,
        verify_window_s: float = DEFAULT_WINDOW_S,
        round_prefix: str | None = None,
    ) -> None:
        self.config = config
        self.unit = currency(config.currency)
        configured = keyring or KeyRing.from_config(config)
        configured.signing_key()  # fail fast (ConfigError naming the variables) when no secret is set
        self.ring = configured.resolved()
        self.verifier = Verifier(self.ring, window_s=verify_window_s)
        self.faults = faults if faults is not None else FaultPlan.from_config(config.extra.get("faults"))
        self.now = now or (lambda: dt.datetime.now(dt.timezone.utc))
        # Round ids restart at r1 in a new store: a run with a fresh store names its rounds apart.
        self.round_prefix = round_prefix
        self.allowed = [ipaddress.ip_network(ip, strict=False) for ip in config.allowed_ips]
        self.stopping = threading.Event()
        self._play_rng, self._play_lock = random.Random(seed), threading.Lock()
        self._log: collections.deque[dict[str, Any]] = collections.deque(maxlen=REQUEST_LOG_SIZE)
        self._log_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.store = SimulatorStore(store_path, config.name, self.unit)
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except BaseException:
            self.store.close()
            raise

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    @property
    def url(self) -> str:
        """``http://host:port`` the server listens on."""
        host = self.server_name
        return f"http://[{host}]:{self.server_port}" if ":" in host else f"http://{host}:{self.server_port}"

    def start(self) -> SimulatorServer:
        """Serve in a background daemon thread (tests, benchmarks); ``stop()`` ends it."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sim-{self.config.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release held connections, close the socket and the store."""
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()
        self.store.close()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def play(self, player_id: str, count: int, seed: int | None) -> tuple[list[Round], Money]:
        """Play ``count`` rounds for ``player_id`` (seeded, or from the server's seeded source)."""
        with self._play_lock:
            rng = random.Random(seed) if seed is not None else random.Random(self._play_rng.getrandbits(64))
        now = self.now()
        return self.store.play(
            player_id,
            lambda balance, first: simulate_rounds(rng, self.config.name, self.unit, player_id, balance, first, count, now,
                                            round_prefix=self.round_prefix),
        )

    def play_in_background(self, every_s: float) -> threading.Thread:
        """Every ``every_s`` seconds, play one round for each player with a positive balance."""

        def loop() -> None:
            while not self.stopping.wait(every_s):
                for player_id in self.store.players_with_balance():
                    try:
                        self.play(player_id, 1, None)
                    except Exception:  # a closed store during shutdown
                        log.debug("background play stopped", exc_info=True)
                        return

        thread = threading.Thread(target=loop, name=f"sim-play-{self.config.name}", daemon=True)
        thread.start()
        return thread

    def verify(self, method: str, target: str, body: bytes, headers: Mapping[str, str]) -> str:
        """The key id that signed the request; ``SignatureError`` if it is unsigned, stale or replayed.

        The verifier's in-memory cache catches a replay within this process; the store
        catches one across restarts for the rest of the window.
        """
        key_id = self.verifier.verify_request(method, target, body, headers)
        now_s = time.time()
        request_id = headers.get(HEADER_REQUEST_ID) or ""
        if not self.store.remember_request(request_id, now_s, now_s + 2 * self.verifier.window_s):
            raise SignatureError("replayed_request", "request id already used")
        return key_id

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout fault, benchmark teardown) is not an error of ours.
        log.debug("connection from %s ended abnormally", client_address[0], exc_info=True)

    def ip_allowed(self, address: str) -> bool:
        """Whether ``address`` is in the provider's allow-list (IPv4-mapped IPv6 counts as IPv4)."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.allowed)

    def record(self, entry: dict[str, Any]) -> None:
        """Log one request (logger and in-memory log)."""
        with self._log_lock:
            self._log.append(entry)
        log.info(
            "%s %s %s -> %s in %d us (endpoint %s, key %s, request %s, fault %s, client %s)",
            self.config.name, entry["method"], entry["path"], entry["status"], entry["duration_us"],
            entry["endpoint"], entry["key_id"], entry["request_id"], entry["fault"], entry["client"],
        )

    def request_log_snapshot(self) -> list[dict[str, Any]]:
        """A copy of the request log, newest last."""
        with self._log_lock:
            return list(self._log)


def open_simulator(
    config: ProviderConfig,
    *,
    store: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    fault_rules: Sequence[str] = (),
    seed: int | None = None,
    no_faults: bool = False,
) -> SimulatorServer:
    """A simulator of ``config`` bound and ready to ``start()`` (what ``tw provider serve`` runs).

    Faults: ``fault_rules`` replace the providers file's rules, ``no_faults`` drops them,
    ``seed`` replaces its seed (see ``faults.choose_plan``). ``port`` defaults to the port
    of ``base_url``, ``store`` to ``sim-NAME.db``. A bad rule or an address that cannot be
    bound raises ``ConfigError``.
    """
    plan = choose_plan(config.extra.get("faults"), fault_rules, seed=seed, no_faults=no_faults)
    if port is None:
        port = urllib.parse.urlsplit(config.base_url).port or 80
    try:
        return SimulatorServer(config, store or f"sim-{config.name}.db", host=host, port=port, faults=plan, seed=plan.seed)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port") from exc


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = MAX_BODY_BYTES  # headers and body leave in one write at the end of each request
    server: SimulatorServer

    def version_string(self) -> str:
        return "tw-simulator"

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("%s: " + format, self.address_string(), *args)

    def _handle(self, method: str) -> None:
        started = time.perf_counter()
        entry: dict[str, Any] = {
            "time": wire.format_time(dt.datetime.now(dt.timezone.utc)), "method": method,
            "path": self.path.split("?", 1)[0][:200], "endpoint": None, "status": None,
            "key_id": None, "request_id": None, "fault": None, "client": self.client_address[0],
        }
        try:
            self._process(method, entry)
        except OSError:  # the client went away mid-answer
            entry["status"] = entry["status"] or "client gone"
            self.close_connection = True
        except Exception:
            log.exception("%s %s failed", method, entry["path"])
            try:
                self._send(api.ApiError(500, "INTERNAL", "internal error").response(), entry, close=True)
            except OSError:
                self.close_connection = True
        entry["duration_us"] = int((time.perf_counter() - started) * 1_000_000)
        self.server.record(entry)

    def _process(self, method: str, entry: dict[str, Any]) -> None:
        sim = self.server
        entry["request_id"] = (self.headers.get(HEADER_REQUEST_ID) or "")[:64] or None
        entry["key_id"] = (self.headers.get(HEADER_KEY_ID) or "")[:64] or None  # claimed until verified
        body = self._read_body(entry)
        if body is None:
            return
        if not sim.ip_allowed(self.client_address[0]):
            return self._send(api.ApiError(403, "FORBIDDEN_IP", "client address not allowed").response(), entry)
        try:
            endpoint, args, query = api.route(method, self.path)
        except api.ApiError as exc:
            return self._send(exc.response(), entry)
        entry["endpoint"] = endpoint
        try:
            # An HTTPMessage reads like a case-insensitive Mapping, which is all the verifier uses.
            entry["key_id"] = sim.verify(method, self.path, body, self.headers)  # type: ignore[arg-type]
        except SignatureError as exc:
            status = 503 if exc.reason == "replay_cache_full" else 401
            log.warning("%s %s refused: %s", method, entry["path"], exc.reason)
            return self._send(api.ApiError(status, exc.reason.upper(), str(exc)).response(), entry)
        decision = FaultDecision() if endpoint.startswith("admin") else sim.faults.decide(endpoint)
        entry["fault"] = decision.kind or ("latency" if decision.latency_s else None)
        if self._fault_answered(decision, entry):
            return
        response = api.dispatch(sim, endpoint, method, args, query, body)
        if decision.kind == "lost":  # applied above; the answer never arrives
            return self._drop(entry, f"lost (applied, would have been {response.status})")
        self._send(response, entry)

    def _read_body(self, entry: dict[str, Any]) -> bytes | None:
        """The request body, or None once a 411/413 was answered."""
        if self.headers.get("Transfer-Encoding"):
            self._send(api.ApiError(411, "LENGTH_REQUIRED", "send a Content-Length").response(), entry, close=True)
            return None
        length_text = self.headers.get("Content-Length") or "0"
        if not (length_text.isascii() and length_text.isdigit()) or int(length_text) > MAX_BODY_BYTES:
            self._send(api.ApiError(413, "TOO_LARGE", "body too large").response(), entry, close=True)
            return None
        return self.rfile.read(int(length_text))

    def _fault_answered(self, decision: FaultDecision, entry: dict[str, Any]) -> bool:
        """Apply the faults that act before the request is processed; True if they answered it."""
        if decision.latency_s and self.server.stopping.wait(decision.latency_s):
            self._drop(entry, "shutdown")
        elif decision.kind == "429":
            error = api.ApiError(429, "RATE_LIMITED", "slow down").response()
            error.headers["Retry-After"] = f"{decision.param:g}"
            self._send(error, entry)
        elif decision.kind == "500":
            self._send(api.ApiError(500, "INTERNAL", "injected fault").response(), entry)
        elif decision.kind == "reset":
            self._drop(entry, "reset")
        elif decision.kind == "timeout":
            self.server.stopping.wait(decision.param)
            self._drop(entry, "timeout")
        else:
            return False
        return True

    def _send(self, response: api.Response, entry: dict[str, Any], *, close: bool = False) -> None:
        request_id = self.headers.get(HEADER_REQUEST_ID) or ""
        key_id = self.headers.get(HEADER_KEY_ID) or ""
        signature = sign_response(
            self.server.ring, key_id, response.status, response.body, request_id[:64], now_s=time.time()
        )
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in {**signature, **response.headers}.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(response.body)
        entry["status"] = response.status

    def _drop(self, entry: dict[str, Any], what: str) -> None:
        """Close the connection with a reset and no response."""
        entry["status"] = what
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

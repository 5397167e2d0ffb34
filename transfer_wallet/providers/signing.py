"""Request and response signing: the key ring, the signer and the verifier.

The seed formula is ``signature = hex(HMAC-SHA256(secret, body + timestamp))``.
We sign that, followed by what binds the signature to *this* request (a
deliberate strengthening, see ``docs/provider-api.md``)::

    request:   body || timestamp || "\\n" || METHOD || "\\n" || path?query || "\\n" || request_id
    response:  body || timestamp || "\\nRESPONSE\\n" || status || "\\n" || request_id

so a signature cannot be moved to another endpoint, another query, or (for a
response) another request. The headers are ``X-TW-Key-Id``, ``X-TW-Timestamp``
(unix seconds), ``X-TW-Request-Id`` (one per HTTP attempt) and ``X-TW-Signature``.

The verifier checks, in this order: headers present, key id known, timestamp
within the window (default 300 s), signature (``hmac.compare_digest``), request id
not seen before. Secrets live only in memory, are read from the environment
variables the providers TOML names, and appear in no repr, log or message.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from transfer_wallet.config import ProviderConfig, ProviderKey
from transfer_wallet.errors import ConfigError

HEADER_KEY_ID = "X-TW-Key-Id"
HEADER_TIMESTAMP = "X-TW-Timestamp"
HEADER_REQUEST_ID = "X-TW-Request-Id"
HEADER_SIGNATURE = "X-TW-Signature"
DEFAULT_WINDOW_S = 300
KEY_MAX_AGE_DAYS = 90
MAX_REMEMBERED_REQUEST_IDS = 200_000


class SignatureError(Exception):
    """A signature check failed; ``reason`` is a stable code (``bad_signature``, ``stale_timestamp`` ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def request_message(body: bytes, timestamp: str, method: str, target: str, request_id: str) -> bytes:
    """The bytes a request signature covers (``target`` is the path with its query string)."""
    tail = f"{timestamp}\n{method.upper()}\n{target}\n{request_id}"
    return body + tail.encode()


def response_message(body: bytes, timestamp: str, status: int, request_id: str) -> bytes:
    """The bytes a response signature covers."""
    return body + f"{timestamp}\nRESPONSE\n{status}\n{request_id}".encode()


def hmac_hex(secret: bytes, message: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of ``message`` under ``secret``."""
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class _RingKey:
    key_id: str
    created: dt.date | None
    source: Callable[[], bytes | None]
    secret_env: str | None = None  # where the secret comes from, for messages


class KeyRing:
    """The active keys of one provider; several may be active at once during a rotation.

    Requests are signed with the newest key (by ``created``, then file order) whose
    secret is available; any key of the ring verifies.
    """

    def __init__(self, keys: Iterable[_RingKey]) -> None:
        self._keys = list(keys)
        if len({k.key_id for k in self._keys}) != len(self._keys):
            raise ConfigError("duplicate key id in key ring")

    @classmethod
    def from_config(cls, config: ProviderConfig) -> KeyRing:
        """The ring of ``config.keys``; secrets are read from the environment on each use."""

        def reader(key: ProviderKey) -> Callable[[], bytes | None]:
            def read() -> bytes | None:
                try:
                    return key.secret()
                except ConfigError:
                    return None

            return read

        return cls(_RingKey(k.key_id, k.created, reader(k), k.secret_env) for k in config.keys)

    @classmethod
    def from_secrets(cls, secrets: Mapping[str, bytes], created: Mapping[str, dt.date] | None = None) -> KeyRing:
        """A ring from in-memory secrets (tests, benchmarks); later entries count as newer."""
        dates = created or {}
        return cls(_RingKey(k, dates.get(k), _constant(s)) for k, s in secrets.items())

    def resolved(self) -> KeyRing:
        """A ring holding the secrets available *now* (a server reads its environment once, at start)."""
        keys = []
        for key in self._keys:
            secret = key.source()
            if secret:
                keys.append(_RingKey(key.key_id, key.created, _constant(secret), key.secret_env))
        return KeyRing(keys)

    @property
    def key_ids(self) -> list[str]:
        """The ids of the keys in the ring, in file order."""
        return [k.key_id for k in self._keys]

    def secret_for(self, key_id: str) -> bytes | None:
        """The secret of ``key_id``, or None if the key is unknown or its variable unset."""
        for key in self._keys:
            if key.key_id == key_id:
                return key.source()
        return None

    def signing_key(self) -> tuple[str, bytes]:
        """``(key_id, secret)`` of the newest usable key; ``ConfigError`` if none is usable."""
        order = sorted(
            enumerate(self._keys), key=lambda p: (p[1].created or dt.date.min, p[0]), reverse=True
        )
        for _, key in order:
            secret = key.source()
            if secret:
                return key.key_id, secret
        if not self._keys:
            raise ConfigError("no signing keys configured")
        variables = ", ".join(k.secret_env or f"the secret of {k.key_id}" for k in self._keys)
        raise ConfigError(f"no signing secret available: set one of {variables}")

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={self.key_ids!r})"


def sign_request(
    ring: KeyRing, method: str, target: str, body: bytes, *, now_s: float, request_id: str | None = None
) -> dict[str, str]:
    """The four signature headers for one HTTP attempt."""
    key_id, secret = ring.signing_key()
    timestamp = str(int(now_s))
    request_id = request_id or uuid.uuid4().hex
    signature = hmac_hex(secret, request_message(body, timestamp, method, target, request_id))
    return {
        HEADER_KEY_ID: key_id,
        HEADER_TIMESTAMP: timestamp,
        HEADER_REQUEST_ID: request_id,
        HEADER_SIGNATURE: signature,
    }


def sign_response(
    ring: KeyRing, key_id: str, status: int, body: bytes, request_id: str, *, now_s: float
) -> dict[str, str]:
    """Signature headers for a response, with the key the request used (or the newest)."""
    secret = ring.secret_for(key_id)
    if secret is None:
        key_id, secret = ring.signing_key()
    timestamp = str(int(now_s))
    signature = hmac_hex(secret, response_message(body, timestamp, status, request_id))
    return {
        HEADER_KEY_ID: key_id,
        HEADER_TIMESTAMP: timestamp,
        HEADER_REQUEST_ID: request_id,
        HEADER_SIGNATURE: signature,
    }


def _constant(secret: bytes) -> Callable[[], bytes | None]:
    """A secret source that always gives ``secret``."""
    return lambda: secret


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name) or headers.get(name.lower())
    if not value:
        raise SignatureError("missing_headers", f"missing header {name}")
    return value


def _same(expected: str, signature: str) -> bool:
    """Constant-time comparison; a signature with non-ASCII characters simply does not match."""
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))


def _check_timestamp(text: str, now_s: float, window_s: float) -> None:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise SignatureError("bad_timestamp", "timestamp must be unix seconds")
    if abs(now_s - int(text)) > window_s:
        raise SignatureError("stale_timestamp", f"timestamp outside the {window_s:g} s window")


def verify_response(
    ring: KeyRing,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    request_id: str,
    *,
    now_s: float,
    window_s: float = DEFAULT_WINDOW_S,
) -> None:
    """Raise ``SignatureError`` unless the response is signed by a ring key for ``request_id``."""
    key_id = _header(headers, HEADER_KEY_ID)
    timestamp = _header(headers, HEADER_TIMESTAMP)
    echoed = _header(headers, HEADER_REQUEST_ID)
    signature = _header(headers, HEADER_SIGNATURE)
    if echoed != request_id:
        raise SignatureError("wrong_request", "response answers another request")
    secret = ring.secret_for(key_id)
    if secret is None:
        raise SignatureError("unknown_key", "response signed with an unknown key")
    _check_timestamp(timestamp, now_s, window_s)
    expected = hmac_hex(secret, response_message(body, timestamp, status, request_id))
    if not _same(expected, signature):
        raise SignatureError("bad_signature", "response signature does not match")


class Verifier:
    """Checks request signatures for a server and remembers request ids against replay."""

    def __init__(
        self,
        ring: KeyRing,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.time,
        max_request_ids: int = MAX_REMEMBERED_REQUEST_IDS,
    ) -> None:
        self.ring = ring
        self.window_s = window_s
        self._clock = clock
        self._max = max_request_ids
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def verify_request(self, method: str, target: str, body: bytes, headers: Mapping[str, str]) -> str:
        """The key id that signed the request; ``SignatureError`` saying why not."""
        key_id = _header(headers, HEADER_KEY_ID)
        timestamp = _header(headers, HEADER_TIMESTAMP)
        request_id = _header(headers, HEADER_REQUEST_ID)
        signature = _header(headers, HEADER_SIGNATURE)
        if len(request_id) > 64:
            raise SignatureError("bad_request_id", "request id longer than 64 characters")
        secret = self.ring.secret_for(key_id)
        if secret is None:
            raise SignatureError("unknown_key", "unknown key id")
        now_s = self._clock()
        _check_timestamp(timestamp, now_s, self.window_s)
        expected = hmac_hex(secret, request_message(body, timestamp, method, target, request_id))
        if not _same(expected, signature):
            raise SignatureError("bad_signature", "signature does not match")
        self._remember(request_id, now_s)
        return key_id

    def _remember(self, request_id: str, now_s: float) -> None:
        # A request with timestamp ts is acceptable until ts + window <= now + 2 * window.
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now_s:
                self._seen.popitem(last=False)
            if request_id in self._seen:
                raise SignatureError("replayed_request", "request id already used")
            if len(self._seen) >= self._max:
                raise SignatureError("replay_cache_full", "too many requests in the replay window")
            self._seen[request_id] = now_s + 2 * self.window_s


@dataclass(frozen=True, slots=True)
class KeyAge:
    """One configured key, how old it is and whether its secret is set (never the secret)."""

    provider: str
    key_id: str
    secret_env: str
    created: dt.date | None
    age_days: int | None
    secret_set: bool
    too_old: bool


def key_ages(providers: Iterable[ProviderConfig], today: dt.date) -> list[KeyAge]:
    """Every key of ``providers`` with its age; ``too_old`` past ``KEY_MAX_AGE_DAYS``."""
    ages: list[KeyAge] = []
    for provider in providers:
        for key in provider.keys:
            age = (today - key.created).days if key.created else None
            ages.append(
                KeyAge(
                    provider=provider.name,
                    key_id=key.key_id,
                    secret_env=key.secret_env,
                    created=key.created,
                    age_days=age,
                    secret_set=bool(os.environ.get(key.secret_env)),
                    too_old=age is not None and age > KEY_MAX_AGE_DAYS,
                )
            )
    return ages

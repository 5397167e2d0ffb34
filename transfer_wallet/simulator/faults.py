"""Seeded fault injection for the simulator, configured per endpoint.

A rule is written ``ENDPOINT:KIND=PROBABILITY[:PARAM]``, e.g. ``transfer:500=0.2``,
``transfer:lost=0.05``, ``games:latency=1:250`` or ``*:429=0.1:2``.

Endpoints: ``transfer`` (both directions), ``transfer_in``, ``transfer_out``,
``transfer_status``, ``balance``, ``rounds``, ``games``, ``status``, ``report``,
``play`` and ``*`` (all of them; never the admin endpoints).

Kinds (what the client sees; whether the request was applied):

============  ===========================================  ========
``latency``   answer after PARAM ms (default 100)          yes
``429``       429 with ``Retry-After: PARAM`` s (default 1)  no
``500``       500 Internal Server Error                    no
``reset``     connection reset, no response                no
``timeout``   no response for PARAM s (default 30), closed  no
``lost``      connection reset, no response                **yes**
============  ===========================================  ========

Each request draws once per matching rule from one ``random.Random(seed)`` in rule
order: latencies add up, the first other kind that fires wins.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from transfer_wallet.errors import ConfigError

ENDPOINTS = frozenset(
    {"transfer_in", "transfer_out", "transfer_status", "balance", "rounds", "games", "status", "report", "play"}
)
ALIASES = {"transfer": frozenset({"transfer_in", "transfer_out"}), "*": ENDPOINTS}
KINDS = {"latency": 100.0, "429": 1.0, "500": 0.0, "reset": 0.0, "timeout": 30.0, "lost": 0.0}


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One parsed rule."""

    endpoint: str
    kind: str
    probability: float
    param: float

    def matches(self, endpoint: str) -> bool:
        """Whether the rule applies to ``endpoint``."""
        return endpoint in ALIASES.get(self.endpoint, frozenset({self.endpoint}))

    def __str__(self) -> str:
        return f"{self.endpoint}:{self.kind}={self.probability:g}:{self.param:g}"


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to do to one request: wait ``latency_s``, then ``kind`` (None: answer normally)."""

    latency_s: float = 0.0
    kind: str | None = None
    param: float = 0.0


def split_rules(texts: Iterable[str]) -> tuple[str, ...]:
    """Rule strings from options that are repeatable and comma-separated (``"a=0.1,b=0.2"``), blanks dropped."""
    return tuple(rule.strip() for text in texts for rule in text.split(",") if rule.strip())


def parse_rule(text: str) -> FaultRule:
    """A ``FaultRule`` from ``ENDPOINT:KIND=PROBABILITY[:PARAM]``; ``ConfigError`` saying what is wrong."""
    try:
        left, right = text.strip().split("=", 1)
        endpoint, kind = left.split(":", 1)
    except ValueError:
        raise ConfigError(f"fault {text!r}: write ENDPOINT:KIND=PROBABILITY[:PARAM], e.g. transfer:500=0.2") from None
    if endpoint not in ENDPOINTS and endpoint not in ALIASES:
        raise ConfigError(f"fault {text!r}: unknown endpoint {endpoint!r} (one of {', '.join(sorted(ENDPOINTS | set(ALIASES)))})")
    if kind not in KINDS:
        raise ConfigError(f"fault {text!r}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    probability_text, _, param_text = right.partition(":")
    try:
        probability = float(probability_text)
        param = float(param_text) if param_text else KINDS[kind]
    except ValueError:
        raise ConfigError(f"fault {text!r}: probability and parameter must be numbers") from None
    if not 0.0 <= probability <= 1.0:
        raise ConfigError(f"fault {text!r}: probability must be between 0 and 1")
    if param < 0 or param > 3600:
        raise ConfigError(f"fault {text!r}: parameter must be between 0 and 3600")
    return FaultRule(endpoint, kind, probability, param)


class FaultPlan:
    """The active rules and their seeded random source; thread-safe and replaceable at runtime."""

    def __init__(self, rules: Iterable[FaultRule] = (), seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.replace(rules, seed)

    @classmethod
    def parse(cls, texts: Iterable[str], seed: int = 0) -> FaultPlan:
        """A plan from rule strings."""
        return cls([parse_rule(t) for t in texts], seed)

    @classmethod
    def from_config(cls, table: Any) -> FaultPlan:
        """A plan from a ``[providers.NAME.faults]`` table (``seed`` and ``rules``); empty if absent."""
        if table is None:
            return cls()
        if not isinstance(table, dict) or set(table) - {"seed", "rules"}:
            raise ConfigError("faults: a table with 'seed' (integer) and 'rules' (list of strings)")
        seed, rules = table.get("seed", 0), table.get("rules", [])
        if not isinstance(seed, int) or not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise ConfigError("faults: 'seed' must be an integer and 'rules' a list of strings")
        return cls.parse(rules, seed)

    def replace(self, rules: Iterable[FaultRule], seed: int) -> None:
        """Switch to ``rules`` with a fresh random source seeded with ``seed``."""
        with self._lock:
            self.rules = tuple(rules)
            self.seed = seed
            self._rng = random.Random(seed)

    def decide(self, endpoint: str) -> FaultDecision:
        """The faults for one request to ``endpoint``."""
        with self._lock:
            latency_s, chosen = 0.0, None
            for rule in self.rules:
                if not rule.matches(endpoint) or self._rng.random() >= rule.probability:
                    continue
                if rule.kind == "latency":
                    latency_s += rule.param / 1000
                elif chosen is None:
                    chosen = rule
        return FaultDecision(latency_s, chosen.kind if chosen else None, chosen.param if chosen else 0.0)

    def describe(self) -> dict[str, Any]:
        """``{"seed": ..., "rules": [...]}`` for the admin endpoint and logs."""
        return {"seed": self.seed, "rules": [str(r) for r in self.rules]}


def choose_plan(
    table: Any, rules: Iterable[str] = (), *, seed: int | None = None, no_faults: bool = False
) -> FaultPlan:
    """The plan a simulator runs, from its ``[faults]`` table (or None) and the operator's choices.

    ``rules`` (if any) replace the table's rules; otherwise ``no_faults`` drops them.
    ``seed`` (if given) replaces the table's seed, which defaults to 0. A bad rule or
    table raises ``ConfigError`` naming it.
    """
    rules = list(rules)
    from_table = FaultPlan.from_config(table)
    chosen_seed = seed if seed is not None else from_table.seed
    if rules:
        return FaultPlan.parse(rules, chosen_seed)
    if no_faults:
        return FaultPlan(seed=seed or 0)
    return FaultPlan(from_table.rules, chosen_seed)

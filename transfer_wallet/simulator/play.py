"""Simulated play: a small game catalogue and seeded rounds of bets and wins.

A round stakes 1-10 % of the game balance (at least one minor unit), then pays
0, 0.5, 1, 2, 5 or 10 times the stake (return to player about 76 %), or, rarely,
refunds the stake. A player never bets more than the balance, so the balance
stays >= 0 and play stops at zero.
"""

from __future__ import annotations

import datetime as dt
import random

from transfer_wallet.money import Currency, Money
from transfer_wallet.providers.protocol import Game, Round

_CATALOGUE = (
    ("starfall", "Starfall Slots", "slots"),
    ("jungle-reels", "Jungle Reels", "slots"),
    ("roulette-eu", "European Roulette", "table"),
    ("blackjack", "Blackjack", "table"),
)
# (win multiplier in halves of the stake, weight)
_PAYOUTS = ((0, 60), (1, 10), (2, 12), (4, 12), (10, 5), (20, 1))
_REFUND_PROBABILITY = 0.03
MAX_ROUNDS_PER_PLAY = 1000


def catalogue(provider: str) -> list[Game]:
    """The games of ``provider`` (ids prefixed with its name)."""
    return [Game(f"{provider}-{game_id}", name, category) for game_id, name, category in _CATALOGUE]


def simulate_rounds(
    rng: random.Random,
    provider: str,
    unit: Currency,
    player_id: str,
    balance_minor: int,
    first_number: int,
    count: int,
    now: dt.datetime,
    *,
    round_prefix: str | None = None,
) -> list[Round]:
    """Up to ``count`` rounds over ``balance_minor``; ids ``{round_prefix or provider}-r{n}`` from ``first_number``."""
    games = catalogue(provider)
    multipliers = [m for m, _ in _PAYOUTS]
    weights = [w for _, w in _PAYOUTS]
    rounds: list[Round] = []
    balance = balance_minor
    for index in range(min(count, MAX_ROUNDS_PER_PLAY)):
        if balance <= 0:
            break
        bet = min(balance, max(1, balance * rng.choice((1, 2, 5, 10)) // 100))
        if rng.random() < _REFUND_PROBABILITY:
            win, refund = 0, bet
        else:
            win, refund = bet * rng.choices(multipliers, weights)[0] // 2, 0
        game = rng.choice(games)
        started = now + dt.timedelta(microseconds=index)
        rounds.append(
            Round(
                round_id=f"{round_prefix or provider}-r{first_number + index}",
                player_id=player_id,
                game_id=game.game_id,
                bet=Money(bet, unit),
                win=Money(win, unit),
                refund=Money(refund, unit),
                started_at=started,
                ended_at=started,
            )
        )
        balance += win + refund - bet
    return rounds

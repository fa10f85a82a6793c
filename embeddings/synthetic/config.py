"""The seed and sizes of the synthetic world (:func:`embeddings.synthetic.make_world`).

Its own module so that the shop and cards generators read it without importing the world back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from embeddings.checks import check_int, check_number
from embeddings.errors import ConfigError
from embeddings.synthetic.categories import CATEGORIES


@dataclass(frozen=True)
class WorldConfig:
    """Seed and sizes of the synthetic world.

    Defaults (about 120k events and 100k transactions) generate in a fraction of a second
    and are small enough to train item2vec and the fraud models on within seconds.
    """

    seed: int = 0
    start: date = date(2024, 1, 1)
    days: int = 91  # length of the period both datasets cover, from ``start``
    # shop
    n_items: int = 1_000
    n_clusters: int = 20
    n_users: int = 2_000
    n_sessions: int = 20_000
    mean_session_length: float = 6.0  # events; lengths are 2 + Poisson
    noise: float = 0.1  # share of events drawn from any cluster instead of the session's
    zipf: float = 1.0  # popularity exponent within a cluster: weight 1 / rank**zipf
    # cards
    n_regions: int = 8  # home regions of cards and merchants
    n_merchants: int = 300
    n_cards: int = 2_000
    n_transactions: int = 100_000
    fraud_rate: float = 0.03  # share of transactions that are planted fraud
    fraud_mix: tuple[float, float, float] = (0.4, 0.35, 0.25)  # takeover, card testing, merchant ring
    n_ring_merchants: int = 4

    def __post_init__(self) -> None:
        check_int("days", self.days, minimum=14)
        for name in ("n_clusters", "n_users", "n_ring_merchants"):
            check_int(name, getattr(self, name))
        check_int("n_regions", self.n_regions, minimum=2)
        check_int("n_cards", self.n_cards, minimum=10)
        check_number("noise", self.noise, at_least=0, at_most=1)
        check_number("zipf", self.zipf, at_least=0)
        check_number("mean_session_length", self.mean_session_length, at_least=2)
        check_number("fraud_rate", self.fraud_rate, at_least=0, at_most=0.2)
        checks = [
            (self.n_items >= self.n_clusters, "n_items must be at least n_clusters"),
            (self.n_sessions >= self.n_users, "n_sessions must be at least n_users (every user has a session)"),
            (
                self.n_merchants >= 2 * len(CATEGORIES) + self.n_ring_merchants,
                f"n_merchants must be at least {2 * len(CATEGORIES)} + n_ring_merchants",
            ),
            (self.n_transactions >= 10 * self.n_cards, "n_transactions must be at least 10 * n_cards"),
            (
                len(self.fraud_mix) == 3 and min(self.fraud_mix) >= 0 and sum(self.fraud_mix) > 0,
                "fraud_mix must be three non-negative weights with a positive sum",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"WorldConfig: {message}")
        # Each defrauded card carries 5 or more fraud rows on average, plus rounding per kind.
        if self.fraud_rate * self.n_transactions / 5 + 3 > 0.5 * self.n_cards:
            raise ConfigError(
                "WorldConfig: fraud_rate * n_transactions needs more cards (at most half of them defraud)"
            )

    def scaled(self, factor: float) -> WorldConfig:
        """The same world with every population (items, users, sessions, merchants, cards,
        transactions) multiplied by ``factor``; clusters, regions and rates stay as they are."""
        names = ("n_items", "n_users", "n_sessions", "n_merchants", "n_cards", "n_transactions")
        return replace(self, **{name: max(1, round(getattr(self, name) * factor)) for name in names})

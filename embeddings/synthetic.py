"""A seeded synthetic world with planted structure, for the demo and for every test.

``make_world(WorldConfig(seed=...))`` builds, in a second or two and with no Python loop
per event, two linked datasets as polars frames:

Shop (see :mod:`embeddings.synthetic_shop`)
    ``items`` (item_id, cluster, category, price), ``users`` (user_id, taste_clusters) and
    ``events`` (event_id, user_id, session_id, item_id, ts). Planted: item clusters (sessions stay
    within one of the user's 1-3 taste clusters up to ``noise``), Zipf popularity within a
    cluster, sessions recoverable by splitting at 30-minute gaps.

Cards (see :mod:`embeddings.synthetic_cards`)
    ``merchants`` (merchant_id, category, region, amount_scale, channel), ``cards``
    (card_id, region, habitual_merchants, spend_scale, weekly_rate) and ``transactions``
    (txn_id, card_id, merchant_id, amount, ts, category, channel, is_fraud, fraud_kind),
    sorted by (card_id, ts), txn ids numbered in time order. Planted: habitual, diurnal,
    weekly genuine spending and ``fraud_rate`` of fraud of three kinds, labelled by
    ``fraud_kind``: "account_takeover", "card_testing", "merchant_ring".

Graph
    ``edges`` (card_id, merchant_id, n_transactions, total_amount): the card-merchant
    bipartite graph aggregated from ``transactions``.

The same config (seed included) gives identical frames; shop and cards draw from
independent streams, so resizing one leaves the other unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from embeddings.errors import ConfigError
from embeddings.synthetic_cards import CATEGORIES, make_cards
from embeddings.synthetic_shop import make_shop

if TYPE_CHECKING:
    from embeddings.store import Store


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
        checks = [
            (self.days >= 14, "days must be at least 14"),
            (self.n_clusters >= 1, "n_clusters must be at least 1"),
            (self.n_items >= self.n_clusters, "n_items must be at least n_clusters"),
            (self.n_users >= 1, "n_users must be at least 1"),
            (self.n_sessions >= self.n_users, "n_sessions must be at least n_users (every user has a session)"),
            (self.mean_session_length >= 2, "mean_session_length must be at least 2"),
            (0 <= self.noise <= 1, "noise must be between 0 and 1"),
            (self.zipf >= 0, "zipf must be non-negative"),
            (self.n_regions >= 2, "n_regions must be at least 2"),
            (self.n_ring_merchants >= 1, "n_ring_merchants must be at least 1"),
            (
                self.n_merchants >= 2 * len(CATEGORIES) + self.n_ring_merchants,
                f"n_merchants must be at least {2 * len(CATEGORIES)} + n_ring_merchants",
            ),
            (self.n_cards >= 10, "n_cards must be at least 10"),
            (self.n_transactions >= 10 * self.n_cards, "n_transactions must be at least 10 * n_cards"),
            (0 <= self.fraud_rate <= 0.2, "fraud_rate must be between 0 and 0.2"),
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


@dataclass(frozen=True)
class World:
    """The generated frames; see the module docstring for columns and planted structure."""

    config: WorldConfig
    items: pl.DataFrame
    users: pl.DataFrame
    events: pl.DataFrame
    merchants: pl.DataFrame
    cards: pl.DataFrame
    transactions: pl.DataFrame
    edges: pl.DataFrame

    def frames(self) -> dict[str, pl.DataFrame]:
        """Every frame by name: items, users, events, merchants, cards, transactions, edges."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "config"}

    def to_store(self, store: Store) -> dict[str, int]:
        """Write items, events, merchants, cards and transactions into ``store``.

        Columns the store's tables lack go into their JSON ``attributes`` (item price; merchant
        amount scale and channel; card habitual merchants, spend scale and weekly rate); a
        merchant's or card's home region is its ``cluster``. Rows whose key is already stored are
        kept, so writing twice stores each row once. Returns rows written per table.
        """
        frames = {
            "items": self.items.select("item_id", "category", "cluster", attributes=pl.struct("price")),
            "events": self.events,
            "merchants": self.merchants.select(
                "merchant_id", "category", cluster="region", attributes=pl.struct("amount_scale", "channel")
            ),
            "cards": self.cards.select(
                "card_id",
                cluster="region",
                attributes=pl.struct("habitual_merchants", "spend_scale", "weekly_rate"),
            ),
            "transactions": self.transactions,
        }
        return {name: store.write(name, frame, on_conflict="ignore") for name, frame in frames.items()}

    def write(self, directory: str | Path) -> dict[str, Path]:
        """Write each frame as ``<directory>/<name>.parquet``; return the paths by name."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, frame in self.frames().items():
            paths[name] = directory / f"{name}.parquet"
            frame.write_parquet(paths[name])
        return paths


def make_world(config: WorldConfig | None = None) -> World:
    """Generate the synthetic world for ``config`` (default :class:`WorldConfig`)."""
    config = config or WorldConfig()
    shop_rng, cards_rng = np.random.default_rng(config.seed).spawn(2)
    items, users, events = make_shop(shop_rng, config)
    merchants, cards, transactions = make_cards(cards_rng, config)
    edges = (
        transactions.group_by("card_id", "merchant_id")
        .agg(n_transactions=pl.len().cast(pl.Int64), total_amount=pl.col("amount").sum())
        .sort("card_id", "merchant_id")
    )
    return World(config, items, users, events, merchants, cards, transactions, edges)

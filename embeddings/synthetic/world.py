"""A seeded synthetic world with planted structure, for the demo and for every test.

``make_world(WorldConfig(seed=...))`` builds, in a second or two and with no Python loop
per event, two linked datasets as polars frames:

Shop (see :mod:`embeddings.synthetic.shop`)
    ``items`` (item_id, cluster, category, price), ``users`` (user_id, taste_clusters) and
    ``events`` (event_id, user_id, session_id, item_id, ts). Planted: item clusters (sessions stay
    within one of the user's 1-3 taste clusters up to ``noise``), Zipf popularity within a
    cluster, sessions recoverable by splitting at 30-minute gaps.

Cards (see :mod:`embeddings.synthetic.cards`)
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

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from embeddings.synthetic.cards import make_cards
from embeddings.synthetic.config import WorldConfig
from embeddings.synthetic.shop import make_shop

if TYPE_CHECKING:
    from embeddings.store import Store


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

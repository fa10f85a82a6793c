"""Synthetic shop: items in planted clusters, users with tastes, browsing sessions.

Planted structure (what tests and demos can rely on):

- ``items``: every item belongs to one ``cluster`` (ids are shuffled, so the id says
  nothing about the cluster). Within a cluster popularity follows Zipf: a few items take
  most views. ``category`` is the cluster's name (clusters beyond the name list reuse
  names, so ``cluster`` is the ground truth).
- ``users``: each user likes 1-3 clusters (``taste_clusters``).
- ``events``: each session picks one of the user's taste clusters and stays in it, except
  for a ``noise`` share of events drawn from any cluster. Items that share a cluster
  therefore co-occur in sessions: item2vec neighbours should be cluster mates.
- Time: events within a session are 20 s to 25 min apart; a user's sessions are at least
  one hour apart. Splitting a user's events at gaps above 30 min recovers ``session_id``
  exactly. Events are sorted by (user, time); ``event_id`` numbers them in that order and
  ``session_id`` numbers sessions likewise.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from embeddings.synthetic.config import WorldConfig
from embeddings.synthetic.sampling import (
    US_PER_HOUR,
    US_PER_MINUTE,
    datetimes,
    draw_rows,
    epoch_us,
    group_cumsum,
    id_width,
    ids,
    run_offsets,
)

CLUSTER_NAMES = (
    "books", "music", "games", "toys", "garden", "kitchen", "sports", "outdoor", "beauty", "health",
    "baby", "pets", "office", "tools", "auto", "fashion", "shoes", "watches", "phones", "computers",
)  # fmt: skip


def make_shop(rng: np.random.Generator, config: WorldConfig) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Return ``(items, users, events)`` frames for ``config``; see the module docstring."""
    n_items, n_clusters, n_users = config.n_items, config.n_clusters, config.n_users

    cluster = rng.permutation(np.arange(n_items) % n_clusters)
    members = _members_by_cluster(rng, cluster, n_clusters)  # (n_clusters, max_size), -1 padded
    rank = np.arange(members.shape[1])
    popularity = np.where(members >= 0, 1.0 / (rank + 1.0) ** config.zipf, 0.0)

    price_scale = np.exp(rng.uniform(np.log(5.0), np.log(300.0), n_clusters))
    items = pl.DataFrame(
        {
            "item_id": ids("i", np.arange(n_items), id_width(n_items)),
            "cluster": cluster.astype(np.int64),
            "category": np.array(CLUSTER_NAMES)[cluster % len(CLUSTER_NAMES)],
            "price": np.round(price_scale[cluster] * rng.lognormal(0.0, 0.3, n_items), 2),
        }
    )

    n_tastes = rng.integers(1, min(3, n_clusters) + 1, n_users)
    tastes = np.argsort(rng.random((n_users, n_clusters)), axis=1)[:, : n_tastes.max()]
    liked = np.arange(tastes.shape[1]) < n_tastes[:, None]
    user_index = np.arange(n_users)
    user_ids = ids("u", user_index, id_width(n_users))
    users = (
        pl.DataFrame({"user": np.repeat(user_index, n_tastes), "cluster": tastes[liked].astype(np.int64)})
        .group_by("user", maintain_order=True)
        .agg(taste_clusters=pl.col("cluster"))
        .select(user_id=user_ids, taste_clusters="taste_clusters")
    )

    # Sessions: every user has one, the rest go to users in proportion to a lognormal activity.
    activity = rng.lognormal(0.0, 0.7, n_users)
    per_user = 1 + rng.multinomial(config.n_sessions - n_users, activity / activity.sum())
    session_user = np.repeat(user_index, per_user)
    n_sessions = session_user.size
    session_cluster = tastes[session_user, (rng.random(n_sessions) * n_tastes[session_user]).astype(np.int64)]
    length = 2 + rng.poisson(max(config.mean_session_length - 2.0, 0.0), n_sessions)

    # Within a session: 20 s plus exponential minutes, capped so that no gap reaches 30 min.
    event_session = np.repeat(np.arange(n_sessions), length)
    step = np.minimum(20e6 + rng.exponential(3 * US_PER_MINUTE, event_session.size), 25 * US_PER_MINUTE)
    offset = run_offsets(step, length)
    duration = offset[np.cumsum(length) - 1]

    # Between sessions: an hour plus a share of the user's free time, drawn like uniform
    # order statistics, so each user's sessions spread over the whole period and end within it.
    span = config.days * 24 * US_PER_HOUR
    share = rng.exponential(1.0, n_sessions)
    total = np.bincount(session_user, share, minlength=n_users) + rng.exponential(1.0, n_users)
    busy = per_user * US_PER_HOUR + np.bincount(session_user, duration, minlength=n_users)
    free = np.maximum(span - busy, 0.0)
    gap = US_PER_HOUR + share * (free / total)[session_user]
    session_start = group_cumsum(gap + duration, per_user) - duration

    event_cluster = np.repeat(session_cluster, length)
    noisy = rng.random(event_cluster.size) < config.noise
    event_cluster[noisy] = rng.integers(0, n_clusters, int(noisy.sum()))
    item = members[event_cluster, draw_rows(rng, popularity, event_cluster)]

    ts = epoch_us(config.start) + np.repeat(session_start, length) + offset
    events = pl.DataFrame(
        {
            "event_id": ids("e", np.arange(ts.size), id_width(ts.size)),
            "user_id": user_ids.gather(session_user[event_session]),
            "session_id": event_session.astype(np.int64),
            "item_id": items["item_id"].gather(item),
            "ts": datetimes(ts),
        }
    )
    return items, users, events


def _members_by_cluster(rng: np.random.Generator, cluster: np.ndarray, n_clusters: int) -> np.ndarray:
    """``(n_clusters, max_size)`` item indices per cluster in random popularity order, -1 padded."""
    order = np.lexsort((rng.random(cluster.size), cluster))
    sizes = np.bincount(cluster, minlength=n_clusters)
    position = np.arange(cluster.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    members = np.full((n_clusters, sizes.max()), -1, dtype=np.int64)
    members[cluster[order], position] = order
    return members

"""Synthetic card payments: merchants, cards, genuine spending and three planted fraud kinds.

Genuine behaviour: each card lives in a home ``region`` and buys mostly (95%) at its
``habitual_merchants`` (home-region and online merchants of everyday categories, the first
ones most often); the rest is exploration at any merchant. Amounts are lognormal around the
merchant's ``amount_scale`` times the card's ``spend_scale``; the hour of day follows the
category's diurnal profile (little between 0 and 6 am) and the day follows a weekly rhythm.

Planted fraud (``is_fraud`` True, ``fraud_kind`` set; about ``fraud_rate`` of all rows), each
kind on its own set of cards, all of which also have genuine history:

- ``account_takeover``: after a point chosen between 30% and 80% of the card's genuine
  history, a burst of 3-8 purchases within hours, usually starting at night, at
  electronics / jewelry / online / travel merchants outside the card's home region, with
  amounts far above the card's genuine median. Genuine rows before (and after) stay genuine.
- ``card_testing``: 5-15 amounts between 0.50 and 2.00 a minute or so apart at one online
  merchant, followed half of the time by one large purchase within three hours.
- ``merchant_ring``: ``n_ring_merchants`` colluding merchants that no card has as a habit;
  a group of compromised cards pays them round amounts (150-950) at night within one week.
  Ring merchants (in-store ones) therefore see mostly fraud: their only genuine rows are
  exploration.

Finding it: the cards of a kind are those with rows of that ``fraud_kind``; the ring
merchants are the merchants of the ``merchant_ring`` rows; a takeover starts at the card's
first ``account_takeover`` row.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl

from embeddings.synthetic.categories import CATEGORIES
from embeddings.synthetic.config import WorldConfig
from embeddings.synthetic.sampling import (
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_MINUTE,
    bumps,
    datetimes,
    day_weights,
    draw_rows,
    epoch_us,
    id_width,
    ids,
    run_offsets,
)

CATEGORY_NAMES = tuple(CATEGORIES)
RISKY = ("electronics", "jewelry", "online", "travel")
FRAUD_KINDS = ("account_takeover", "card_testing", "merchant_ring")
HABITUAL_SHARE = 0.95


class Merchants(NamedTuple):
    """Merchant arrays, ``(n_merchants,)`` each: category code, region, amount scale, online flag, ring flag."""

    category: np.ndarray
    region: np.ndarray
    scale: np.ndarray
    online: np.ndarray
    ring: np.ndarray


class Rows(NamedTuple):
    """Transaction rows as parallel arrays: card index, merchant index, microseconds from the start, amount."""

    card: np.ndarray
    merchant: np.ndarray
    ts: np.ndarray
    amount: np.ndarray


def make_cards(rng: np.random.Generator, config: WorldConfig) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Return ``(merchants, cards, transactions)`` for ``config``; see the module docstring."""
    n_c = config.n_cards
    m = _merchants(rng, config)
    c_region = rng.integers(0, config.n_regions, n_c)
    spend = np.round(rng.lognormal(0.0, 0.35, n_c), 3)
    habits = _habits(rng, m, c_region)

    # Fraud plan first (cards and row counts per kind), so genuine + fraud = n_transactions.
    mix = np.asarray(config.fraud_mix, dtype=np.float64) / sum(config.fraud_mix)
    mean_rows = np.array([5.5, 10.5, 5.5])
    n_kind_cards = np.round(config.fraud_rate * config.n_transactions * mix / mean_rows).astype(np.int64)
    victims = rng.permutation(n_c)[: n_kind_cards.sum()]
    ato_cards, ct_cards, ring_cards = np.split(victims, np.cumsum(n_kind_cards)[:2])
    ato_len = rng.integers(3, 9, ato_cards.size)
    ct_len = rng.integers(5, 16, ct_cards.size)
    ct_big = rng.random(ct_cards.size) < 0.5
    ring_len = rng.integers(3, 9, ring_cards.size)
    n_fraud = ato_len.sum() + ct_len.sum() + ct_big.sum() + ring_len.sum()

    activity = rng.lognormal(0.0, 0.6, n_c)
    per_card = 5 + rng.multinomial(config.n_transactions - n_fraud - 5 * n_c, activity / activity.sum())
    genuine = _genuine(rng, config, m, habits, spend, per_card)
    first = np.cumsum(per_card) - per_card

    def anchor(cards: np.ndarray) -> np.ndarray:
        """A genuine timestamp between 30% and 80% of each card's genuine history."""
        k = (rng.uniform(0.3, 0.8, cards.size) * per_card[cards]).astype(np.int64)
        return genuine.ts[first[cards] + k]

    parts = [
        genuine,
        _takeover(rng, m, ato_cards, ato_len, anchor(ato_cards), c_region),
        _card_testing(rng, m, ct_cards, ct_len, ct_big, anchor(ct_cards)),
        _ring(rng, config, m, ring_cards, ring_len),
    ]
    kind = np.repeat(np.arange(-1, 3), [part.card.size for part in parts])
    card, merchant, ts, amount = (np.concatenate(column) for column in zip(*parts))

    order = np.lexsort((ts, card))
    txn_no = np.empty(order.size, dtype=np.int64)
    txn_no[np.lexsort((card, ts))] = np.arange(order.size)  # ids follow global time
    card, merchant, ts, amount, kind, txn_no = (a[order] for a in (card, merchant, ts, amount, kind, txn_no))
    merchant_ids = ids("m", np.arange(config.n_merchants), id_width(config.n_merchants))
    card_ids = ids("c", np.arange(n_c), id_width(n_c))
    categories = np.array(CATEGORY_NAMES)
    transactions = pl.DataFrame(
        {
            "txn_id": ids("t", txn_no, id_width(order.size)),
            "card_id": card_ids.gather(card),
            "merchant_id": merchant_ids.gather(merchant),
            "amount": np.round(amount, 2),
            "ts": datetimes(epoch_us(config.start) + ts.astype(np.int64)),
            "category": categories[m.category[merchant]],
            "channel": np.where(m.online[merchant], "online", "pos"),
            "is_fraud": kind >= 0,
            "fraud_kind": np.array(FRAUD_KINDS)[np.maximum(kind, 0)],
        }
    ).with_columns(fraud_kind=pl.when("is_fraud").then("fraud_kind"))

    merchants = pl.DataFrame(
        {
            "merchant_id": merchant_ids,
            "category": categories[m.category],
            "region": m.region,
            "amount_scale": m.scale,
            "channel": np.where(m.online, "online", "pos"),
        }
    )
    chosen, weights = habits
    is_habit = weights > 0
    habit_rows = pl.DataFrame(
        {"card": np.repeat(np.arange(n_c), is_habit.sum(axis=1)), "merchant_id": merchant_ids.gather(chosen[is_habit])}
    )
    cards = (
        habit_rows.group_by("card", maintain_order=True)
        .agg(habitual_merchants="merchant_id")
        .select(
            card_id=card_ids,
            region=pl.Series(c_region),
            habitual_merchants="habitual_merchants",
            spend_scale=pl.Series(spend),
            weekly_rate=pl.Series(np.round(per_card / (config.days / 7.0), 2)),
        )
    )
    return merchants, cards, transactions


def _merchants(rng: np.random.Generator, config: WorldConfig) -> Merchants:
    """Merchants of every category (each at least once), a few ring merchants among the offline ones."""
    n_m, n_cat = config.n_merchants, len(CATEGORIES)
    share = np.array([c.share for c in CATEGORIES.values()])
    median = np.array([c.median for c in CATEGORIES.values()])
    extra = rng.choice(n_cat, n_m - n_cat, p=share / share.sum())
    category = rng.permutation(np.concatenate([np.arange(n_cat), extra]))
    region = rng.integers(0, config.n_regions, n_m)
    scale = np.round(median[category] * rng.lognormal(0.0, 0.3, n_m), 2)
    also_online = np.isin(category, _codes(("electronics", "travel"))) & (rng.random(n_m) < 0.3)
    online = (category == CATEGORY_NAMES.index("online")) | also_online
    ring = np.zeros(n_m, dtype=bool)
    ring[rng.choice(np.flatnonzero(~online), config.n_ring_merchants, replace=False)] = True
    return Merchants(category, region, scale, online, ring)


def _habits(rng: np.random.Generator, m: Merchants, c_region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4-12 habitual merchants per card: ``(n_cards, 12)`` merchant indices and their use weights.

    Weights fall with position (the first habit is used most) and are 0 past a card's habits.
    Chosen by Gumbel top-k, favouring popular everyday merchants at home or online; never ring merchants.
    """
    n_c, n_m = c_region.size, m.category.size
    habit = np.array([c.habit for c in CATEGORIES.values()])
    appeal = np.log(rng.lognormal(0.0, 1.0, n_m) * habit[m.category]) + np.log(3.0) * m.online
    score = appeal + np.log(20.0) * (m.region[None, :] == c_region[:, None]) + rng.gumbel(size=(n_c, n_m))
    score[:, m.ring] = -np.inf
    n_habits = rng.integers(4, 13, n_c)
    top = np.argpartition(-score, n_habits.max() - 1, axis=1)[:, : n_habits.max()]
    chosen = np.take_along_axis(top, np.argsort(-np.take_along_axis(score, top, 1), axis=1), 1)
    position = np.arange(chosen.shape[1])
    return chosen, np.where(position < n_habits[:, None], 1.0 / (position + 1.0) ** 0.8, 0.0)


def _genuine(
    rng: np.random.Generator,
    config: WorldConfig,
    m: Merchants,
    habits: tuple[np.ndarray, np.ndarray],
    spend: np.ndarray,
    per_card: np.ndarray,
) -> Rows:
    """Genuine rows sorted by (card, ts): habitual merchants, category-typical amounts, hours and weekdays."""
    sigma = np.array([c.sigma for c in CATEGORIES.values()])
    weekend = np.array([c.weekend for c in CATEGORIES.values()])
    hours = np.stack([bumps(c.hours) for c in CATEGORIES.values()])
    card = np.repeat(np.arange(per_card.size), per_card)
    chosen, weights = habits
    merchant = chosen[card, draw_rows(rng, weights, card)]
    explore = rng.random(card.size) >= HABITUAL_SHARE
    merchant[explore] = rng.integers(0, m.category.size, int(explore.sum()))
    cat = m.category[merchant]
    day = draw_rows(rng, day_weights(config.days, config.start, weekend), cat)
    hour = draw_rows(rng, hours, cat)
    ts = day * US_PER_DAY + hour * US_PER_HOUR + (rng.random(card.size) * US_PER_HOUR).astype(np.int64)
    amount = m.scale[merchant] * spend[card] * rng.lognormal(0.0, sigma[cat])
    order = np.lexsort((ts, card))
    return Rows(card[order], merchant[order], ts[order], amount[order])


def _takeover(
    rng: np.random.Generator,
    m: Merchants,
    cards: np.ndarray,
    length: np.ndarray,
    after: np.ndarray,
    c_region: np.ndarray,
) -> Rows:
    """Bursts of ``length`` large purchases at risky merchants outside the home region, mostly at night."""
    start = after + rng.uniform(1, 48, cards.size) * US_PER_HOUR
    night = rng.random(cards.size) < 0.7
    next_midnight = (start[night] // US_PER_DAY + 1) * US_PER_DAY
    start[night] = next_midnight + rng.uniform(0, 5, int(night.sum())) * US_PER_HOUR
    card = np.repeat(cards, length)
    step = US_PER_MINUTE + rng.exponential(25 * US_PER_MINUTE, card.size)
    ts = np.repeat(start, length) + run_offsets(step, length)
    risky = np.flatnonzero(np.isin(m.category, _codes(RISKY)) & ~m.ring)
    risky = risky[np.argsort(m.region[risky], kind="stable")]
    merchant = _away_from_home(rng, risky, m.region[risky], c_region[card])
    amount = np.maximum(m.scale[merchant], 200.0) * rng.lognormal(0.5, 0.4, card.size)
    return Rows(card, merchant, ts, amount)


def _card_testing(
    rng: np.random.Generator, m: Merchants, cards: np.ndarray, length: np.ndarray, big: np.ndarray, after: np.ndarray
) -> Rows:
    """Runs of ``length`` tiny amounts at one online merchant; where ``big``, one large purchase follows."""
    card = np.repeat(cards, length)
    step = 5e6 + rng.exponential(US_PER_MINUTE, card.size)
    ts = np.repeat(after + rng.uniform(1, 24, cards.size) * US_PER_HOUR, length) + run_offsets(step, length)
    online = np.flatnonzero(m.online & ~m.ring)
    merchant = np.repeat(online[rng.integers(0, online.size, cards.size)], length)
    amount = rng.uniform(0.5, 2.0, card.size)

    last = np.cumsum(length)[big] - 1
    risky = np.flatnonzero(np.isin(m.category, _codes(RISKY)) & ~m.ring)
    big_merchant = risky[rng.integers(0, risky.size, last.size)]
    big_ts = ts[last] + rng.uniform(10, 180, last.size) * US_PER_MINUTE
    big_amount = np.maximum(m.scale[big_merchant], 150.0) * rng.lognormal(0.6, 0.4, last.size)
    return Rows(
        np.concatenate([card, cards[big]]),
        np.concatenate([merchant, big_merchant]),
        np.concatenate([ts, big_ts]),
        np.concatenate([amount, big_amount]),
    )


def _ring(rng: np.random.Generator, config: WorldConfig, m: Merchants, cards: np.ndarray, length: np.ndarray) -> Rows:
    """Compromised ``cards`` pay round amounts (150-950) to the ring merchants at night within one week."""
    week = int(rng.uniform(0.4, 0.75) * config.days)
    card = np.repeat(cards, length)
    day = week + rng.integers(0, 7, card.size)
    ts = day * US_PER_DAY + rng.uniform(0, 5, card.size) * US_PER_HOUR
    ring = np.flatnonzero(m.ring)
    merchant = ring[rng.integers(0, ring.size, card.size)]
    return Rows(card, merchant, ts, 50.0 * rng.integers(3, 20, card.size))


def _codes(names: tuple[str, ...]) -> np.ndarray:
    return np.array([CATEGORY_NAMES.index(n) for n in names])


def _away_from_home(
    rng: np.random.Generator, pool: np.ndarray, pool_region: np.ndarray, home: np.ndarray
) -> np.ndarray:
    """For each ``home`` region draw a ``pool`` merchant of another region (``pool`` sorted by region).

    Uniform over the pool minus the home region's contiguous block; where the pool has no
    other region, uniform over the whole pool.
    """
    count = np.bincount(pool_region, minlength=home.max(initial=0) + 1)
    start = np.cumsum(count) - count
    away = pool.size - count[home]
    k = (rng.random(home.size) * np.where(away > 0, away, pool.size)).astype(np.int64)
    return pool[np.where((k < start[home]) | (away == 0), k, k + count[home])]

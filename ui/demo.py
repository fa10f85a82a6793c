"""``seqemb demo``: the synthetic world into the store, then every model trained on it.

Steps, each recorded as a run in the store:

1. ``synthetic`` — generate the seeded world and load its tables (events, items,
   merchants, cards, transactions) into the store;
2. ``item2vec`` on the browsing sessions (events read back from the store, cut at a
   30-minute gap) — items of one planted taste cluster should be each other's neighbours;
3. ``item2vec`` on the cards' transaction sequences — merchant vectors for the fraud models.

Each model's quality on the planted structure (the share of an item's 10 nearest
neighbours in its own cluster, or a merchant's in its own region) goes into its run's
metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from embeddings.data import EventSchema
from embeddings.evaluate import neighbour_agreement
from embeddings.item2vec import Item2VecJob, Item2VecModel, run_item2vec
from embeddings.sgns import SGNSConfig
from embeddings.store import Store
from embeddings.synthetic import World, WorldConfig, make_world

SESSION_GAP_MINUTES = 30


@dataclass
class DemoResult:
    """What the demo made: the world and each trained model with its run id."""

    world: World
    items: Item2VecModel
    items_run: str
    merchants: Item2VecModel
    merchants_run: str


def run_demo(
    store: Store, *, seed: int = 0, scale: float = 1.0, progress: bool = True, say: Callable[[str], None] = print
) -> DemoResult:
    """Generate the world into ``store`` and train the models on it; ``say`` reports each step."""
    config = WorldConfig(seed=seed).scaled(scale)
    with store.run("synthetic", config) as run:
        world = make_world(config)
        written = world.to_store(store)
        run.log_metrics(written)
    say(f"synthetic world (seed {seed}): " + ", ".join(f"{n:,} {table}" for table, n in written.items()))

    url = store.engine.url.render_as_string(hide_password=False)
    items_job = Item2VecJob(
        schema=EventSchema(entity="user_id", item="item_id", timestamp="ts"),
        session_gap_minutes=SESSION_GAP_MINUTES,
        sgns=SGNSConfig(dim=64, window=5, negative=10, epochs=10, seed=seed),
        name="items",
    )
    items, items_run = run_item2vec(url, items_job, store=store, table="events", progress=progress)
    purity = neighbour_agreement(items.index, dict(world.items.select("item_id", "cluster").iter_rows()))
    store.log_metrics(items_run, {"cluster_agreement@10": round(purity, 4)})
    say(f"item2vec on sessions: {_summary(items)}; {purity:.0%} of neighbours share the planted cluster")

    merchants_job = Item2VecJob(
        schema=EventSchema(entity="card_id", item="merchant_id", timestamp="ts"),
        sgns=SGNSConfig(dim=32, window=5, negative=10, epochs=10, seed=seed),
        name="merchants",
    )
    merchants, merchants_run = run_item2vec(url, merchants_job, store=store, table="transactions", progress=progress)
    region = neighbour_agreement(merchants.index, dict(world.merchants.select("merchant_id", "region").iter_rows()))
    store.log_metrics(merchants_run, {"region_agreement@10": round(region, 4)})
    say(f"item2vec on card transactions: {_summary(merchants)}; {region:.0%} of neighbours share the home region")
    return DemoResult(world, items, items_run, merchants, merchants_run)


def _summary(model: Item2VecModel) -> str:
    m = model.metrics
    return f"{m['keys']:,} keys from {m['tokens']:,} tokens in {m['train_seconds']:.1f}s"

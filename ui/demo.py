"""``seqemb demo``: the synthetic world into the store, then every model trained on it.

Steps, each recorded as a run in the store:

1. ``synthetic`` — generate the seeded world and load its tables (events, items,
   merchants, cards, transactions) into the store;
2. ``item2vec`` on the browsing sessions (events read back from the store, cut at a
   30-minute gap) — items of one planted taste cluster should be each other's neighbours;
3. ``item2vec`` on the cards' transaction sequences — merchant vectors for the fraud models;
4. ``node2vec`` on the card-merchant graph — card and merchant vectors as features.

Each model's quality on the planted structure (the share of an item's 10 nearest
neighbours in its own cluster, or a card's or merchant's in its own home region) goes into
its run's metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from embeddings.data import EventSchema
from embeddings.evaluate import neighbour_agreement
from embeddings.item2vec import Item2VecJob, run_item2vec
from embeddings.model import EmbeddingModel
from embeddings.node2vec import CARD_PREFIX, MERCHANT_PREFIX, Node2VecConfig, Node2VecJob, run_node2vec
from embeddings.sgns import SGNSConfig
from embeddings.store import Store
from embeddings.synthetic import World, WorldConfig, make_world

SESSION_GAP_MINUTES = 30


@dataclass
class DemoResult:
    """What the demo made: the world and each trained model with its run id."""

    world: World
    items: EmbeddingModel
    items_run: str
    merchants: EmbeddingModel
    merchants_run: str
    graph: EmbeddingModel
    graph_run: str


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
    trained = []
    for step in _item2vec_steps(world, seed):
        model, run_id = run_item2vec(url, step.job, store=store, table=step.table, progress=progress)
        agreement = neighbour_agreement(model.index, step.labels)
        store.log_metrics(run_id, {f"{step.label_name}_agreement@10": round(agreement, 4)})
        say(f"item2vec on {step.job.name}: {_summary(model)}; {agreement:.0%} of neighbours share the {step.label_name}")
        trained += [model, run_id]

    graph_job = Node2VecJob(
        src="card_id",
        dst="merchant_id",
        transactions=True,
        config=Node2VecConfig(dim=64, walk_length=40, walks_per_node=10, window=5, seed=seed),
    )
    graph, graph_run = run_node2vec(url, graph_job, store=store, table="transactions", progress=progress)
    regions = dict(
        pl.concat(
            [
                world.cards.select(pl.lit(CARD_PREFIX) + pl.col("card_id"), "region"),
                world.merchants.select(pl.lit(MERCHANT_PREFIX) + pl.col("merchant_id"), "region"),
            ]
        ).iter_rows()
    )
    agreement = neighbour_agreement(graph.index, regions)
    store.log_metrics(graph_run, {"region_agreement@10": round(agreement, 4)})
    m = graph.metrics
    say(
        f"node2vec on the card-merchant graph: {m['nodes']:,} nodes, {m['graph_edges']:,} edges in "
        f"{m['walk_seconds'] + m['train_seconds']:.1f}s; {agreement:.0%} of neighbours share the home region"
    )
    return DemoResult(world, *trained, graph, graph_run)


@dataclass
class _Step:
    """One item2vec model of the demo: what it reads and the planted label it should recover."""

    job: Item2VecJob
    table: str
    labels: dict
    label_name: str


def _item2vec_steps(world: World, seed: int) -> list[_Step]:
    sessions = Item2VecJob(
        schema=EventSchema(entity="user_id", item="item_id", timestamp="ts"),
        session_gap_minutes=SESSION_GAP_MINUTES,
        sgns=SGNSConfig(dim=64, window=5, negative=10, epochs=10, seed=seed),
        name="sessions",
    )
    card_histories = Item2VecJob(
        schema=EventSchema(entity="card_id", item="merchant_id", timestamp="ts"),
        sgns=SGNSConfig(dim=32, window=5, negative=10, epochs=10, seed=seed),
        name="card transactions",
    )
    return [
        _Step(sessions, "events", dict(world.items.select("item_id", "cluster").iter_rows()), "cluster"),
        _Step(card_histories, "transactions", dict(world.merchants.select("merchant_id", "region").iter_rows()), "region"),
    ]


def _summary(model: EmbeddingModel) -> str:
    m = model.metrics
    return f"{m['keys']:,} keys from {m['tokens']:,} tokens in {m['train_seconds']:.1f}s"

"""``seqemb demo``: the synthetic world into the store, then every model trained on it.

Steps, each recorded as a run in the store:

1. ``synthetic`` — generate the seeded world and load its tables (events, items,
   merchants, cards, transactions) into the store;
2. ``item2vec`` on the browsing sessions (events read back from the store, cut at a
   30-minute gap) — items of one planted taste cluster should be each other's neighbours;
3. ``item2vec`` on the cards' transaction sequences — merchant vectors for the fraud models;
4. ``node2vec`` on the card-merchant graph — card and merchant vectors as features;
5. ``recommender`` — the GRU / two-tower / NeuMF recommender on the users' events (item
   embeddings start from step 2's vectors; its category feeds the item tower), then
   ``recommend``: every user's top 10 written to the store's ``recommendations`` table;
6. ``fraud_model`` — the GRU sequence autoencoder on the cards' transactions (merchant
   vectors from step 3 as counterparty features; known frauds only kept out of training),
   then ``score``: every transaction scored into ``fraud_scores``, alerts into ``alerts``.

Each model's quality on the planted structure (the share of an item's 10 nearest
neighbours in its own cluster, or a card's or merchant's in its own home region) goes into
its run's metrics; for the recommender, the share of recommended items in the user's
planted taste clusters; for the fraud scores, the ROC-AUC of each planted kind of fraud
against the genuine transactions and the share of alerts that are planted fraud.

:func:`export_world` writes the world as the files the README's tour reads instead
(``seqemb demo --export DIR``): nothing is trained and the store is not touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import numpy as np
import polars as pl

from embeddings.data import EventSchema
from embeddings.evaluate import neighbour_agreement
from embeddings.files import atomic_output, check_output_dir
from embeddings.graph import card_keys, merchant_keys
from embeddings.graph.config import Node2VecConfig, Node2VecJob, paper_sgns
from embeddings.jobs import run_item2vec, run_node2vec
from embeddings.model import EmbeddingModel
from embeddings.sgns_config import Item2VecJob, SGNSConfig
from embeddings.store import Store
from embeddings.store.runs import JobResult
from embeddings.synthetic import World, WorldConfig, make_world
from fraud.config import AutoencoderConfig, FraudJob, FraudModelConfig, TransactionSchema
from fraud.jobs import run_train_fraud, score_batch
from fraud.model import FraudModel
from recsys.config import EncoderConfig, FitConfig, NeuMFConfig, RecommenderConfig, RecommenderJob, TowerConfig
from recsys.jobs import recommend_batch, run_recommender
from recsys.recommender import Recommender

SESSION_GAP_MINUTES = 30
ALERT_THRESHOLD = 0.999  # calibrated score: about 1 in 1,000 genuine transactions raises an alert


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
    recommender: Recommender
    recommender_run: str
    recommend_run: str
    fraud: FraudModel
    fraud_run: str
    score_run: str


# The tour's files: what each holds, from which frame of the world.
TOUR_FILES = {
    "clicks.parquet": "events: event_id, user_id, session_id, item_id, ts",
    "items.csv": "item attributes: item_id, category, price",
    "edges.csv": "card-merchant graph: a (card), b (merchant), weight (transactions)",
    "transactions.parquet": "txn_id, card_id, merchant_id, amount, ts, category, channel, is_fraud, fraud_kind",
}


def export_world(folder: Path, *, seed: int = 0, scale: float = 1.0) -> dict[str, Path]:
    """Write the seeded world's tables as :data:`TOUR_FILES` into ``folder`` (made if missing);
    each file appears whole or not at all. Returns the paths by file name."""
    check_output_dir(folder)
    folder.mkdir(parents=True, exist_ok=True)
    world = make_world(WorldConfig(seed=seed).scaled(scale))
    frames = {
        "clicks.parquet": world.events,
        "items.csv": world.items.select("item_id", "category", "price"),  # the cluster is the planted truth
        "edges.csv": world.edges.select(a="card_id", b="merchant_id", weight="n_transactions"),
        "transactions.parquet": world.transactions,
    }
    paths = {}
    for name, frame in frames.items():
        with atomic_output(folder / name) as tmp:
            if name.endswith(".csv"):
                frame.write_csv(tmp)
            else:
                frame.write_parquet(tmp)
        paths[name] = folder / name
    return paths


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
        result = run_item2vec(url, step.job, store=store, table=step.table, progress=progress)
        model, run_id = result.model, result.run_id
        agreement = neighbour_agreement(model.index, step.labels)
        store.log_metrics(run_id, {f"{step.label_name}_agreement@10": round(agreement, 4)})
        say(
            f"item2vec on {step.job.name}: {_summary(model)}; {agreement:.0%} of neighbours share the {step.label_name}"
        )
        trained += [model, run_id]

    graph_job = Node2VecJob(
        src="card_id",
        dst="merchant_id",
        transactions=True,
        config=Node2VecConfig(
            walk_length=40, walks_per_node=10, sgns=dataclasses.replace(paper_sgns(), dim=64, window=5, seed=seed)
        ),
    )
    graph_result = run_node2vec(url, graph_job, store=store, table="transactions", progress=progress)
    graph, graph_run = graph_result.model, graph_result.run_id
    regions = dict(
        pl.concat(
            [
                world.cards.select(card_keys(pl.col("card_id")), "region"),
                world.merchants.select(merchant_keys(pl.col("merchant_id")), "region"),
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
    items_path = store.get_run(trained[1])["artifact_path"]
    started = perf_counter()
    trained_recommender = _train_recommender(url, store, items_path, trained[0].embeddings.dim, seed, progress)
    recommender, recommender_run = trained_recommender.model, trained_recommender.run_id
    seconds = perf_counter() - started
    recommend_run = recommend_batch(
        store, recommender, k=10, model_path=str(trained_recommender.path), progress=progress
    ).run_id
    in_taste = taste_agreement(store, recommend_run, world)
    store.log_metrics(recommend_run, {"taste_agreement@10": round(in_taste, 4)})
    say(
        f"recommender on {recommender.n_users:,} users and {recommender.n_items:,} items in {seconds:.1f}s; top-10 written for every user, {in_taste:.0%} from their taste clusters"
    )
    started = perf_counter()
    trained_fraud = _train_fraud(url, store, store.get_run(trained[3])["artifact_path"])
    fraud, fraud_run = trained_fraud.model, trained_fraud.run_id
    score_run = score_batch(
        store,
        fraud,
        url,
        table="transactions",
        alert_threshold=ALERT_THRESHOLD,
        model_path=str(trained_fraud.path),
        progress=progress,
    ).run_id
    seconds = perf_counter() - started
    quality = fraud_agreement(store, score_run, world)
    store.log_metrics(score_run, quality)
    kinds = ", ".join(
        f"{kind.removesuffix('_auc').replace('_', ' ')} {auc:.2f}"
        for kind, auc in quality.items()
        if kind.endswith("_auc")
    )
    say(
        f"fraud autoencoder on {fraud.metrics['entities']:,} cards in {seconds:.1f}s; every transaction scored, "
        f"{quality['alerts']:,} alerts ({quality['alert_precision']:.0%} planted fraud); ROC-AUC by kind: {kinds}"
    )
    return DemoResult(
        world, *trained, graph, graph_run, recommender, recommender_run, recommend_run, fraud, fraud_run, score_run
    )


def _train_fraud(url: str, store: Store, merchant_vectors: str) -> JobResult[FraudModel]:
    """Train the demo's fraud model on the store's transactions; merchants carry their item2vec vectors."""
    job = FraudJob(
        schema=TransactionSchema(label="is_fraud"),
        config=FraudModelConfig(AutoencoderConfig(epochs=4), transaction_id="txn_id"),
        counterparty_vectors=merchant_vectors,
    )
    return run_train_fraud(url, job, store=store, table="transactions")


def fraud_agreement(store: Store, run_id: str, world: World) -> dict[str, float]:
    """ROC-AUC of the run's stored scores for each planted kind of fraud against the genuine
    transactions, and the number of alerts and the share of them that are planted fraud."""
    from sklearn.metrics import roc_auc_score

    scored = store.read("fraud_scores", where={"run_id": run_id}, columns=["txn_id", "score"]).join(
        world.transactions.select("txn_id", "fraud_kind"), on="txn_id"
    )
    genuine = scored.filter(pl.col("fraud_kind").is_null())["score"].to_numpy()
    quality: dict[str, float] = {}
    for kind in sorted(scored["fraud_kind"].drop_nulls().unique().to_list()):
        fraud = scored.filter(pl.col("fraud_kind") == kind)["score"].to_numpy()
        labels = np.concatenate([np.zeros(genuine.size), np.ones(fraud.size)])
        quality[f"{kind}_auc"] = round(float(roc_auc_score(labels, np.concatenate([genuine, fraud]))), 4)
    alerts = store.read("alerts", where={"run_id": run_id}, columns=["txn_id"]).join(
        world.transactions.select("txn_id", "is_fraud"), on="txn_id"
    )
    quality["alerts"] = alerts.height
    quality["alert_precision"] = round(float(alerts["is_fraud"].mean()), 4) if alerts.height else 0.0
    return quality


def _train_recommender(
    url: str, store: Store, item_vectors: str, dim: int, seed: int, progress: bool
) -> JobResult[Recommender]:
    """Train the demo's recommender from the store's events; its items start from the item2vec vectors."""
    config = RecommenderConfig(
        encoder=EncoderConfig(dim=dim, hidden=dim),
        fit=FitConfig(epochs=5, lr=3e-3, tokens_per_batch=2048, max_length=20),
        tower=TowerConfig(dim=dim, attribute_dim=8, id_dropout=0.2),
        tower_fit=FitConfig(epochs=1, lr=3e-3, tokens_per_batch=2048, max_length=20),
        neumf=NeuMFConfig(dim=32, mlp=(64, 32), epochs=1, batch_size=1024),
        candidates=50,
        rerank_positions=20_000,
        seed=seed,
    )
    job = RecommenderJob(
        schema=EventSchema(entity="user_id", item="item_id", timestamp="ts"),
        attributes=url,
        attributes_table="items",
        attribute_columns=["category"],
        item_vectors=item_vectors,
        config=config,
    )
    return run_recommender(url, job, store=store, table="events", progress=progress)


def taste_agreement(store: Store, run_id: str, world: World) -> float:
    """Share of the run's stored recommendations that fall in the user's planted taste clusters."""
    recommended = store.read("recommendations", where={"run_id": run_id}, columns=["user_id", "item_id"])
    truth = recommended.join(world.items.select("item_id", "cluster"), on="item_id").join(
        world.users.select("user_id", "taste_clusters"), on="user_id"
    )
    return float(truth.select(pl.col("taste_clusters").list.contains(pl.col("cluster")).mean()).item())


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
        _Step(
            card_histories, "transactions", dict(world.merchants.select("merchant_id", "region").iter_rows()), "region"
        ),
    ]


def _summary(model: EmbeddingModel) -> str:
    m = model.metrics
    return f"{m['keys']:,} keys from {m['tokens']:,} tokens in {m['train_seconds']:.1f}s"

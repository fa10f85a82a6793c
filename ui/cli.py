"""The ``seqemb`` command line (typer): flags map onto the library's config dataclasses.

A user error (a bad file, column, flag or key) ends the command with one line on stderr
and exit status 2, no traceback.
"""

from __future__ import annotations

import dataclasses
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from embeddings.data import EventSchema
from embeddings.errors import ConfigError, DataError, NotFoundError, SeqembError, first_line
from embeddings.item2vec import Item2VecJob, run_item2vec
from embeddings.model import EmbeddingModel, latest_model
from embeddings.node2vec import Node2VecConfig, Node2VecJob, run_node2vec
from embeddings.sgns import SGNSConfig
from embeddings.store import Store
from fraud.autoencoder import AutoencoderConfig
from fraud.features import TransactionSchema
from fraud.model import FRAUD_MODEL_KIND, FraudJob, FraudModel, FraudModelConfig, run_train_fraud
from fraud.scoring import score_batch
from recsys.batch import recommend_batch
from recsys.job import RECOMMENDER_KIND, RecommenderJob, run_recommender
from recsys.recommender import Recommender
from recsys.train import RecommenderConfig

app = typer.Typer(
    name="seqemb",
    help="Recommendations and fraud detection built on sequence embeddings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Mode(str, Enum):
    skipgram = "skipgram"
    cbow = "cbow"


class IndexKind(str, Enum):
    exact = "exact"
    ivf = "ivf"
    hnsw = "hnsw"


# The run kind of `seqemb train-recommender`; `recommend` and `serve` default to its newest model.
_RECSYS = RecommenderConfig()

DbOption = Annotated[
    Optional[str],
    typer.Option("--db", help="SQLAlchemy URL of the store (default: $SEQEMB_DB_URL or $SEQEMB_HOME/seqemb.sqlite)"),
]


@app.command()
def demo(
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Do not open the dashboard at the end.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic world and of training.")] = 0,
    scale: Annotated[
        float, typer.Option(min=0.05, max=10.0, help="Size of the world relative to the default (1.0 = 2,000 users).")
    ] = 1.0,
    db: DbOption = None,
) -> None:
    """Generate the synthetic world into the store and train every model on it."""
    from ui.demo import run_demo

    store = Store(db)
    typer.echo(f"store: {store.url}")
    result = run_demo(store, seed=seed, scale=scale, say=typer.echo)
    runs = (result.items_run, result.merchants_run, result.graph_run, result.recommender_run)
    for label, run_id in zip(("models:", "", "", ""), runs):
        typer.echo(f"{label:<8}{_artifact(store, run_id)}")
    typer.echo(f"try:    seqemb similar {result.world.items['item_id'][0]}")
    typer.echo(f"        seqemb similar {result.graph.embeddings.keys[0]}")
    typer.echo(f"        seqemb recommend --user {result.world.users['user_id'][0]}")
    if not no_ui:
        typer.echo("the dashboard is not part of this version yet; nothing to open")


@app.command()
def item2vec(
    source: Annotated[str, typer.Argument(help="CSV / Parquet file, or a SQLAlchemy URL with --table or --query.")],
    entity: Annotated[str, typer.Option(help="Column of the user, card or session id.")],
    item: Annotated[str, typer.Option(help="Column of the item id.")],
    timestamp: Annotated[Optional[str], typer.Option(help="Column of the event time (default: file order).")] = None,
    table: Annotated[Optional[str], typer.Option(help="Table to read when SOURCE is a URL.")] = None,
    query: Annotated[Optional[str], typer.Option(help="SQL query to read when SOURCE is a URL.")] = None,
    session_gap: Annotated[
        Optional[float], typer.Option(help="Minutes of inactivity that start a new session (default: none).")
    ] = None,
    min_count: Annotated[int, typer.Option(min=1, help="Drop items seen fewer times (counted in the report).")] = 5,
    min_length: Annotated[int, typer.Option(min=2, help="Drop sequences shorter than this.")] = 2,
    mode: Annotated[Mode, typer.Option(help="Skip-gram or CBOW.")] = Mode.skipgram,
    dim: Annotated[int, typer.Option(min=1, help="Vector dimension.")] = 64,
    window: Annotated[int, typer.Option(min=1, help="Largest context window.")] = 5,
    negative: Annotated[int, typer.Option(min=1, help="Negative samples per positive.")] = 10,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the data.")] = 10,
    sample: Annotated[float, typer.Option(min=0.0, help="Subsampling threshold of frequent items (0 = off).")] = 1e-3,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    workers: Annotated[int, typer.Option(min=0, help="Threads (0 = every core).")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    index: Annotated[IndexKind, typer.Option(help="Nearest-neighbour index to build.")] = IndexKind.hnsw,
    out: Annotated[
        Optional[Path], typer.Option(help="Model directory (default: $SEQEMB_HOME/models/item2vec-<run id>).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Train item2vec (word2vec over item sequences) on an event table."""
    job = Item2VecJob(
        schema=EventSchema(entity=entity, item=item, timestamp=timestamp),
        session_gap_minutes=session_gap,
        min_count=min_count,
        min_length=min_length,
        sgns=SGNSConfig(
            mode=mode.value,
            dim=dim,
            window=window,
            negative=negative,
            epochs=epochs,
            sample=sample,
            seed=seed,
            workers=workers,
            device=device,
        ),
        index_kind=index.value,
    )
    store = Store(db)
    model, run_id = run_item2vec(source, job, store=store, table=table, query=query, out=out)
    m = model.metrics
    typer.echo(f"trained {m['keys']:,} items on {m['tokens']:,} tokens in {m['train_seconds']:.1f}s")
    typer.echo(f"dropped: {m['rows_dropped']}")
    typer.echo(f"run {run_id} in {store.url}")
    typer.echo(f"model: {_artifact(store, run_id)}")


@app.command()
def node2vec(
    edges: Annotated[str, typer.Option(help="Edge table: CSV / Parquet file, or a SQLAlchemy URL with --table or --query.")],
    src: Annotated[str, typer.Option(help="Column of an edge's source node.")] = "src",
    dst: Annotated[str, typer.Option(help="Column of an edge's target node.")] = "dst",
    weight: Annotated[Optional[str], typer.Option(help="Column of edge weights (default: unweighted).")] = None,
    directed: Annotated[bool, typer.Option(help="Treat edges as directed.")] = False,
    transactions: Annotated[
        bool,
        typer.Option(help="EDGES is a transaction table: embed its card-merchant graph (--src card, --dst merchant)."),
    ] = False,
    table: Annotated[Optional[str], typer.Option(help="Table to read when EDGES is a URL.")] = None,
    query: Annotated[Optional[str], typer.Option(help="SQL query to read when EDGES is a URL.")] = None,
    p: Annotated[float, typer.Option("-p", help="Return parameter (low = stay local).")] = 1.0,
    q: Annotated[float, typer.Option("-q", help="In-out parameter (low = explore outward).")] = 1.0,
    dim: Annotated[int, typer.Option(min=1, help="Vector dimension.")] = 128,
    walk_length: Annotated[int, typer.Option(min=2, help="Nodes per walk.")] = 80,
    walks_per_node: Annotated[int, typer.Option(min=1, help="Walks started at each node.")] = 10,
    window: Annotated[int, typer.Option(min=1, help="Largest context window.")] = 10,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the walks.")] = 1,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    workers: Annotated[int, typer.Option(min=0, help="Threads (0 = every core).")] = 0,
    index: Annotated[IndexKind, typer.Option(help="Nearest-neighbour index to build.")] = IndexKind.hnsw,
    out: Annotated[
        Optional[Path], typer.Option(help="Model directory (default: $SEQEMB_HOME/models/node2vec-<run id>).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Embed the nodes of a graph with node2vec (biased random walks + skip-gram)."""
    config = Node2VecConfig(
        dim=dim, walk_length=walk_length, walks_per_node=walks_per_node, window=window, p=p, q=q,
        epochs=epochs, seed=seed, workers=workers,
    )  # fmt: skip
    job = Node2VecJob(
        src=src, dst=dst, weight=weight, directed=directed, transactions=transactions, config=config,
        index_kind=index.value,
    )  # fmt: skip
    store = Store(db)
    model, run_id = run_node2vec(edges, job, store=store, table=table, query=query, out=out)
    m = model.metrics
    typer.echo(
        f"embedded {m['nodes']:,} nodes ({m['graph_edges']:,} edges, {m['nodes_without_vector']:,} without a vector) "
        f"in {m['walk_seconds'] + m['train_seconds']:.1f}s; {m['walk_steps_per_s']:,} walk steps/s"
    )
    typer.echo(f"run {run_id} in {store.url}")
    typer.echo(f"model: {_artifact(store, run_id)}")


@app.command()
def similar(
    key: Annotated[str, typer.Argument(help="The item (or merchant, node) to find neighbours of.")],
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many neighbours.")] = 10,
    db: DbOption = None,
) -> None:
    """Print the nearest neighbours of KEY from the newest model that knows it."""
    model, found = latest_model(Store(db), key)
    for rank, (neighbour, score) in enumerate(model.similar(found, k), start=1):
        typer.echo(f"{rank:>4}  {neighbour}  {score:.4f}")


@app.command()
def runs(
    kind: Annotated[Optional[str], typer.Option(help="Only runs of this kind (item2vec, synthetic, ...).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs.")] = 20,
    db: DbOption = None,
) -> None:
    """List the runs recorded in the store, newest first."""
    frame = Store(db).runs(kind, limit=limit)
    for row in frame.iter_rows(named=True):
        started = row["started_at"].strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{started}  {row['status']:<9}  {row['kind']:<10}  {row['run_id']}  {row['metrics'] or ''}")


@app.command("train-recommender")
def train_recommender_command(
    source: Annotated[str, typer.Argument(help="CSV / Parquet file, or a SQLAlchemy URL with --table or --query.")],
    user: Annotated[str, typer.Option(help="Column of the user id.")],
    item: Annotated[str, typer.Option(help="Column of the item id.")],
    time_column: Annotated[
        Optional[str], typer.Option("--time", help="Column of the interaction time (default: file order).")
    ] = None,
    table: Annotated[Optional[str], typer.Option(help="Table to read when SOURCE is a URL.")] = None,
    query: Annotated[Optional[str], typer.Option(help="SQL query to read when SOURCE is a URL.")] = None,
    item_attributes: Annotated[
        Optional[Path],
        typer.Option(help="CSV / Parquet of item attributes: the --item column, then e.g. category, price."),
    ] = None,
    item_vectors: Annotated[
        Optional[Path], typer.Option(help="item2vec model directory whose vectors initialise the item embeddings.")
    ] = None,
    dim: Annotated[
        Optional[int],
        typer.Option(
            min=1, help=f"Item and session vector width (default: the item vectors', else {_RECSYS.encoder.dim})."
        ),
    ] = None,
    epochs: Annotated[
        Optional[int], typer.Option(min=1, help=f"Passes of the GRU encoder stage (default: {_RECSYS.fit.epochs}).")
    ] = None,
    tower_epochs: Annotated[
        Optional[int], typer.Option(min=1, help=f"Passes of the two-tower stage (default: {_RECSYS.tower_fit.epochs}).")
    ] = None,
    rerank: Annotated[bool, typer.Option(help="Train the NeuMF re-ranker.")] = True,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[
        Optional[Path], typer.Option(help="Model directory (default: $SEQEMB_HOME/models/recommender-<run id>).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Train the recommender (GRU session encoder, DSSM two-tower retrieval, NeuMF re-ranker) on interactions."""
    vectors = EmbeddingModel.load(item_vectors).embeddings if item_vectors is not None else None
    config = dataclasses.replace(_RECSYS, device=device, seed=seed)
    dim = dim or (vectors.dim if vectors is not None else None)
    config = dataclasses.replace(
        config,
        encoder=dataclasses.replace(config.encoder, dim=dim, hidden=dim) if dim else config.encoder,
        tower=dataclasses.replace(config.tower, dim=dim) if dim else config.tower,
        fit=dataclasses.replace(config.fit, epochs=epochs or config.fit.epochs),
        tower_fit=dataclasses.replace(config.tower_fit, epochs=tower_epochs or config.tower_fit.epochs),
        neumf=config.neumf if rerank else None,
    )
    job = RecommenderJob(
        schema=EventSchema(entity=user, item=item, timestamp=time_column),
        attributes=str(item_attributes) if item_attributes is not None else None,
        item_vectors=str(item_vectors) if item_vectors is not None else None,
        config=config,
    )
    store = Store(db)
    recommender, run_id, path = run_recommender(source, job, store=store, table=table, query=query, out=out)
    metrics = store.get_run(run_id)["metrics"]
    typer.echo(
        f"trained on {metrics['users']:,} users, {metrics['items']:,} items and "
        f"{metrics['interactions']:,} interactions in {metrics['train_seconds']:.1f}s"
    )
    typer.echo(f"run {run_id} in {store.url}")
    typer.echo(f"model: {path}")


@app.command()
def recommend(
    model: Annotated[
        Optional[Path],
        typer.Option(help="Recommender model directory (default: the newest `train-recommender` run's model)."),
    ] = None,
    user: Annotated[Optional[str], typer.Option(help="Print the top k for this user.")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Write the top k of many users to the store.")] = False,
    users: Annotated[
        Optional[Path], typer.Option(help="With --batch: text file of user ids, one a line (default: every user).")
    ] = None,
    resume: Annotated[
        Optional[str], typer.Option(help="With --batch: finish this run, skipping users it has written already.")
    ] = None,
    k: Annotated[
        Optional[int],
        typer.Option("--k", "-k", min=1, max=1000, help="Items per user (default: 10, or the resumed run's)."),
    ] = None,
    exclude_seen: Annotated[bool, typer.Option(help="Leave out items the user already has.")] = True,
    db: DbOption = None,
) -> None:
    """Recommend items: for one user (--user), or for every user into the store (--batch, resumable)."""
    if batch == (user is not None):
        raise ConfigError("give either --user ID (print one user's top k) or --batch (write every user's to the store)")
    if not batch and (users is not None or resume is not None):
        raise ConfigError("--users and --resume go with --batch")
    chosen = _read_ids(users) if users is not None else None
    store = Store(db)
    resumed = (store.get_run(resume)["config"] or {}) if resume is not None else {}
    path = _recommender_path(store, model or resumed.get("model_path"))
    recommender = Recommender.load(path)
    k = k or resumed.get("k") or 10
    if not batch:
        found = recommender.recommend(user, k=k, exclude_seen=exclude_seen)
        if found.fallback:
            typer.echo(f"user {user!r} is unknown to the model: {found.fallback} fallback", err=True)
        for rank, (neighbour, score) in enumerate(zip(found.items, found.scores), start=1):
            typer.echo(f"{rank:>4}  {neighbour}  {score:.4f}")
        return
    run_id = recommend_batch(
        store, recommender, chosen, k=k, exclude_seen=exclude_seen, run_id=resume, model_path=path.resolve()
    )
    m = store.get_run(run_id)["metrics"]
    typer.echo(f"wrote the top {k} of {m['users_this_pass']:,} users ({m['users']:,} in the run, {m['rows']:,} rows)")
    typer.echo(f"run {run_id} in {store.url}")


@app.command()
def serve(
    model: Annotated[
        Optional[Path],
        typer.Option(help="Recommender model directory (default: the newest `train-recommender` run's model)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    db: DbOption = None,
) -> None:
    """Serve a recommender over HTTP (FastAPI): /recommend, /recommend/session, /similar, /health, /docs."""
    import uvicorn

    from ui.service import create_app

    path = _recommender_path(Store(db) if model is None else None, model)
    service = create_app(path)
    typer.echo(f"serving {path} at http://{host}:{port} (API docs at /docs)")
    uvicorn.run(service, host=host, port=port)


_FRAUD_AE = AutoencoderConfig()


@app.command("train-fraud")
def train_fraud_command(
    source: Annotated[str, typer.Argument(help="CSV / Parquet file, or a SQLAlchemy URL with --table or --query.")],
    table: Annotated[Optional[str], typer.Option(help="Table to read when SOURCE is a URL.")] = None,
    query: Annotated[Optional[str], typer.Option(help="SQL query to read when SOURCE is a URL.")] = None,
    entity: Annotated[str, typer.Option(help="Column of the card or customer id.")] = "card_id",
    counterparty: Annotated[str, typer.Option(help="Column of the merchant or terminal id.")] = "merchant_id",
    amount: Annotated[str, typer.Option(help="Column of the amount.")] = "amount",
    time_column: Annotated[str, typer.Option("--time", help="Column of the transaction time.")] = "ts",
    label: Annotated[
        Optional[str], typer.Option(help="Column of known fraud labels 0/1 (only drops known frauds from training).")
    ] = None,
    transaction_id: Annotated[
        Optional[str], typer.Option(help="Column of the transaction id (default: the source row number).")
    ] = None,
    counterparty_vectors: Annotated[
        Optional[Path], typer.Option(help="item2vec / node2vec model directory of counterparty vectors.")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training windows.")] = _FRAUD_AE.epochs,
    window: Annotated[int, typer.Option(min=1, help="Steps per window.")] = _FRAUD_AE.window,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[
        Optional[Path], typer.Option(help="Model directory (default: $SEQEMB_HOME/models/fraud_model-<run id>).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Train the fraud model (GRU sequence autoencoder + calibration) on transactions."""
    job = FraudJob(
        schema=TransactionSchema(
            entity=entity, counterparty=counterparty, amount=amount, timestamp=time_column, label=label
        ),
        config=FraudModelConfig(
            autoencoder=dataclasses.replace(_FRAUD_AE, epochs=epochs, window=window, seed=seed, device=device),
            transaction_id=transaction_id,
        ),
        counterparty_vectors=str(counterparty_vectors) if counterparty_vectors is not None else None,
    )
    store = Store(db)
    model, run_id, path = run_train_fraud(source, job, store=store, table=table, query=query, out=out)
    m = model.metrics
    auc = f"; validation AUC {m['validation_auc']:.3f}" if "validation_auc" in m else ""
    typer.echo(
        f"trained on {m['train_transactions']:,} of {m['transactions']:,} transactions ({m['entities']:,} entities) "
        f"in {m['train_seconds']:.1f}s; calibrated on {m['validation_genuine']:,} genuine ones{auc}"
    )
    typer.echo(f"run {run_id} in {store.url}")
    typer.echo(f"model: {path}")


@app.command("score")
def score_command(
    source: Annotated[str, typer.Argument(help="CSV / Parquet file, or a SQLAlchemy URL with --table or --query.")],
    table: Annotated[Optional[str], typer.Option(help="Table to read when SOURCE is a URL.")] = None,
    query: Annotated[Optional[str], typer.Option(help="SQL query to read when SOURCE is a URL.")] = None,
    model: Annotated[
        Optional[Path], typer.Option(help="Fraud model directory (default: the newest `train-fraud` run's model).")
    ] = None,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            min=0.0, max=1.0, help="Alert at calibrated scores >= this (default: 0.99, or the resumed run's)."
        ),
    ] = None,
    resume: Annotated[Optional[str], typer.Option(help="Finish this run, skipping entities it has scored.")] = None,
    chunk_entities: Annotated[
        int, typer.Option(min=1, help="Entities (with all their transactions) per chunk.")
    ] = 2000,
    db: DbOption = None,
) -> None:
    """Score transactions with a fraud model into the store (fraud_scores, alerts); resumable."""
    store = Store(db)
    resumed = (store.get_run(resume)["config"] or {}) if resume is not None else {}
    path = _fraud_model_path(store, model or resumed.get("model_path"))
    fraud_model = FraudModel.load(path)
    threshold = threshold if threshold is not None else resumed.get("alert_threshold", 0.99)
    run_id = score_batch(
        store,
        fraud_model,
        source,
        table=table,
        query=query,
        chunk_entities=chunk_entities,
        alert_threshold=threshold,
        run_id=resume,
        model_path=path.resolve(),
    )
    m = store.get_run(run_id)["metrics"]
    typer.echo(
        f"scored {m['transactions']:,} transactions of {m['entities']:,} entities "
        f"({m['entities_this_pass']:,} this pass); {m['alerts']:,} alerts at score >= {threshold}"
    )
    typer.echo(f"run {run_id} in {store.url}")


def _fraud_model_path(store: Store, model: str | Path | None) -> Path:
    """``model``, else the model directory of the newest succeeded fraud model run in ``store``."""
    if model is not None:
        return Path(model)
    runs = store.runs(FRAUD_MODEL_KIND, status="succeeded", limit=None)
    for path in runs["artifact_path"].drop_nulls():
        if Path(path).is_dir():
            return Path(path)
    raise NotFoundError(f"no trained fraud model in {store.url}; train one with `seqemb train-fraud` or give --model")


def _recommender_path(store: Store | None, model: str | Path | None) -> Path:
    """``model``, else the model directory of the newest succeeded recommender run in ``store``."""
    if model is not None:
        return Path(model)
    runs = store.runs(RECOMMENDER_KIND, status="succeeded", limit=None)
    for path in runs["artifact_path"].drop_nulls():
        if Path(path).is_dir():
            return Path(path)
    raise NotFoundError(
        f"no trained recommender in {store.url}; train one with `seqemb train-recommender` or give --model"
    )


def _read_ids(path: Path) -> list[str]:
    """The ids in a text file, one a line (blank lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the id list ({first_line(exc)})") from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{path}: no ids in the file (one id a line)")
    return ids


def _artifact(store: Store, run_id: str) -> str:
    return store.get_run(run_id)["artifact_path"]


def main() -> None:
    """Entry point of the ``seqemb`` script: user errors become one line and exit status 2."""
    try:
        app()
    except SeqembError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)

"""The ``seqemb`` command line (typer): flags map onto the library's config dataclasses.

A user error (a bad file, column, flag or key) ends the command with one line on stderr
and exit status 2, no traceback.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from embeddings.data import EventSchema
from embeddings.errors import NotFoundError, SeqembError
from embeddings.item2vec import Item2VecJob, run_item2vec
from embeddings.model import latest_model
from embeddings.node2vec import Node2VecConfig, Node2VecJob, run_node2vec
from embeddings.sgns import SGNSConfig
from embeddings.store import Store

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


DbOption = Annotated[
    Optional[str],
    typer.Option("--db", help="SQLAlchemy URL of the store (default: $SEQEMB_DB_URL or $SEQEMB_HOME/seqemb.sqlite)"),
]
SourceArgument = Annotated[str, typer.Argument(help="CSV / Parquet file, or a SQLAlchemy URL with --table or --query.")]
TableOption = Annotated[Optional[str], typer.Option(help="Table to read when SOURCE is a URL.")]
QueryOption = Annotated[Optional[str], typer.Option(help="SQL query to read when SOURCE is a URL.")]


@app.command()
def demo(
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Do not open the dashboard at the end.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic world and of training.")] = 0,
    scale: Annotated[
        float, typer.Option(min=0.05, max=10.0, help="Size of the world relative to the default (1.0 = 2,000 users).")
    ] = 1.0,
    threads: Annotated[
        int,
        typer.Option(
            min=1, help="Torch threads. The demo's models are small: one thread is fast and never stalls on busy cores."
        ),
    ] = 1,
    db: DbOption = None,
) -> None:
    """Generate the synthetic world into the store and train every model on it."""
    import torch

    from ui.demo import run_demo

    # With more threads than free cores, torch's workers spin-wait on each other at every small
    # GRU step: measured with one other busy process on 2 cores, the demo took 4 min on 2 threads, 50 s on 1.
    torch.set_num_threads(threads)
    store = Store(db)
    typer.echo(f"store: {store.url}")
    result = run_demo(store, seed=seed, scale=scale, say=typer.echo)
    runs = (result.items_run, result.merchants_run, result.graph_run, result.recommender_run, result.fraud_run)
    for label, run_id in zip(("models:", "", "", "", ""), runs):
        typer.echo(f"{label:<8}{_artifact(store, run_id)}")
    typer.echo(f"try:    seqemb similar {result.world.items['item_id'][0]}")
    typer.echo(f"        seqemb similar {result.graph.embeddings.keys[0]}")
    typer.echo(f"        seqemb recommend --user {result.world.users['user_id'][0]}")
    if not no_ui:
        from ui.cli_ui import open_dashboard

        open_dashboard(store)


@app.command()
def item2vec(
    source: SourceArgument,
    entity: Annotated[str, typer.Option(help="Column of the user, card or session id.")],
    item: Annotated[str, typer.Option(help="Column of the item id.")],
    timestamp: Annotated[Optional[str], typer.Option(help="Column of the event time (default: file order).")] = None,
    table: TableOption = None,
    query: QueryOption = None,
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
    edges: Annotated[
        str, typer.Option(help="Edge table: CSV / Parquet file, or a SQLAlchemy URL with --table or --query.")
    ],
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


def newest_model(store: Store, model: str | Path | None, kind: str, train_command: str) -> Path:
    """``model``, else the model directory of the newest succeeded ``kind`` run in ``store``."""
    if model is not None:
        return Path(model)
    for path in store.runs(kind, status="succeeded", limit=None)["artifact_path"].drop_nulls():
        if Path(path).is_dir():
            return Path(path)
    noun = kind.replace("_", " ")
    raise NotFoundError(f"no trained {noun} in {store.url}; train one with `{train_command}` or give --model")


def _artifact(store: Store, run_id: str) -> str:
    return store.get_run(run_id)["artifact_path"]


def main() -> None:
    """Entry point of the ``seqemb`` script: user errors become one line and exit status 2."""
    try:
        app()
    except SeqembError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


# The product commands live in their own modules; importing them registers them on `app`.
from ui import cli_fraud, cli_recsys, cli_ui  # noqa: E402, F401

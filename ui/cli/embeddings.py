"""``seqemb item2vec``, ``seqemb node2vec`` and ``seqemb similar``: train embeddings, ask for neighbours.

Flag defaults are read from :class:`~embeddings.sgns_config.Item2VecJob`,
:class:`~embeddings.sgns_config.SGNSConfig` and :class:`~embeddings.graph.config.Node2VecConfig`;
the trainers load when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from embeddings.graph.config import NODE2VEC_KIND, Node2VecConfig, Node2VecJob
from embeddings.sgns_config import ITEM2VEC_KIND, Item2VecJob, SGNSConfig
from ui.cli.options import (
    DbOption,
    DeviceOption,
    IndexKind,
    IntegerIdsOption,
    Mode,
    QueryOption,
    SeedOption,
    SourceArgument,
    TableOption,
    WorkersOption,
    out_option,
)

_ITEM2VEC = Item2VecJob()
_SGNS = SGNSConfig()
_NODE2VEC = Node2VecConfig()


def item2vec(
    source: SourceArgument,
    entity: Annotated[str, typer.Option(help="Column of the user, card or session id.")],
    item: Annotated[str, typer.Option(help="Column of the item id.")],
    timestamp: Annotated[
        Optional[str], typer.Option("--time", "--timestamp", help="Column of the event time (default: file order).")
    ] = None,
    table: TableOption = None,
    query: QueryOption = None,
    integer_ids: IntegerIdsOption = False,
    session_gap: Annotated[
        Optional[float], typer.Option(help="Minutes of inactivity that start a new session (default: none).")
    ] = _ITEM2VEC.session_gap_minutes,
    min_count: Annotated[
        int, typer.Option(min=1, help="Drop items seen fewer times (counted in the report).")
    ] = _ITEM2VEC.min_count,
    min_length: Annotated[int, typer.Option(min=2, help="Drop sequences shorter than this.")] = _ITEM2VEC.min_length,
    mode: Annotated[Mode, typer.Option(help="Skip-gram or CBOW.")] = Mode[_SGNS.mode],
    dim: Annotated[int, typer.Option(min=1, help="Vector dimension.")] = _SGNS.dim,
    window: Annotated[int, typer.Option(min=1, help="Largest context window.")] = _SGNS.window,
    negative: Annotated[int, typer.Option(min=1, help="Negative samples per positive.")] = _SGNS.negative,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the data.")] = _SGNS.epochs,
    sample: Annotated[
        float, typer.Option(min=0.0, help="Subsampling threshold of frequent items (0 = off).")
    ] = _SGNS.sample,
    seed: SeedOption = _SGNS.seed,
    workers: WorkersOption = _SGNS.workers,
    device: DeviceOption = _SGNS.device,
    index: Annotated[IndexKind, typer.Option(help="Nearest-neighbour index to build.")] = IndexKind[
        _ITEM2VEC.index_kind
    ],
    out: Annotated[Optional[Path], out_option(ITEM2VEC_KIND)] = None,
    db: DbOption = None,
) -> None:
    """Train item2vec (word2vec over item sequences) on an event table."""
    from embeddings.data import EventSchema

    job = Item2VecJob(
        schema=EventSchema(entity=entity, item=item, timestamp=timestamp, integer_ids=integer_ids),
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
    from embeddings.jobs import run_item2vec  # the trainers load once the flags are known to be good
    from embeddings.store import Store

    store = Store(db)
    result = run_item2vec(source, job, store=store, table=table, query=query, out=out)
    m = result.metrics
    typer.echo(f"trained {m['keys']:,} items on {m['tokens']:,} tokens in {m['train_seconds']:.1f}s")
    typer.echo(f"dropped: {m['rows_dropped']}")
    typer.echo(f"run {result.run_id} in {store.url}")
    typer.echo(f"model: {result.path}")


def node2vec(
    edges: Annotated[
        str, typer.Option(help="Edge table: CSV / Parquet file, or a SQLAlchemy URL with --table or --query.")
    ],
    src: Annotated[str, typer.Option(help="Column of an edge's source node.")] = Node2VecJob.src,
    dst: Annotated[str, typer.Option(help="Column of an edge's target node.")] = Node2VecJob.dst,
    weight: Annotated[Optional[str], typer.Option(help="Column of edge weights (default: unweighted).")] = None,
    directed: Annotated[bool, typer.Option(help="Treat edges as directed.")] = Node2VecJob.directed,
    transactions: Annotated[
        bool,
        typer.Option(help="EDGES is a transaction table: embed its card-merchant graph (--src card, --dst merchant)."),
    ] = Node2VecJob.transactions,
    table: Annotated[Optional[str], typer.Option(help="Table to read when EDGES is a URL.")] = None,
    query: Annotated[Optional[str], typer.Option(help="SQL query to read when EDGES is a URL.")] = None,
    p: Annotated[
        float, typer.Option("--return-p", "-p", help="Return parameter, > 0 (low = stay local).")
    ] = _NODE2VEC.p,
    q: Annotated[
        float, typer.Option("--inout-q", "-q", help="In-out parameter, > 0 (low = explore outward).")
    ] = _NODE2VEC.q,
    dim: Annotated[int, typer.Option(min=1, help="Vector dimension.")] = _NODE2VEC.sgns.dim,
    walk_length: Annotated[int, typer.Option(min=2, help="Nodes per walk.")] = _NODE2VEC.walk_length,
    walks_per_node: Annotated[int, typer.Option(min=1, help="Walks started at each node.")] = _NODE2VEC.walks_per_node,
    window: Annotated[int, typer.Option(min=1, help="Largest context window.")] = _NODE2VEC.sgns.window,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the walks.")] = _NODE2VEC.sgns.epochs,
    seed: SeedOption = _NODE2VEC.sgns.seed,
    workers: WorkersOption = _NODE2VEC.sgns.workers,
    index: Annotated[IndexKind, typer.Option(help="Nearest-neighbour index to build.")] = IndexKind[
        Node2VecJob.index_kind
    ],
    out: Annotated[Optional[Path], out_option(NODE2VEC_KIND)] = None,
    db: DbOption = None,
) -> None:
    """Embed the nodes of a graph with node2vec (biased random walks + skip-gram)."""
    import dataclasses

    from embeddings.jobs import run_node2vec
    from embeddings.store import Store

    sgns = dataclasses.replace(_NODE2VEC.sgns, dim=dim, window=window, epochs=epochs, seed=seed, workers=workers)
    config = Node2VecConfig(walk_length=walk_length, walks_per_node=walks_per_node, p=p, q=q, sgns=sgns)
    job = Node2VecJob(
        src=src, dst=dst, weight=weight, directed=directed, transactions=transactions, config=config,
        index_kind=index.value,
    )  # fmt: skip
    store = Store(db)
    result = run_node2vec(edges, job, store=store, table=table, query=query, out=out)
    m = result.metrics
    typer.echo(
        f"embedded {m['nodes']:,} nodes ({m['graph_edges']:,} edges, {m['nodes_without_vector']:,} without a vector) "
        f"in {m['walk_seconds'] + m['train_seconds']:.1f}s; {m['walk_steps_per_s']:,} walk steps/s"
    )
    typer.echo(f"run {result.run_id} in {store.url}")
    typer.echo(f"model: {result.path}")


def similar(
    key: Annotated[str, typer.Argument(help="The item (or merchant, node) to find neighbours of.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="How many neighbours.")] = 10,
    db: DbOption = None,
) -> None:
    """Print the nearest neighbours of KEY from the newest model that knows it."""
    from embeddings.model import latest_model
    from embeddings.store import Store

    model, found = latest_model(Store(db), key)
    for rank, (neighbour, score) in enumerate(model.similar(found, k), start=1):
        typer.echo(f"{rank:>4}  {neighbour}  {score:.4f}")

"""The embedding jobs behind ``seqemb item2vec`` and ``seqemb node2vec`` (and the demo).

Each job reads its source, trains, builds the nearest-neighbour index, saves the model
directory and records the run in the :class:`~embeddings.store.Store`: config, metrics
(what was read and dropped, training time and throughput), the artifact path, and the
vectors themselves in the store's ``vectors`` table. A failure marks the run failed and
leaves no model directory behind. Each returns a :class:`~embeddings.store.runs.JobResult`
holding the :class:`~embeddings.model.EmbeddingModel`.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import timedelta

import numpy as np
import polars as pl

from embeddings.data import build_sequences
from embeddings.errors import DataError
from embeddings.event_stream import read_event_table
from embeddings.files import check_output_dir
from embeddings.graph.config import NODE2VEC_KIND, Node2VecJob
from embeddings.graph.graph import Graph
from embeddings.graph.node2vec import node2vec_with_stats
from embeddings.graph.transactions import transaction_graph
from embeddings.index import VectorIndex
from embeddings.model import EmbeddingModel
from embeddings.sgns import item2vec
from embeddings.sgns_config import ITEM2VEC_KIND, Item2VecJob
from embeddings.sources import Source
from embeddings.store import RunHandle, Store
from embeddings.store.runs import JobResult
from embeddings.vectors import Embeddings


def run_item2vec(
    source: Source,
    job: Item2VecJob,
    *,
    store: Store,
    table: str | None = None,
    query: str | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> JobResult[EmbeddingModel]:
    """Read events, train item2vec, index, save the model and record the run.

    The model goes to ``out`` (default ``$SEQEMB_HOME/models/item2vec-<run id>``).
    """
    gap = None if job.session_gap_minutes is None else timedelta(minutes=job.session_gap_minutes)
    check_output_dir(out)
    with store.run(ITEM2VEC_KIND, asdict(job)) as run:
        events = read_event_table(source, job.schema, table=table, query=query)
        read_report = events.report
        built = events.keyed(
            build_sequences(events.events, min_count=job.min_count, session_gap=gap, min_length=job.min_length)
        )
        if built.report.tokens == 0:
            raise DataError(f"{read_report.source}: no sequence is left to train on ({built.report})")
        embeddings, result = item2vec(built.sequences, built.vocab, job.sgns, progress=progress)
        index = VectorIndex.from_embeddings(embeddings, kind=job.index_kind)
        metrics = {
            "events": read_report.rows,
            "sequences": built.report.sequences,
            "tokens": built.report.tokens,
            "keys": len(embeddings),
            "rows_dropped": built.report.rows_dropped,
            "train_seconds": round(result.seconds, 3),
            "items_per_s": round(result.items_per_s),
            "final_loss": result.epoch_loss[-1] if result.epoch_loss else None,
            "backend": result.backend,
        }
        model = EmbeddingModel(ITEM2VEC_KIND, embeddings, index, asdict(job), metrics, built.vocab)
        return _saved(store, run, model, out)


def run_node2vec(
    source: Source,
    job: Node2VecJob,
    *,
    store: Store,
    table: str | None = None,
    query: str | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> JobResult[EmbeddingModel]:
    """Read an edge table (or a transaction table), embed its nodes, index and save them, and record the run.

    The model goes to ``out`` (default ``$SEQEMB_HOME/models/node2vec-<run id>``); the run's
    metrics hold the graph report (what was merged and dropped) and the walk and training statistics.
    """
    check_output_dir(out)
    with store.run(NODE2VEC_KIND, asdict(job)) as run:
        if job.transactions:
            graph = transaction_graph(
                source, card=job.src, merchant=job.dst, weight=job.weight, table=table, query=query
            )
            graph_metrics = {"graph_nodes": graph.n_nodes, "graph_edges": graph.n_edges}
        else:
            graph, report = Graph.from_edges(
                source, src=job.src, dst=job.dst, weight=job.weight, directed=job.directed, table=table, query=query
            )
            graph_metrics = {f"graph_{name}": value for name, value in asdict(report).items() if name != "source"}
        result = node2vec_with_stats(graph, job.config, progress=progress)
        index = VectorIndex.from_embeddings(result.embeddings, kind=job.index_kind)
        model = EmbeddingModel(
            NODE2VEC_KIND, result.embeddings, index, asdict(job), {**graph_metrics, **result.metrics()}
        )
        return _saved(store, run, model, out)


def _saved(store: Store, run: RunHandle, model: EmbeddingModel, out: str | os.PathLike | None) -> JobResult:
    """Save ``model`` as ``run``'s artifact and record its metrics and its vectors in the store."""
    path = run.save_model(model, out)
    store.write("vectors", vectors_frame(run.id, model.embeddings))
    run.log_metrics(model.metrics)
    return JobResult(run.id, model.metrics, model, path)


def vectors_frame(run_id: str, embeddings: Embeddings) -> pl.DataFrame:
    """The store's ``vectors`` rows for a run: one (run_id, key, float32 bytes) row per key."""
    matrix = np.ascontiguousarray(embeddings.vectors, dtype="<f4")
    blobs = pl.Series("vector", matrix.view(f"V{matrix.shape[1] * 4}").ravel().tolist(), dtype=pl.Binary)
    return pl.DataFrame(
        {"run_id": run_id, "key": pl.Series([str(k) for k in embeddings.keys], dtype=pl.String), "vector": blobs}
    )

"""item2vec: word2vec over item sequences, saved as a model directory and recorded in the store.

:func:`item2vec` trains skip-gram or CBOW with negative sampling (:mod:`embeddings.sgns`)
on vocabulary-encoded sequences and returns the items' input vectors as
:class:`Embeddings`. :class:`Item2VecModel` bundles those vectors with the vocabulary
(counts, so callers get popularity too), a :class:`VectorIndex` and the config, and saves
them as one directory::

    model.json            {"kind": "item2vec", "config": {...}, "metrics": {...}}
    embeddings/           Embeddings.save
    vocabulary.parquet    Vocabulary.save
    index/                VectorIndex.save

:func:`run_item2vec` is the batch job behind ``seqemb item2vec`` and the demo: read events,
build sequences, train, index, save, and record the run (config, metrics, artifact path and
the vectors themselves) in the :class:`Store`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from embeddings.files import atomic_directory, read_json
from embeddings.data import EventSchema, build_sequences, read_events
from embeddings.errors import DataError, NotFoundError
from embeddings.index import VectorIndex
from embeddings.sequences import Sequences
from embeddings.settings import models_dir
from embeddings.sgns import SGNSConfig, SGNSResult, train_sgns
from embeddings.sources import Source
from embeddings.store import Store
from embeddings.vectors import Embeddings
from embeddings.vocab import Vocabulary

MODEL_KIND = "item2vec"


def item2vec(
    sequences: Sequences, vocab: Vocabulary, config: SGNSConfig | None = None, *, progress: bool = True
) -> tuple[Embeddings, SGNSResult]:
    """Train SGNS on ``sequences`` (tokens index ``vocab``) and return the items' vectors.

    The embeddings hold one float32 row of ``config.dim`` per real vocabulary key (the
    reserved padding index 0 is left out); the result carries the loss and throughput.
    """
    result = train_sgns(sequences, vocab.counts, config or SGNSConfig(), progress=progress)
    keys = vocab.decode(np.arange(1, len(vocab)))
    return Embeddings(keys, result.input_vectors[1:]), result


@dataclass
class Item2VecJob:
    """What ``seqemb item2vec`` does: which columns to read, how to cut sessions, how to train."""

    schema: EventSchema = field(default_factory=EventSchema)
    session_gap_minutes: float | None = None
    min_count: int = 1
    min_length: int = 2
    sgns: SGNSConfig = field(default_factory=SGNSConfig)
    index_kind: str = "hnsw"
    name: str = "items"


@dataclass
class Item2VecModel:
    """Trained item vectors with their vocabulary, nearest-neighbour index and config."""

    embeddings: Embeddings
    vocab: Vocabulary
    index: VectorIndex
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)

    def similar(self, key: Any, k: int = 10) -> list[tuple[Any, float]]:
        """The ``k`` nearest keys to ``key`` by the index's metric, ``key`` itself left out."""
        keys, scores = self.index.search_keys([key], k)
        return [(found, float(score)) for found, score in zip(keys[0], scores[0]) if found is not None]

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model as one directory, all or nothing; returns its path."""
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            self.embeddings.save(tmp / "embeddings")
            self.vocab.save(tmp)
            self.index.save(tmp / "index")
            meta = {"kind": MODEL_KIND, "config": self.config, "metrics": self.metrics}
            (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Item2VecModel:
        """Load a directory written by :meth:`save`."""
        directory = Path(directory)
        meta_path = directory / "model.json"
        if not meta_path.is_file():
            raise NotFoundError(f"{directory}: not an item2vec model directory (no model.json)")
        meta = read_json(meta_path, dict)
        if meta.get("kind") != MODEL_KIND:
            raise DataError(f"{meta_path}: kind is {meta.get('kind')!r}, expected {MODEL_KIND!r}")
        return cls(
            embeddings=Embeddings.load(directory / "embeddings"),
            vocab=Vocabulary.load(directory),
            index=VectorIndex.load(directory / "index"),
            config=meta["config"],
            metrics=meta["metrics"],
        )


def vectors_frame(run_id: str, embeddings: Embeddings) -> pl.DataFrame:
    """The store's ``vectors`` rows for a run: one (run_id, key, float32 bytes) row per key."""
    matrix = np.ascontiguousarray(embeddings.vectors, dtype="<f4")
    blobs = pl.Series("vector", matrix.view(f"V{matrix.shape[1] * 4}").ravel().tolist(), dtype=pl.Binary)
    return pl.DataFrame(
        {"run_id": run_id, "key": pl.Series([str(k) for k in embeddings.keys], dtype=pl.String), "vector": blobs}
    )


def run_item2vec(
    source: Source,
    job: Item2VecJob,
    *,
    store: Store,
    table: str | None = None,
    query: str | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[Item2VecModel, str]:
    """Read events, train item2vec, index, save the model and record the run; returns (model, run id).

    The model goes to ``out`` (default ``$SEQEMB_HOME/models/item2vec-<run id>``). The run's
    metrics count what was read and dropped, the training time and throughput; its vectors
    are written to the store's ``vectors`` table. A failure marks the run failed and leaves
    no model directory behind.
    """
    gap = None if job.session_gap_minutes is None else timedelta(minutes=job.session_gap_minutes)
    with store.run(MODEL_KIND, _json_config(job)) as run:
        events, read_report = read_events(source, job.schema, table=table, query=query)
        built = build_sequences(events, min_count=job.min_count, session_gap=gap, min_length=job.min_length)
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
        model = Item2VecModel(embeddings, built.vocab, index, _json_config(job), metrics)
        path = model.save(out if out is not None else models_dir() / f"{MODEL_KIND}-{run.id}")
        store.write("vectors", vectors_frame(run.id, embeddings))
        run.log_metrics(metrics)
        run.artifact_path = str(path)
    return model, run.id


def latest_model(store: Store, key: str | None = None) -> tuple[Item2VecModel, Any]:
    """The newest succeeded item2vec model in ``store`` that knows ``key`` (any, if None).

    ``key`` comes as text (from a command line or a URL); it matches an integer key of the
    same decimal value too. Returns the model and the key as the model spells it.
    """
    runs = store.runs(MODEL_KIND, status="succeeded", limit=None)
    candidates = [key] if key is None or not key.lstrip("-").isdigit() else [key, int(key)]
    for path in runs["artifact_path"].drop_nulls():
        if not Path(path).is_dir():
            continue
        model = Item2VecModel.load(path)
        for candidate in candidates:
            if candidate is None or candidate in model.embeddings:
                return model, candidate
    if key is None:
        raise NotFoundError(f"no item2vec model in {store.url}; train one with `seqemb item2vec` or `seqemb demo`")
    raise NotFoundError(f"no item2vec model in {store.url} knows {key!r}")


def _json_config(job: Item2VecJob) -> dict[str, Any]:
    return asdict(job)

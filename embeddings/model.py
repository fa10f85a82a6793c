"""A trained embedding model as one directory: vectors, their index, and what made them.

item2vec and node2vec models share this layout::

    model.json            {"kind": "item2vec" | "node2vec", "config": {...}, "metrics": {...}}
    embeddings/           Embeddings.save
    index/                VectorIndex.save
    vocabulary.parquet    Vocabulary.save (item2vec: counts give popularity)

The directory is written all or nothing and loads in one call. :func:`save_run_model`
records a model for a run of the store (its directory, metrics and vectors);
:func:`latest_model` finds the newest recorded model that knows a key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from embeddings.errors import DataError, NotFoundError
from embeddings.files import atomic_directory, read_json
from embeddings.index import VectorIndex
from embeddings.settings import models_dir
from embeddings.store import Store
from embeddings.store_runs import RunHandle
from embeddings.vectors import Embeddings
from embeddings.vocab import Vocabulary

MODEL_KINDS = ("item2vec", "node2vec")


@dataclass
class EmbeddingModel:
    """Trained vectors with their nearest-neighbour index, config, metrics and (optional) vocabulary."""

    kind: str
    embeddings: Embeddings
    index: VectorIndex
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    vocab: Vocabulary | None = None

    def similar(self, key: Any, k: int = 10) -> list[tuple[Any, float]]:
        """The ``k`` nearest keys to ``key`` by the index's metric, ``key`` itself left out."""
        keys, scores = self.index.search_keys([key], k)
        return [(found, float(score)) for found, score in zip(keys[0], scores[0]) if found is not None]

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the model as one directory, all or nothing; returns its path."""
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            self.embeddings.save(tmp / "embeddings")
            self.index.save(tmp / "index")
            if self.vocab is not None:
                self.vocab.save(tmp)
            meta = {"kind": self.kind, "config": self.config, "metrics": self.metrics}
            (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, kind: str | None = None) -> EmbeddingModel:
        """Load a directory written by :meth:`save`; ``kind`` checks which model it must be."""
        directory = Path(directory)
        meta_path = directory / "model.json"
        if not meta_path.is_file():
            raise NotFoundError(f"{directory}: not a model directory (no model.json)")
        meta = read_json(meta_path, dict)
        if meta.get("kind") not in (MODEL_KINDS if kind is None else (kind,)):
            expected = " or ".join(repr(k) for k in (MODEL_KINDS if kind is None else (kind,)))
            raise DataError(f"{meta_path}: kind is {meta.get('kind')!r}, expected {expected}")
        has_vocab = (directory / "vocabulary.parquet").is_file()
        return cls(
            kind=meta["kind"],
            embeddings=Embeddings.load(directory / "embeddings"),
            index=VectorIndex.load(directory / "index"),
            config=meta.get("config", {}),
            metrics=meta.get("metrics", {}),
            vocab=Vocabulary.load(directory) if has_vocab else None,
        )


def latest_model(store: Store, key: str | None = None) -> tuple[EmbeddingModel, Any]:
    """The newest succeeded item2vec or node2vec model in ``store`` that knows ``key`` (any, if None).

    ``key`` comes as text (from a command line or a URL); it matches an integer key of the
    same decimal value too. Returns the model and the key as the model spells it.
    """
    runs = store.runs(status="succeeded", limit=None).filter(pl.col("kind").is_in(MODEL_KINDS))
    candidates = [key] if key is None or not key.lstrip("-").isdigit() else [key, int(key)]
    for path in runs["artifact_path"].drop_nulls():
        if not Path(path).is_dir():
            continue
        model = EmbeddingModel.load(path)
        for candidate in candidates:
            if candidate is None or candidate in model.embeddings:
                return model, candidate
    if key is None:
        raise NotFoundError(f"no trained model in {store.url}; train one with `seqemb item2vec` or `seqemb demo`")
    raise NotFoundError(f"no model in {store.url} knows {key!r}")


def vectors_frame(run_id: str, embeddings: Embeddings) -> pl.DataFrame:
    """The store's ``vectors`` rows for a run: one (run_id, key, float32 bytes) row per key."""
    matrix = np.ascontiguousarray(embeddings.vectors, dtype="<f4")
    blobs = pl.Series("vector", matrix.view(f"V{matrix.shape[1] * 4}").ravel().tolist(), dtype=pl.Binary)
    return pl.DataFrame(
        {"run_id": run_id, "key": pl.Series([str(k) for k in embeddings.keys], dtype=pl.String), "vector": blobs}
    )


def save_run_model(store: Store, run: RunHandle, model: EmbeddingModel, out: str | os.PathLike | None) -> Path:
    """Save ``model`` for ``run`` and record it: directory, metrics, and its vectors in the store.

    The directory is ``out`` or ``$SEQEMB_HOME/models/<kind>-<run id>``.
    """
    path = model.save(out if out is not None else models_dir() / f"{model.kind}-{run.id}")
    store.write("vectors", vectors_frame(run.id, model.embeddings))
    run.log_metrics(model.metrics)
    run.artifact_path = str(path)
    return path

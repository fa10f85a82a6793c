"""A trained embedding model as one directory: vectors, their index, and what made them.

item2vec and node2vec models share this layout::

    model.json            {"format": "seqemb.embedding_model/1", "kind": "item2vec" | "node2vec", "config", "metrics"}
    embeddings/           Embeddings.save
    index/                VectorIndex.save
    vocabulary.parquet    Vocabulary.save (item2vec: counts give popularity)

The directory is written all or nothing and loads in one call. :func:`latest_model` finds the
newest recorded model that knows a key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embeddings.errors import DataError, NotFoundError
from embeddings.files import atomic_directory, format_tag, read_manifest
from embeddings.graph.config import NODE2VEC_KIND
from embeddings.index import VectorIndex
from embeddings.sgns_config import ITEM2VEC_KIND
from embeddings.store.runs import RunRecords
from embeddings.vectors import Embeddings
from embeddings.vocab import Vocabulary

MODEL_KINDS = (ITEM2VEC_KIND, NODE2VEC_KIND)
FORMAT = format_tag("embedding_model", 1)


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
            meta = {"format": FORMAT, "kind": self.kind, "config": self.config, "metrics": self.metrics}
            (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, kind: str | None = None) -> EmbeddingModel:
        """Load a directory written by :meth:`save`; ``kind`` checks which model it must be."""
        directory = Path(directory)
        meta_path = directory / "model.json"
        meta = read_manifest(directory, "model.json", FORMAT, "an embedding model")
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


def latest_model(store: RunRecords, key: str | None = None) -> tuple[EmbeddingModel, Any]:
    """The newest succeeded item2vec or node2vec model in ``store`` that knows ``key`` (any, if None).

    ``key`` comes as text (from a command line or a URL) and is read as each model spells its
    keys (:meth:`Embeddings.key_of`). Returns the model and the key as the model spells it.
    """
    for run in store.model_runs(MODEL_KINDS):
        model = EmbeddingModel.load(run["artifact_path"])
        found = None if key is None else model.embeddings.key_of(key)
        if key is None or found in model.embeddings:
            return model, found
    if key is None:
        raise NotFoundError(f"no trained model in {store.url}; train one with `seqemb item2vec` or `seqemb demo`")
    raise NotFoundError(f"no model in {store.url} knows {key!r}")

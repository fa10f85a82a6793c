"""The saved models the dashboard reads, each loaded once per directory and kept for the server's life.

Which model to use is looked up in the store's runs on each request (a cheap query), so a model
trained while the dashboard runs is picked up; loading a directory happens once (thread-safe).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from threading import Lock
from typing import Any, TypeVar

from embeddings.errors import NotFoundError
from embeddings.model import MODEL_KINDS, EmbeddingModel
from embeddings.store import Store
from fraud.model import FraudModel
from recsys.config import RECOMMENDER_KIND
from recsys.recommender import Recommender

T = TypeVar("T")


class Models:
    """Lazily loaded, cached models of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = Lock()
        self._loaded: dict[tuple[str, str], Any] = {}

    def _load(self, kind: str, path: str | Path, loader: Callable[[Path], T]) -> T:
        key = (kind, str(path))
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = loader(Path(path))
            return self._loaded[key]

    def recommender(self) -> Recommender:
        """The newest trained recommender (NotFoundError when there is none)."""
        path = self.store.newest_model_run(RECOMMENDER_KIND, "seqemb demo")["artifact_path"]
        return self._load(RECOMMENDER_KIND, path, Recommender.load)

    def fraud(self, score_run_id: str) -> tuple[FraudModel, str]:
        """The fraud model a ``score`` run used, and its directory."""
        config = self.store.get_run(score_run_id)["config"] or {}  # decoded JSON
        path = config.get("model_path")
        if not path or not Path(path).is_dir():
            raise NotFoundError(f"the model of score run {score_run_id} is not on disk ({path})")
        return self._load("fraud", path, FraudModel.load), str(path)

    def embedding_runs(self) -> list[tuple[str, str]]:
        """Succeeded item2vec / node2vec runs whose directory exists, newest first, as
        ``(label, path)`` choices; the label names the kind, what it was trained on and when."""
        choices = []
        for row in self.store.model_runs(MODEL_KINDS):
            path = row["artifact_path"]
            config = row["config"] or {}
            job = config.get("name") or config.get("table") or ("graph" if row["kind"] == "node2vec" else "")
            label = f"{row['kind']} · {job} · {row['started_at']:%Y-%m-%d %H:%M} · {row['run_id'][:8]}"
            choices.append((label.replace(" ·  ·", " ·"), path))
        return choices

    def embedding(self, path: str) -> EmbeddingModel:
        return self._load("embedding", path, EmbeddingModel.load)

    def embedding_knowing(self, key: str, kind: str | None = None) -> EmbeddingModel:
        """The newest embedding model (of ``kind``, if given) whose keys include ``key``."""
        for _, path in self.embedding_runs():
            model = self.embedding(path)
            if (kind is None or model.kind == kind) and key in model.embeddings:
                return model
        raise NotFoundError(f"no trained {kind or 'embedding'} model in {self.store.url} knows {key!r}")

"""The Recommender: what a service or notebook imports to get recommendations.

Pipeline for a user (their training history) or an anonymous session (given item ids):

    history --GRU session tower--> u --VectorIndex (item-tower vectors)--> top-N candidates
            --NeuMF re-rank (when trained)--> top-k, seen items excluded

Unknown users fall back to popularity; unknown item ids in a session are skipped and
reported. A recommender is one directory (:meth:`Recommender.save` / :meth:`Recommender.load`);
weights load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from embeddings.device import resolve_device
from embeddings.errors import NotFoundError
from embeddings.files import atomic_directory, format_tag, read_manifest
from embeddings.index import VectorIndex
from embeddings.keys import as_key
from embeddings.sequences import Sequences
from embeddings.vocab import Vocabulary
from recsys.attributes import ItemAttributes
from recsys.config import EncoderConfig, NeuMFConfig, TowerConfig, check_k
from recsys.encoder import GRUSessionEncoder
from recsys.neumf import NeuMF, rerank
from recsys.padding import pad_rows
from recsys.two_tower import TwoTower

FORMAT = format_tag("recommender", 1)


@dataclass
class Recommendations:
    """Ranked ``items`` with their ``scores``; ``fallback`` says why the model was not used."""

    items: list = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    fallback: str | None = None
    unknown: list = field(default_factory=list)


@dataclass
class Recommender:
    """A trained two-tower retriever (+ optional NeuMF re-ranker) with its catalogue and users.

    ``catalogue``: item keys by catalogue row (row 0 = PAD, rows ``1..n_tokens-1`` = items seen in
    training, later rows = cold-start items known from attributes only); ``users`` and
    ``histories``: each known user's training items (catalogue rows, time order).
    """

    model: TwoTower
    neumf: NeuMF | None
    catalogue: pl.Series
    users: pl.Series
    histories: Sequences
    popularity: np.ndarray
    index: VectorIndex
    attributes: ItemAttributes | None = None
    candidates: int = 100
    max_history: int = 50
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model.eval()
        if self.neumf is not None:
            self.neumf.eval()
        self._items = Vocabulary(self.catalogue[1:])
        self._users = Vocabulary(self.users)
        self._by_popularity = np.argsort(-self.popularity[: self.model.n_tokens], kind="stable")
        self._catalogue_text = self.catalogue.cast(pl.String)  # row 0 (PAD) is null

    # -- what callers use -------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self.catalogue) - 1

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def item_ids(self) -> list:
        return self.catalogue[1:].to_list()

    @property
    def user_ids(self) -> list:
        return self.users.to_list()

    def recommend(self, user_id: Any, k: int = 10, exclude_seen: bool = True) -> Recommendations:
        """Top-``k`` items for a known user; popularity for an unknown one."""
        check_k(k)
        row = self._user_row(user_id)
        history = self.histories.select(np.array([row])) if row >= 0 else Sequences.from_lists([[]])
        return self._recommendations(history, k, exclude_seen, None if row >= 0 else "popularity")

    def recommend_users(self, user_ids: Sequence[Any], k: int = 10, exclude_seen: bool = True) -> pl.DataFrame:
        """Top-``k`` for many users: ``[user_id, rank (1..k), item_id, score]`` (ids as text)."""
        check_k(k)
        rows = np.array([self._user_row(u) for u in user_ids], dtype=np.int64)
        histories = self.histories.select(np.maximum(rows, 0))
        histories = Sequences.from_lengths(np.where(rows >= 0, histories.lengths, 0), _known_tokens(histories, rows))
        items, scores = self._rank(histories, k, exclude_seen)
        n = len(user_ids)
        return pl.DataFrame(
            {
                "user_id": np.repeat(np.array([str(u) for u in user_ids], dtype=object), k),
                "rank": np.tile(np.arange(1, k + 1), n),
                "item_id": self._catalogue_text.gather(items.ravel()),
                "score": scores.ravel(),
            }
        ).drop_nulls("item_id")

    def recommend_session(self, item_ids: Sequence[Any], k: int = 10, exclude_seen: bool = True) -> Recommendations:
        """Top-``k`` for an anonymous session of ``item_ids`` (oldest first); unknown ids skipped."""
        check_k(k)
        rows = [self._item_row(i) for i in item_ids]
        unknown = [i for i, r in zip(item_ids, rows) if r < 0]
        # Cold-start items have no id embedding for the GRU input; they are skipped like unknown ones.
        known = [r for r in rows if 0 < r < self.model.n_tokens]
        return self._recommendations(
            Sequences.from_lists([known]), k, exclude_seen, None if known else "popularity", unknown
        )

    def _recommendations(
        self, history: Sequences, k: int, exclude_seen: bool, fallback: str | None, unknown: list | None = None
    ) -> Recommendations:
        items, scores = self._rank(history, k, exclude_seen)
        keep = items[0] > 0
        keys = [self.catalogue[int(r)] for r in items[0][keep]]
        return Recommendations(keys, scores[0][keep].tolist(), fallback, unknown or [])

    def similar_items(self, item_id: Any, k: int = 10) -> Recommendations:
        """The ``k`` items whose item-tower vectors are closest (cosine) to ``item_id``'s."""
        check_k(k)
        row = self._item_row(item_id)
        if row < 0:
            raise NotFoundError(f"unknown item {item_id!r}")
        keys, scores = self.index.search_keys([row], k)
        keep = [i for i, key in enumerate(keys[0]) if key is not None]
        return Recommendations([self.catalogue[int(keys[0][i])] for i in keep], [float(scores[0][i]) for i in keep])

    # -- scoring -------------------------------------------------------------------------------
    def session_vectors(self, histories: Sequences, batch_size: int = 4096) -> torch.Tensor:
        """Session-tower vectors ``[B, dim]`` of the last ``max_history`` items of each history."""
        out = []
        device = self.model.codes.device
        with torch.no_grad():
            for start in range(0, len(histories), batch_size):
                rows = np.arange(start, min(start + batch_size, len(histories)))
                tokens, lengths = pad_rows(histories, rows, self.max_history)
                out.append(self.model.encode(tokens.to(device), lengths.to(device)).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.model.config.dim)

    def score_candidates(self, sessions: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Final scores of ``candidates[B, C]`` (catalogue rows): two-tower logits, re-ranked by NeuMF."""
        with torch.no_grad():
            items = self.model.item_vectors(candidates.to(self.model.codes.device)).cpu()
            base = (items @ sessions.unsqueeze(-1)).squeeze(-1) / self.model.config.temperature
            base = base.masked_fill(candidates <= 0, float("-inf"))
            if self.neumf is None:
                return base
            # NeuMF knows only items seen in training; cold-start candidates keep their base score.
            trained = candidates < self.model.n_tokens
            scores = rerank(self.neumf, sessions, torch.where(trained, candidates, 0), base)
            return torch.where(trained & (candidates > 0), scores, base)

    def _rank(self, histories: Sequences, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` catalogue rows and scores per history (``0`` / ``nan`` where fewer exist)."""
        n = len(histories)
        lengths = histories.lengths
        out_items = np.zeros((n, k), dtype=np.int64)
        out_scores = np.full((n, k), np.nan, dtype=np.float32)
        cold = lengths == 0
        if cold.any():
            out_items[cold], out_scores[cold] = self._popular(k)
        warm = np.flatnonzero(lengths > 0)
        if warm.size == 0:
            return out_items, out_scores
        histories = histories.select(warm)
        sessions = self.session_vectors(histories)
        extra = int(histories.lengths.max()) if exclude_seen else 0
        n_candidates = min(max(self.candidates, k) + extra, len(self.index))
        keys, _ = self.index.search(sessions.numpy(), n_candidates)
        candidates = torch.from_numpy(np.where(keys == None, 0, keys).astype(np.int64))  # noqa: E711
        if exclude_seen:
            candidates = _drop_seen(candidates, histories)
        scores = self.score_candidates(sessions, candidates)
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        chosen = torch.gather(candidates, 1, top.indices)
        valid = torch.isfinite(top.values)
        out_items[warm, : chosen.shape[1]] = torch.where(valid, chosen, 0).numpy()
        out_scores[warm, : chosen.shape[1]] = torch.where(valid, top.values, torch.nan).numpy()
        return out_items, out_scores

    def _popular(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        top = self._by_popularity[self._by_popularity > 0][:k]
        counts = self.popularity[top].astype(np.float32)
        return np.pad(top, (0, k - len(top))), np.pad(counts / max(counts.max(initial=1), 1), (0, k - len(top)))

    def _user_row(self, user_id: Any) -> int:
        """Row of a known user, -1 for an unknown one."""
        key = as_key(user_id, self.users.dtype.is_integer())
        return self._users.index(key) - 1 if key in self._users else -1

    def _item_row(self, item_id: Any) -> int:
        """Catalogue row of a known item, -1 for an unknown one."""
        key = as_key(item_id, self.catalogue.dtype.is_integer())
        return self._items.index(key) if key in self._items else -1

    # -- persistence ------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the recommender as one directory, all or nothing; returns its path."""
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            torch.save(self.model.state_dict(), tmp / "two_tower.pt")
            if self.neumf is not None:
                torch.save(self.neumf.state_dict(), tmp / "neumf.pt")
            self.index.save(tmp / "index")
            pl.DataFrame({"key": self.catalogue, "popularity": self.popularity}).write_parquet(
                tmp / "catalogue.parquet"
            )
            pl.DataFrame({"user": self.users}).write_parquet(tmp / "users.parquet")
            np.savez(tmp / "histories.npz", offsets=self.histories.offsets, tokens=self.histories.tokens)
            if self.attributes is not None:
                self.attributes.save(tmp / "attributes.parquet")
            meta = {
                "format": FORMAT,
                "encoder": asdict(self.model.encoder.config),
                "tower": asdict(self.model.config),
                "neumf": asdict(self.neumf.config) if self.neumf is not None else None,
                "n_tokens": self.model.n_tokens,
                "cardinalities": [t.num_embeddings for t in self.model.attributes],
                "n_numeric": int(self.model.numbers.shape[1]),
                "categories": self.attributes.categories if self.attributes is not None else [],
                "candidates": self.candidates,
                "max_history": self.max_history,
                "metrics": self.metrics,
            }
            (tmp / "recommender.json").write_text(json.dumps(meta, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "auto") -> Recommender:
        """Load a directory written by :meth:`save` onto ``device`` (``"auto"``: CUDA when visible, else CPU)."""
        directory = Path(directory)
        torch_device = resolve_device(device)
        meta = read_manifest(directory, "recommender.json", FORMAT, "a recommender")
        catalogue = pl.read_parquet(directory / "catalogue.parquet")
        encoder = GRUSessionEncoder(meta["n_tokens"], EncoderConfig(**meta["encoder"]))
        model = TwoTower(
            encoder, TowerConfig(**meta["tower"]), meta["cardinalities"], meta["n_numeric"], catalogue.height
        )
        model.load_state_dict(_weights(directory / "two_tower.pt", torch_device))
        neumf = None
        if meta.get("neumf") is not None:
            config = NeuMFConfig(**{**meta["neumf"], "mlp": tuple(meta["neumf"]["mlp"])})
            neumf = NeuMF(meta["n_tokens"], model.config.dim, config)
            neumf.load_state_dict(_weights(directory / "neumf.pt", torch_device))
        arrays = np.load(directory / "histories.npz", allow_pickle=False)
        attributes_path = directory / "attributes.parquet"
        return cls(
            model=model.to(torch_device),
            neumf=neumf.to(torch_device) if neumf is not None else None,
            catalogue=catalogue["key"],
            users=pl.read_parquet(directory / "users.parquet")["user"],
            histories=Sequences(arrays["offsets"], arrays["tokens"]),
            popularity=catalogue["popularity"].to_numpy(),
            index=VectorIndex.load(directory / "index", device=device),
            attributes=ItemAttributes.load(attributes_path, meta["categories"]) if attributes_path.is_file() else None,
            candidates=int(meta["candidates"]),
            max_history=int(meta["max_history"]),
            metrics=meta.get("metrics", {}),
        )


def _weights(path: Path, device: torch.device) -> dict:
    return torch.load(path, map_location=device, weights_only=True)


def _known_tokens(histories: Sequences, rows: np.ndarray) -> np.ndarray:
    """Tokens of ``histories`` with the sequences of unknown users (``rows < 0``) removed."""
    owner = np.repeat(np.arange(len(histories)), histories.lengths)
    return histories.tokens[rows[owner] >= 0]


def _drop_seen(candidates: torch.Tensor, histories: Sequences) -> torch.Tensor:
    """Candidates with every item of the row's history replaced by 0 (PAD)."""
    owner = torch.from_numpy(np.repeat(np.arange(len(histories)), histories.lengths))
    history = torch.from_numpy(histories.tokens.astype(np.int64))
    # Membership per row in one isin: key = row * width + item.
    width = int(max(candidates.max().item(), history.max().item() if len(history) else 0)) + 1
    seen_keys = owner * width + history
    candidate_keys = torch.arange(len(histories)).unsqueeze(1) * width + candidates
    return candidates.masked_fill(torch.isin(candidate_keys, seen_keys), 0)

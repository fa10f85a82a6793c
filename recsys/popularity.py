"""Most-popular baseline: every case gets the same scores, the items' training counts.

It is the reference every recommender must beat and the fallback for users and sessions a
model does not know.
"""

from __future__ import annotations

import numpy as np

from embeddings.checks import check_int
from embeddings.errors import ConfigError
from embeddings.sequences import Sequences


class Popularity:
    """Scores item ``i`` by how often it occurs in the training sequences.

    ``scores``: float32 ``(n_items + 1,)``, the counts; PAD (column 0) gets ``-inf``.
    """

    def __init__(self, train: Sequences, n_items: int):
        check_int("n_items", n_items)
        if train.n_tokens and (train.tokens.min() < 0 or train.tokens.max() > n_items):
            raise ConfigError(f"training tokens run outside 0..{n_items}; is n_items right?")
        self.scores = np.bincount(train.tokens, minlength=n_items + 1).astype(np.float32)
        self.scores[0] = -np.inf

    @property
    def n_items(self) -> int:
        return self.scores.size - 1

    def __call__(self, histories: Sequences, users: np.ndarray) -> np.ndarray:
        """The scorer protocol: float32 ``[len(histories), n_items + 1]``, the same row for every case."""
        return np.tile(self.scores, (len(histories), 1))

    def top(self, k: int, exclude_tokens: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most frequent items not in ``exclude_tokens``: int64 tokens and float32 counts, best first.

        Ties go to the smaller token. Fewer than ``k`` come back when fewer items are left.
        """
        check_int("k", k)
        allowed = np.ones(self.scores.size, dtype=bool)
        allowed[0] = False
        if exclude_tokens is not None:
            excluded = np.asarray(exclude_tokens, dtype=np.int64)
            allowed[excluded[(excluded >= 0) & (excluded < self.scores.size)]] = False
        candidates = np.flatnonzero(allowed)
        order = np.argsort(-self.scores[candidates], kind="stable")[:k]
        tokens = candidates[order].astype(np.int64)
        return tokens, self.scores[tokens]

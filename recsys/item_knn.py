"""item2vec item-kNN: rank items by cosine to a recency-weighted mean of the history's item vectors.

For a history ``x_1 .. x_n`` (oldest first) and unit item vectors ``u(v_i) = v_i / ||v_i||``:

    q = sum_{a=0}^{m-1} decay**a * u(v_{x_{n-a}}),   m = min(n, window)
    score(i) = cos(v_i, q) = u(v_i) . q / ||q||

Only the last ``window`` items count, the most recent with weight 1 and each step further
back ``decay`` times less (``decay=1``: the plain mean of the last ``window`` items, the
query of the item2vec benchmarks; ``window=1``: the neighbours of the last item). The
scale of the weights does not matter, cosine ignores it. Items without a vector (zero rows,
PAD) score 0 and add nothing to a query; an empty history scores every item 0.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from embeddings.checks import check_int, check_number
from embeddings.errors import DataError
from embeddings.sequences import Sequences
from embeddings.vectors import Embeddings, as_float_matrix, unit_rows
from embeddings.vocab import Vocabulary


class ItemKNN:
    """Scorer over item vectors ``[n_tokens, d]`` aligned with tokens (row 0 = PAD, row ``t`` = token ``t``).

    ``window`` (>= 1): how many of the most recent history items form the query; ``decay``
    in ``[0, 1]``: the weight ratio between an item and the one after it (see the module docstring).
    """

    def __init__(self, vectors: object, window: int = 5, decay: float = 0.8) -> None:
        check_int("window", window)
        check_number("decay", decay, at_least=0, at_most=1)
        unit = unit_rows(as_float_matrix(vectors, "item vectors"))
        unit[0] = 0.0
        self.unit = unit
        self.window = int(window)
        self.decay = float(decay)

    @classmethod
    def from_embeddings(cls, embeddings: Embeddings, vocab: Vocabulary, window: int = 5, decay: float = 0.8):
        """Align ``embeddings`` to ``vocab``'s tokens by key; vocabulary items without a vector get a zero row.

        Keys are cast to the vocabulary's key type (word2vec files bring int ids back as text).
        """
        keys = pl.Series("key", embeddings.keys).cast(vocab.keys.dtype, strict=False)
        rows = (
            pl.DataFrame({"key": vocab.keys})
            .join(pl.DataFrame({"key": keys, "row": np.arange(len(keys))}), on="key", how="left", maintain_order="left")
            .get_column("row")
            .fill_null(-1)
            .to_numpy()
        )
        vectors = np.zeros((len(vocab), embeddings.dim), dtype=np.float32)
        found = np.flatnonzero(rows >= 0)
        vectors[found + 1] = embeddings.vectors[rows[found]]
        return cls(vectors, window=window, decay=decay)

    @property
    def n_tokens(self) -> int:
        return self.unit.shape[0]

    def queries(self, histories: Sequences) -> np.ndarray:
        """Unit query vectors ``[B, d]`` float32: the decayed sum of each history's last ``window`` unit vectors."""
        lengths = np.minimum(histories.lengths, self.window)
        if histories.n_tokens and (histories.tokens.min() < 0 or histories.tokens.max() >= self.n_tokens):
            raise DataError(f"histories hold tokens outside 0..{self.n_tokens - 1}; the item vectors do not cover them")
        starts = np.cumsum(lengths) - lengths
        # Age of each tail token: 0 for a history's last item, 1 for the one before, ...
        age = np.repeat(starts + lengths - 1, lengths) - np.arange(int(lengths.sum()))
        tokens = histories.tokens[np.repeat(histories.offsets[1:] - 1, lengths) - age]
        weighted = self.unit[tokens] * (self.decay ** age.astype(np.float32))[:, None]
        out = np.zeros((len(histories), self.unit.shape[1]), dtype=np.float32)
        filled = lengths > 0
        if filled.any():
            out[filled] = np.add.reduceat(weighted, starts[filled], axis=0)
        return unit_rows(out)

    def __call__(self, histories: Sequences, users: np.ndarray) -> np.ndarray:
        """The scorer protocol: cosine of every token's vector with each history's query, float32 ``[B, n_tokens]``."""
        return self.queries(histories) @ self.unit.T

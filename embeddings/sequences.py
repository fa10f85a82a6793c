"""Ragged integer sequences in CSR form: the one container every trainer reads.

All sequences live in two flat arrays. ``tokens[offsets[i]:offsets[i + 1]]`` is
sequence ``i``; ``offsets`` has ``n + 1`` int64 entries starting at 0 and
``tokens`` holds int32 vocabulary indices. 100M events take 400 MB of tokens and
nothing per sequence beyond its 8-byte offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sequences:
    """``n`` ragged sequences: ``offsets`` (int64, shape ``(n + 1,)``) and ``tokens`` (int32)."""

    offsets: np.ndarray
    tokens: np.ndarray

    def __post_init__(self) -> None:
        offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        tokens = np.ascontiguousarray(self.tokens, dtype=np.int32)
        if offsets.ndim != 1 or offsets.size == 0 or offsets[0] != 0 or offsets[-1] != tokens.size:
            raise ValueError("offsets must start at 0 and end at len(tokens)")
        if offsets.size > 1 and np.any(np.diff(offsets) < 0):
            raise ValueError("offsets must be non-decreasing")
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "tokens", tokens)

    @classmethod
    def from_lengths(cls, lengths: np.ndarray, tokens: np.ndarray) -> Sequences:
        """Build from per-sequence lengths and the concatenated tokens."""
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(offsets, tokens)

    @classmethod
    def from_lists(cls, seqs: Iterable[Iterable[int]]) -> Sequences:
        """Build from Python lists; meant for small inputs such as tests and requests."""
        arrays = [np.asarray(list(s), dtype=np.int32) for s in seqs]
        lengths = np.array([a.size for a in arrays], dtype=np.int64)
        tokens = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32)
        return cls.from_lengths(lengths, tokens)

    def __len__(self) -> int:
        return self.offsets.size - 1

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sequence {i} out of range for {len(self)} sequences")
        i %= len(self)
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.tokens[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        """Length of each sequence, int64 shape ``(n,)``."""
        return np.diff(self.offsets)

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.size)

    def select(self, mask_or_index: np.ndarray) -> Sequences:
        """The sequences picked by a boolean mask or an index array, in that order."""
        idx = np.flatnonzero(mask_or_index) if mask_or_index.dtype == bool else np.asarray(mask_or_index)
        lengths = self.lengths[idx]
        starts = self.offsets[idx]
        # Gather every token of the chosen sequences without a Python loop.
        rel = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return Sequences.from_lengths(lengths, self.tokens[np.repeat(starts, lengths) + rel])

    def to_lists(self) -> list[list[int]]:
        """Python lists, for small inputs and tests."""
        return [s.tolist() for s in self]

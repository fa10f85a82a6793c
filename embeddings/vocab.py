"""Vocabulary: external ids (int or str) <-> dense int32 indices.

Index ``0`` (:attr:`Vocabulary.PAD`) is reserved for padding and for every key the
vocabulary does not know; the real keys take ``1 .. len(vocab) - 1``. Built from
data, keys are ordered by descending count, ties broken by ascending key, so the
same data always gives the same indices. Encoding is one vectorised hash lookup
(polars ``replace_strict``), never a Python loop over rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from embeddings.checks import check_int
from embeddings.errors import DataError, NotFoundError

FILE_NAME = "vocabulary.parquet"


@dataclass
class VocabReport:
    """What :meth:`Vocabulary.build` kept and dropped.

    ``dropped_keys`` / ``dropped_rows`` map a reason (``below_min_count``,
    ``past_max_size``) to the number of distinct keys / input rows it removed.
    """

    keys_seen: int
    rows_seen: int
    keys_kept: int
    dropped_keys: dict[str, int] = field(default_factory=dict)
    dropped_rows: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        dropped = ", ".join(f"{r}: {k} keys / {self.dropped_rows[r]} rows" for r, k in self.dropped_keys.items() if k)
        kept = f"{self.keys_kept} of {self.keys_seen} keys kept from {self.rows_seen} rows"
        return f"{kept} (dropped {dropped or 'none'})"


def _key_series(values: Any, name: str = "key") -> pl.Series:
    """``values`` as a polars Series of Int64 or String keys (categoricals become strings)."""
    s = values if isinstance(values, pl.Series) else pl.Series(name, values)
    if s.dtype in (pl.Categorical, pl.Enum):
        s = s.cast(pl.String)
    if s.dtype.is_integer():
        return s.cast(pl.Int64)
    if s.dtype == pl.String:
        return s
    raise DataError(f"{s.name or name}: keys have type {s.dtype}; expected integers or strings")


class Vocabulary:
    """Keys with their counts; key ``keys[i]`` has index ``i + 1``.

    ``keys``: polars Series (Int64 or String) of the ``n`` real keys, unique, no nulls.
    ``counts``: int64 array of shape ``(n + 1,)``; ``counts[0]`` (PAD) is 0.
    """

    PAD = 0

    def __init__(self, keys: pl.Series | Sequence[Any], counts: np.ndarray | Sequence[int] | None = None):
        """``keys`` in index order (index 1 first); ``counts`` one per key (default 0)."""
        keys = _key_series(keys).rename("key")
        if keys.null_count():
            raise DataError(f"vocabulary keys: row {keys.is_null().arg_max()} (0-based) is null")
        if keys.is_duplicated().any():
            dup = keys.filter(keys.is_duplicated())[0]
            raise DataError(f"vocabulary keys: key {dup!r} appears more than once")
        real = np.zeros(len(keys), dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
        if real.shape != (len(keys),):
            raise ValueError(f"counts has shape {real.shape}; expected ({len(keys)},), one per key")
        self.keys = keys
        self.counts = np.concatenate([np.zeros(1, dtype=np.int64), real])

    @classmethod
    def build(
        cls, keys: pl.Series | Sequence[Any], min_count: int = 1, max_size: int | None = None
    ) -> tuple[Vocabulary, VocabReport]:
        """Count ``keys`` (one per event) and keep those seen at least ``min_count`` times.

        ``max_size`` caps the number of real keys (PAD not included), keeping the most
        frequent. Nulls are refused with a :class:`DataError` naming the first null row.
        """
        check_int("min_count", min_count)
        if max_size is not None:
            check_int("max_size", max_size, minimum=0)
        s = _key_series(keys)
        if s.null_count():
            raise DataError(f"{s.name or 'keys'}: row {s.is_null().arg_max()} (0-based) is null")
        counted = s.rename("key").value_counts(name="count").sort(["count", "key"], descending=[True, False])
        frequent = counted.filter(pl.col("count") >= min_count)
        kept = frequent if max_size is None else frequent.head(max_size)
        rare_rows = int(counted["count"].sum() - frequent["count"].sum())
        report = VocabReport(
            keys_seen=counted.height,
            rows_seen=len(s),
            keys_kept=kept.height,
            dropped_keys={
                "below_min_count": counted.height - frequent.height,
                "past_max_size": frequent.height - kept.height,
            },
            dropped_rows={
                "below_min_count": rare_rows,
                "past_max_size": int(frequent["count"].sum() - kept["count"].sum()),
            },
        )
        return cls(kept["key"], kept["count"].to_numpy()), report

    def __len__(self) -> int:
        """Number of indices, PAD included."""
        return len(self.keys) + 1

    def __repr__(self) -> str:
        return f"Vocabulary({len(self.keys)} {self.keys.dtype} keys + PAD)"

    @property
    def frequencies(self) -> np.ndarray:
        """``counts / counts.sum()`` as float64 of shape ``(len(self),)``; all zeros without counts."""
        total = self.counts.sum()
        return self.counts / total if total else np.zeros(len(self), dtype=np.float64)

    @cached_property
    def _lookup(self) -> dict[Any, int]:
        # Built once, on the first single-key query; bulk work goes through encode().
        return dict(zip(self.keys.to_list(), range(1, len(self)), strict=True))

    def __contains__(self, key: object) -> bool:
        return key in self._lookup

    def index(self, key: Any) -> int:
        """Index of ``key``; :class:`NotFoundError` when the vocabulary does not hold it."""
        try:
            return self._lookup[key]
        except (KeyError, TypeError):
            raise NotFoundError(f"key {key!r} is not in the vocabulary ({len(self.keys)} keys)") from None

    def encode(self, values: pl.Series | np.ndarray | Sequence[Any]) -> np.ndarray:
        """int32 indices of shape ``(len(values),)``; unknown keys and nulls map to PAD (0).

        Values of another type are cast to the key type first (``"7"`` finds key 7 in an
        integer vocabulary); values that cannot be cast are unknown.
        """
        s = values if isinstance(values, pl.Series) else pl.Series("key", values)
        if s.dtype in (pl.Categorical, pl.Enum):
            s = s.cast(pl.String)
        s = s.cast(self.keys.dtype, strict=False)
        indices = pl.int_range(1, len(self), dtype=pl.Int32, eager=True)
        return s.replace_strict(self.keys, indices, default=self.PAD, return_dtype=pl.Int32).to_numpy()

    def decode(self, indices: np.ndarray | Sequence[int]) -> list[Any]:
        """The key at each index; PAD (0) decodes to ``None``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            bad = idx[(idx < 0) | (idx >= len(self))][0]
            raise IndexError(f"index {bad} out of range for a vocabulary of size {len(self)}")
        with_pad = pl.concat([pl.Series("key", [None], dtype=self.keys.dtype), self.keys])
        return with_pad.gather(idx).to_list()

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/vocabulary.parquet`` (columns ``key``, ``count``; PAD not stored)."""
        path = Path(directory) / FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"key": self.keys, "count": self.counts[1:]}).write_parquet(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Vocabulary:
        """Read what :meth:`save` wrote; the key dtype (int or str) comes back unchanged."""
        path = Path(directory) / FILE_NAME
        if not path.is_file():
            raise NotFoundError(f"{path}: no vocabulary file")
        try:
            df = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as e:
            raise DataError(f"{path}: cannot read vocabulary: {str(e).splitlines()[0]}") from None
        if df.columns != ["key", "count"]:
            raise DataError(f"{path}: expected columns key, count; found {', '.join(df.columns)}")
        return cls(df["key"], df["count"].to_numpy())

"""Item attributes for the item tower: categorical codes and standardised numbers per item.

An attribute table has one row per catalogue item (an id column plus attribute columns).
String, boolean and integer columns with few distinct values are categorical (code 0 =
missing or unseen); float columns (and many-valued integers) are numeric, standardised,
with missing values set to the mean. Items in the table but not in the training vocabulary
are the cold-start items: they get a vector from their attributes alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from embeddings.data import bad_row
from embeddings.errors import missing_column
from embeddings.files import atomic_output

MAX_CATEGORIES = 10_000


@dataclass
class ItemAttributes:
    """Attributes aligned with catalogue rows.

    ``keys``: catalogue item ids (row r <-> token r for r < n_tokens; rows past that are
    cold-start items); ``codes[n, n_categorical]`` int64 (0 = missing); ``numbers[n, n_numeric]``
    float32 standardised; ``categories``: per categorical column its value list (code - 1).
    """

    keys: pl.Series
    codes: np.ndarray
    numbers: np.ndarray
    categorical: list[str]
    numeric: list[str]
    categories: list[list]

    @property
    def cardinalities(self) -> list[int]:
        """Embedding rows each categorical column needs (values + the missing code 0)."""
        return [len(values) + 1 for values in self.categories]

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, id_column: str, vocab_keys: pl.Series, name: str = "item attributes"):
        """Align ``frame`` to the vocabulary: row 0 = PAD, rows 1..V = vocabulary items, then new items.

        Vocabulary items missing from the table get missing attributes. Raises
        :class:`DataError` for a missing id column or a duplicated id (naming the row).
        """
        if id_column not in frame.columns:
            raise missing_column(name, id_column, frame.columns)
        ids = frame[id_column]
        duplicated = ids.is_duplicated()
        if duplicated.any():
            row = int(duplicated.arg_max())
            raise bad_row(name, id_column, row, f"item id {ids[row]!r} appears more than once")
        if ids.null_count():
            raise bad_row(name, id_column, int(ids.is_null().arg_max()), "missing item id")
        ids = ids.cast(vocab_keys.dtype, strict=False) if ids.dtype != vocab_keys.dtype else ids
        if ids.null_count():
            row = int(ids.is_null().arg_max())
            raise bad_row(name, id_column, row, f"id {frame[id_column][row]!r} does not match the events' id type")
        known = ids.is_in(vocab_keys.implode())
        keys = pl.concat(
            [pl.Series("key", [None], dtype=vocab_keys.dtype), vocab_keys.rename("key"), ids.filter(~known)]
        )
        table = (
            pl.DataFrame({"key": keys})
            .with_row_index("row")
            .join(frame.with_columns(ids.rename(id_column)), left_on="key", right_on=id_column, how="left")
            .sort("row")
        )
        columns = [c for c in frame.columns if c != id_column]
        categorical = [c for c in columns if _is_categorical(frame[c])]
        numeric = [c for c in columns if c not in categorical and frame[c].dtype.is_numeric()]
        codes, categories = [], []
        for column in categorical:
            values = frame[column].drop_nulls().unique(maintain_order=True).sort()
            lookup = dict(zip(values.to_list(), range(1, len(values) + 1)))
            codes.append(table[column].replace_strict(lookup, default=0, return_dtype=pl.Int64).to_numpy())
            categories.append(values.to_list())
        numbers = []
        for column in numeric:
            values = table[column].cast(pl.Float64)
            mean, std = frame[column].cast(pl.Float64).mean() or 0.0, frame[column].cast(pl.Float64).std() or 1.0
            numbers.append(((values.fill_null(mean).fill_nan(mean) - mean) / (std or 1.0)).to_numpy())
        n = table.height
        return cls(
            keys=table["key"],
            codes=np.stack(codes, axis=1) if codes else np.zeros((n, 0), dtype=np.int64),
            numbers=np.stack(numbers, axis=1).astype(np.float32) if numbers else np.zeros((n, 0), dtype=np.float32),
            categorical=categorical,
            numeric=numeric,
            categories=categories,
        )

    def save(self, path: Path) -> None:
        """Write the aligned table to one Parquet file (atomically)."""
        frame = pl.DataFrame({"key": self.keys})
        frame = frame.with_columns(
            [pl.Series(f"c:{c}", self.codes[:, i]) for i, c in enumerate(self.categorical)]
            + [pl.Series(f"n:{c}", self.numbers[:, i]) for i, c in enumerate(self.numeric)]
        )
        with atomic_output(path) as tmp:
            frame.write_parquet(tmp)

    @classmethod
    def load(cls, path: Path, categories: list[list]) -> ItemAttributes:
        """Read a table written by :meth:`save`; ``categories`` come from the model's JSON config."""
        frame = pl.read_parquet(path)
        categorical = [c[2:] for c in frame.columns if c.startswith("c:")]
        numeric = [c[2:] for c in frame.columns if c.startswith("n:")]
        n = frame.height
        codes = frame.select([f"c:{c}" for c in categorical]).to_numpy().astype(np.int64) if categorical else None
        numbers = frame.select([f"n:{c}" for c in numeric]).to_numpy().astype(np.float32) if numeric else None
        return cls(
            keys=frame["key"],
            codes=codes if codes is not None else np.zeros((n, 0), dtype=np.int64),
            numbers=numbers if numbers is not None else np.zeros((n, 0), dtype=np.float32),
            categorical=categorical,
            numeric=numeric,
            categories=categories,
        )


def _is_categorical(column: pl.Series) -> bool:
    if column.dtype in (pl.String, pl.Categorical, pl.Boolean, pl.Enum):
        return column.n_unique() <= MAX_CATEGORIES
    return column.dtype.is_integer() and column.n_unique() <= min(MAX_CATEGORIES, max(2, column.len() // 2))

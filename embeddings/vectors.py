"""Embeddings: a key for each row of a float32 matrix, and what people do with them.

``Embeddings(keys, vectors)`` holds ``n`` keys (all ``str`` or all ``int``) and a
C-contiguous float32 matrix of shape ``(n, d)``. Similarity is cosine: ``most_similar``
ranks every row by ``<u(x), u(q)>`` where ``u(v) = v / ||v||``, and ``analogy`` is
3CosAdd as in gensim/word2vec, ranking by cosine with
``u(mean(u(p_1), ..., u(p_a), -u(n_1), ..., -u(n_b)))``.

Two file formats:

- ``save(directory)`` / ``Embeddings.load(directory)``: ``vectors.npy`` (read with
  ``allow_pickle=False``) and ``keys.json`` (a JSON list, so int keys stay int).
- ``to_word2vec(path)`` / ``Embeddings.from_word2vec(path)``: the word2vec C tool format
  that gensim reads and writes, text (``"n d"`` header, then ``"key v1 ... vd"`` lines) or
  binary (the same header, then ``key``, one space and ``d`` little-endian float32 per
  record). The format only carries text keys: int keys are written as decimals and come
  back as ``str`` (see :mod:`embeddings.word2vec_format`).

Every file is written to a temporary name and moved into place, so a crash never leaves
a half-written file behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.checks import check_int
from embeddings.errors import DataError, NotFoundError
from embeddings.files import atomic_output, read_json
from embeddings.keys import as_key
from embeddings.word2vec_format import read_word2vec, write_word2vec

Key = str | int


def as_key_list(keys: Iterable[Key] | np.ndarray, source: str = "keys") -> list[Key]:
    """Validate keys (all ``str`` or all ``int``, unique) and return them as a Python list.

    Numpy arrays of integers or strings are accepted and converted to Python scalars.
    """
    key_list = keys.tolist() if isinstance(keys, np.ndarray) else list(keys)
    types = set(map(type, key_list))
    if not types <= {str} and not types <= {int}:
        if types <= {str, int}:
            raise DataError(f"{source} must be all str or all int, found both")
        bad = next(i for i, t in enumerate(map(type, key_list)) if t not in (str, int))
        raise DataError(f"{source} must be str or int; row {bad} is {type(key_list[bad]).__name__} {key_list[bad]!r}")
    if len(set(key_list)) != len(key_list):
        first_row: dict[Key, int] = {}
        for row, key in enumerate(key_list):  # error path only: find the first repeat
            if key in first_row:
                raise DataError(f"{source} repeat {key!r} (rows {first_row[key]} and {row}); keys must be unique")
            first_row[key] = row
    return key_list


def as_float_matrix(values: object, source: str = "vectors", dim: int | None = None) -> np.ndarray:
    """A C-contiguous float32 ``(n, d)`` copy-if-needed of ``values``; finite values only."""
    array = np.asarray(values)
    if array.dtype.kind not in "fiu":
        raise DataError(f"{source} must be numeric, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] == 0:
        raise DataError(f"{source} must be a 2-D matrix (n, d) with d >= 1, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise DataError(f"{source} have dimension {array.shape[1]}, expected {dim}")
    matrix = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        raise DataError(f"{source} row {int(np.argmin(finite))} holds a NaN or infinite value")
    return matrix


def check_k(k: object) -> None:
    """Raise unless ``k`` (a result count) is a positive integer."""
    check_int("k", k)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm; all-zero rows stay zero. Shape ``(n, d)`` float32."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1).astype(np.float32)


class Embeddings:
    """``n`` keys and their vectors: ``keys`` (list, all str or all int), ``vectors`` float32 ``(n, d)``.

    The matrix is exposed read-only; the unit-normalised copy behind the similarity
    methods is computed once and cached.
    """

    def __init__(self, keys: Iterable[Key] | np.ndarray, vectors: object) -> None:
        key_list = as_key_list(keys)
        matrix = as_float_matrix(vectors)
        if len(key_list) != matrix.shape[0]:
            raise DataError(f"{len(key_list)} keys but {matrix.shape[0]} vectors; they must match one to one")
        self._keys = key_list
        self._row = dict(zip(key_list, range(len(key_list))))
        self._vectors = matrix.view()
        self._vectors.flags.writeable = False
        self._unit: np.ndarray | None = None

    # --- basic access -------------------------------------------------------------
    @property
    def keys(self) -> list[Key]:
        return self._keys

    @property
    def vectors(self) -> np.ndarray:
        """The float32 matrix, shape ``(n, d)``, read-only."""
        return self._vectors

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._row

    @property
    def integer_keys(self) -> bool:
        """Whether the keys are integers (else text)."""
        return bool(self._keys) and isinstance(self._keys[0], int)

    def key_of(self, text: Any) -> Key:
        """A key typed by a person as this table spells it (:func:`embeddings.keys.as_key`); it may be absent."""
        return as_key(text, self.integer_keys)

    def __getitem__(self, key: Key) -> np.ndarray:
        return self._vectors[self.index_of(key)]

    def __repr__(self) -> str:
        return f"Embeddings(n={len(self)}, dim={self.dim})"

    def index_of(self, key: Key) -> int:
        """Row of ``key`` in :attr:`vectors`."""
        try:
            return self._row[key]
        except (KeyError, TypeError):
            raise NotFoundError(f"key {key!r} is not in the embeddings ({len(self)} keys)") from None

    def normalized(self) -> np.ndarray:
        """Unit-length rows, float32 ``(n, d)``, read-only and cached; zero rows stay zero."""
        if self._unit is None:
            unit = unit_rows(self._vectors)
            unit.flags.writeable = False
            self._unit = unit
        return self._unit

    # --- similarity ---------------------------------------------------------------
    def most_similar(
        self, key_or_vector: Key | np.ndarray, k: int = 10, exclude: Iterable[Key] = ()
    ) -> list[tuple[Key, float]]:
        """The ``k`` keys of highest cosine similarity to a key or a ``(d,)`` vector.

        A key never finds itself; keys in ``exclude`` are skipped too.
        """
        excluded = [self.index_of(key) for key in exclude]
        if isinstance(key_or_vector, np.ndarray):
            query = np.asarray(key_or_vector, dtype=np.float32)
            if query.shape != (self.dim,):
                raise DataError(f"query vector must have shape ({self.dim},), got {query.shape}")
            query = unit_rows(query[None, :])[0]
        else:
            row = self.index_of(key_or_vector)
            excluded.append(row)
            query = self.normalized()[row]
        return self._top_k(query, k, excluded)

    def analogy(
        self, positive: Sequence[Key] = (), negative: Sequence[Key] = (), k: int = 10
    ) -> list[tuple[Key, float]]:
        """3CosAdd (gensim's ``most_similar(positive, negative)``): king - man + woman ~ queen.

        Ranks by cosine with the normalised mean of the positive unit vectors and the
        negated negative ones; the input keys are excluded.
        """
        rows = [self.index_of(key) for key in [*positive, *negative]]
        if not rows:
            raise DataError("analogy needs at least one positive or negative key")
        signs = np.array([1.0] * len(positive) + [-1.0] * len(negative), dtype=np.float32)
        mean = (self.normalized()[rows] * signs[:, None]).mean(axis=0)
        return self._top_k(unit_rows(mean[None, :])[0], k, rows)

    def sequence_vector(self, keys: Iterable[Key]) -> np.ndarray:
        """Mean vector, float32 ``(d,)``, of the keys that are known; unknown keys are skipped."""
        key_list = list(keys)
        rows = np.fromiter(map(self._row.get, key_list, [-1] * len(key_list)), dtype=np.int64, count=len(key_list))
        rows = rows[rows >= 0]
        if rows.size == 0:
            raise NotFoundError(
                f"none of the {len(key_list)} keys are in the embeddings"
                + (f" (first: {key_list[0]!r})" if key_list else "")
            )
        return self._vectors[rows].mean(axis=0)

    def _top_k(self, unit_query: np.ndarray, k: int, excluded: list[int]) -> list[tuple[Key, float]]:
        check_k(k)
        scores = self.normalized() @ unit_query
        scores[excluded] = -np.inf
        k = min(int(k), len(self) - len(set(excluded)))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return list(zip([self._keys[i] for i in top], scores[top].tolist()))

    # --- native format --------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``vectors.npy`` and ``keys.json`` into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_output(directory / "keys.json") as tmp:
            tmp.write_text(json.dumps(self._keys), encoding="utf-8")
        with atomic_output(directory / "vectors.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, self._vectors, allow_pickle=False)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Embeddings:
        """Read what :meth:`save` wrote."""
        directory = Path(directory)
        keys_path, vectors_path = directory / "keys.json", directory / "vectors.npy"
        for path in (keys_path, vectors_path):
            if not path.is_file():
                raise NotFoundError(f"no embeddings at {directory}: {path.name} is missing")
        keys = read_json(keys_path, list)
        try:
            vectors = np.load(vectors_path, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{vectors_path}: not a plain .npy array ({exc})") from None
        try:
            return cls(keys, vectors)
        except DataError as exc:
            raise DataError(f"{directory}: {exc}") from None

    # --- word2vec format ------------------------------------------------------------
    def to_word2vec(self, path: str | os.PathLike, binary: bool = False) -> Path:
        """Write the word2vec C format (what gensim's ``load_word2vec_format`` reads).

        Text values carry 9 significant digits, enough to read back the same float32.
        Keys must be non-empty and free of whitespace, since whitespace separates fields.
        """
        return write_word2vec(path, self._keys, self._vectors, binary)

    @classmethod
    def from_word2vec(cls, path: str | os.PathLike, binary: bool = False) -> Embeddings:
        """Read the word2vec C format (what gensim's ``save_word2vec_format`` writes); keys are ``str``."""
        keys, vectors = read_word2vec(path, binary)
        try:
            return cls(keys, vectors)
        except DataError as exc:
            raise DataError(f"{Path(path)}: {exc}") from None

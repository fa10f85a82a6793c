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
  back as ``str``.

Every file is written to a temporary name and moved into place, so a crash never leaves
a half-written file behind.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np
from numba import njit

from embeddings.atomic import atomic_output
from embeddings.errors import ConfigError, DataError, NotFoundError

Key = str | int

_TEXT_CHUNK_ROWS = 20_000  # rows formatted per write when writing word2vec text


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
        raise DataError(
            f"{source} must be str or int; row {bad} is {type(key_list[bad]).__name__} {key_list[bad]!r}"
        )
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
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")


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
        try:
            keys = json.loads(keys_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{keys_path}: not valid JSON ({exc})") from None
        if not isinstance(keys, list):
            raise DataError(f"{keys_path}: expected a JSON list of keys, got {type(keys).__name__}")
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
        path = Path(path)
        text_keys = list(map(str, self._keys))
        _check_word2vec_keys(text_keys)
        header = f"{len(self)} {self.dim}\n".encode()
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            f.write(header)
            if binary:
                f.write(_pack_binary_records(text_keys, self._vectors))
            else:
                _write_text_records(f, text_keys, self._vectors)
        return path

    @classmethod
    def from_word2vec(cls, path: str | os.PathLike, binary: bool = False) -> Embeddings:
        """Read the word2vec C format (what gensim's ``save_word2vec_format`` writes); keys are ``str``."""
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"no word2vec file at {path}")
        raw = path.read_bytes()
        header_end = raw.find(b"\n")
        header = raw[: header_end if header_end >= 0 else len(raw)].decode("utf-8", "replace").split()
        if len(header) != 2 or not all(field.isdigit() for field in header) or int(header[1]) == 0:
            raise DataError(f"{path}: line 1: expected the header '<count> <dim>', got {' '.join(header)[:60]!r}")
        n, dim = int(header[0]), int(header[1])
        body = raw[header_end + 1 :] if header_end >= 0 else b""
        if binary:
            keys, vectors = _read_binary_records(path, body, n, dim)
        else:
            keys, vectors = _read_text_records(path, body, n, dim)
        try:
            return cls(keys, vectors)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None


# --- word2vec helpers -------------------------------------------------------------------
def _check_word2vec_keys(text_keys: list[str]) -> None:
    # Non-empty keys split into exactly one field each unless one holds whitespace;
    # only when that fails, look for the culprit.
    fields = len(" ".join(text_keys).split())
    if all(text_keys) and fields == len(text_keys) and len(set(text_keys)) == len(text_keys):
        return
    seen: set[str] = set()
    for row, key in enumerate(text_keys):
        if not key or key.split() != [key]:
            raise DataError(
                f"key {key!r} (row {row}) is empty or holds whitespace; the word2vec format cannot store it"
            )
        if key in seen:
            raise DataError(f"key {key!r} (row {row}) repeats another key once written as text")
        seen.add(key)


def _write_text_records(f: io.BufferedWriter, text_keys: list[str], vectors: np.ndarray) -> None:
    line = "%s" + " %.9g" * vectors.shape[1] + "\n"
    for start in range(0, len(text_keys), _TEXT_CHUNK_ROWS):
        block = vectors[start : start + _TEXT_CHUNK_ROWS]
        cells = np.empty((block.shape[0], block.shape[1] + 1), dtype=object)
        cells[:, 0] = text_keys[start : start + _TEXT_CHUNK_ROWS]
        cells[:, 1:] = block
        # One %-format over the whole block: no Python-level loop per row.
        f.write(((line * block.shape[0]) % tuple(cells.ravel())).encode("utf-8"))


def _read_text_records(path: Path, body: bytes, n: int, dim: int) -> tuple[list[str], np.ndarray]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 2
        raise DataError(f"{path}: line {line}: not valid UTF-8") from None
    text = text.rstrip()
    if not text:
        if n:
            _raise_first_text_problem(path, text, n, dim)
        return [], np.zeros((0, dim), dtype=np.float32)
    # Fast path: n lines, each starting with a key, each leaving dim values once the key is cut.
    keys = re.findall(r"(?m)^\S+", text)
    values = re.sub(r"(?m)^\S+", "", text)
    try:
        vectors = np.loadtxt(io.StringIO(values), dtype=np.float32, comments=None, ndmin=2)
    except ValueError:
        vectors = None
    if vectors is None or text.count("\n") + 1 != n or len(keys) != n or vectors.shape != (n, dim):
        _raise_first_text_problem(path, text, n, dim)
    return keys, vectors


def _raise_first_text_problem(path: Path, text: str, n: int, dim: int) -> NoReturn:
    """Error path: walk the lines to name the first one that does not parse."""
    lines = text.split("\n") if text else []
    for number, line in enumerate(lines, start=2):
        if number - 1 > n:
            raise DataError(f"{path}: line {number}: more vectors than the header's count {n}")
        fields = line.split()
        if not line[:1].strip() or len(fields) != dim + 1:
            raise DataError(
                f"{path}: line {number}: expected a key and {dim} values separated by spaces, got {len(fields)} fields"
            )
        for field in fields[1:]:
            try:
                float(field)
            except ValueError:
                raise DataError(f"{path}: line {number}: value {field[:30]!r} is not a number") from None
    raise DataError(f"{path}: line {len(lines) + 2}: the header announces {n} vectors but the file holds {len(lines)}")


def _pack_binary_records(text_keys: list[str], vectors: np.ndarray) -> bytes:
    key_bytes = np.frombuffer("\n".join(text_keys).encode("utf-8"), dtype=np.uint8)
    starts, ends = _key_bounds(key_bytes, len(text_keys))
    vector_bytes = np.ascontiguousarray(vectors, dtype="<f4").view(np.uint8).reshape(len(text_keys), -1)
    out = np.empty(int((ends - starts).sum()) + len(text_keys) * (1 + vector_bytes.shape[1]), dtype=np.uint8)
    _pack_records(key_bytes, starts, ends, vector_bytes, out)
    return out.tobytes()


def _key_bounds(key_bytes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of each key inside the newline-joined key bytes."""
    newlines = np.flatnonzero(key_bytes == ord("\n"))
    starts = np.concatenate([[0], newlines + 1]).astype(np.int64)[:n]
    ends = np.concatenate([newlines, [key_bytes.size]]).astype(np.int64)[:n]
    return starts, ends


@njit(cache=True)
def _pack_records(key_bytes, starts, ends, vector_bytes, out):  # pragma: no cover - compiled
    pos = 0
    width = vector_bytes.shape[1]
    for i in range(starts.size):
        length = ends[i] - starts[i]
        out[pos : pos + length] = key_bytes[starts[i] : ends[i]]
        pos += length
        out[pos] = 32  # the space between key and vector
        out[pos + 1 : pos + 1 + width] = vector_bytes[i]
        pos += 1 + width


@njit(cache=True)
def _unpack_records(buf, n, width, key_out, vector_out):  # pragma: no cover - compiled
    """Copy each record's key (plus a newline) and vector bytes.

    Returns the records read, the end position in ``buf`` and the bytes used in ``key_out``.
    """
    pos = 0
    key_pos = 0
    for i in range(n):
        while pos < buf.size and buf[pos] == 10:  # the C tool ends each record with "\n"
            pos += 1
        start = pos
        while pos < buf.size and buf[pos] != 32:
            pos += 1
        if pos == start or pos + 1 + width > buf.size:
            return i, pos, key_pos
        key_out[key_pos : key_pos + pos - start] = buf[start:pos]
        key_pos += pos - start
        key_out[key_pos] = 10
        key_pos += 1
        vector_out[i] = buf[pos + 1 : pos + 1 + width]
        pos += 1 + width
    return n, pos, key_pos


def _read_binary_records(path: Path, body: bytes, n: int, dim: int) -> tuple[list[str], np.ndarray]:
    buf = np.frombuffer(body, dtype=np.uint8)
    width = 4 * dim
    if n * (width + 2) > buf.size:
        raise DataError(f"{path}: the header announces {n} vectors of dim {dim} but only {len(body)} bytes follow it")
    key_out = np.empty(buf.size + n, dtype=np.uint8)  # keys are at most the whole body, plus separators
    vector_out = np.empty((n, width), dtype=np.uint8)
    read, end, key_length = _unpack_records(buf, n, width, key_out, vector_out)
    if read < n:
        raise DataError(f"{path}: record {read + 1}: truncated or missing key (expected {n} records of {dim} float32)")
    if body[end:].strip():
        raise DataError(f"{path}: record {n + 1}: more data than the header's count {n}")
    key_bytes = key_out[: max(key_length - 1, 0)].tobytes()
    try:
        keys = key_bytes.decode("utf-8").split("\n") if n else []
    except UnicodeDecodeError as exc:
        record = key_bytes[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: record {record}: key is not valid UTF-8") from None
    if len(keys) != n:
        raise DataError(f"{path}: a key holds a newline; the word2vec format cannot store it")
    return keys, vector_out.view("<f4").astype(np.float32, copy=False)

"""The word2vec C tool format, text and binary, as gensim reads and writes it.

``write_word2vec(path, keys, vectors, binary)`` and ``read_word2vec(path, binary)`` move ``n``
keys and a float32 ``(n, d)`` matrix to and from a file:

- text: an ``"n d"`` header line, then one ``"key v1 ... vd"`` line per key, values with 9
  significant digits (enough to read back the same float32);
- binary: the same header, then per record ``key``, one space and ``d`` little-endian float32
  (readers also accept the newline the C tool writes after each record).

The format only carries text keys: int keys are written as decimals and come back as ``str``.
Keys must be non-empty and free of whitespace. The file is written to a temporary name and
moved into place, so a crash never leaves a half-written file behind. Bad input raises
:class:`~embeddings.errors.DataError` naming the file and the first bad line or record.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np
from numba import njit

from embeddings.errors import DataError, NotFoundError
from embeddings.files import atomic_output
from embeddings.keys import plain_int

_TEXT_CHUNK_ROWS = 20_000  # rows formatted per write when writing word2vec text


def write_word2vec(
    path: str | os.PathLike, keys: Sequence[str | int], vectors: np.ndarray, binary: bool = False
) -> Path:
    """Write ``keys`` and the float32 ``(n, d)`` ``vectors`` to ``path`` in the word2vec format."""
    path = Path(path)
    text_keys = list(map(str, keys))
    _check_word2vec_keys(text_keys)
    header = f"{len(text_keys)} {vectors.shape[1]}\n".encode()
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(header)
        if binary:
            f.write(_pack_binary_records(text_keys, vectors))
        else:
            _write_text_records(f, text_keys, vectors)
    return path


def read_word2vec(path: str | os.PathLike, binary: bool = False) -> tuple[list[str], np.ndarray]:
    """Read a word2vec file: ``n`` text keys and a float32 ``(n, d)`` matrix (keys not yet checked for repeats)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no word2vec file at {path}")
    raw = path.read_bytes()
    header_end = raw.find(b"\n")
    header = raw[: header_end if header_end >= 0 else len(raw)].decode("utf-8", "replace").split()
    sizes = [plain_int(field) for field in header]
    if len(sizes) != 2 or None in sizes or min(sizes) < 0 or sizes[1] == 0:
        raise DataError(f"{path}: line 1: expected the header '<count> <dim>', got {' '.join(header)[:60]!r}")
    n, dim = sizes
    body = raw[header_end + 1 :] if header_end >= 0 else b""
    if binary:
        return _read_binary_records(path, body, n, dim)
    return _read_text_records(path, body, n, dim)


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

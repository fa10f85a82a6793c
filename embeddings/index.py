"""VectorIndex: k-nearest-neighbour search over keyed vectors with FAISS.

Three kinds trade exactness for speed:

- ``"exact"``: brute force (``IndexFlatIP`` / ``IndexFlatL2``); the reference answers.
- ``"ivf"``: ``IndexIVFFlat``; k-means (trained on the vectors given to :meth:`VectorIndex.build`)
  cuts the space into ``nlist`` cells and a query scans the ``nprobe`` nearest cells.
- ``"hnsw"``: ``IndexHNSWFlat``; a layered proximity graph with ``m`` links per node,
  built with beam width ``ef_construction`` and searched with beam width
  ``max(ef_search, k)``.

Three metrics: ``"cosine"`` (rows and queries are L2-normalised, then inner product),
``"ip"`` (raw inner product) and ``"l2"`` (Euclidean). Scores are always "higher is
better": the cosine or the inner product, and for ``"l2"`` the negated squared distance
``-||q - x||^2``. Keys are the caller's ids (all ``str`` or all ``int``); FAISS sees the
int64 row numbers ``0..n-1`` in order of addition. When fewer than ``k`` neighbours
exist, results are padded with key ``None`` and score ``-inf``.

On a machine where FAISS has GPU support and a GPU is visible, ``device="auto"`` (or
``"cuda"``/``"cuda:N"``) puts a replica of exact and ivf indexes on the GPU for search. The
CPU index is kept as the source of truth: it is what :meth:`VectorIndex.save` writes, it
serves reconstruction for :meth:`VectorIndex.search_keys` and searches with ``k`` beyond
the GPU's limit. FAISS has no GPU HNSW, so hnsw indexes always stay on the CPU.

Defaults come from ``benchmarks/index_recall.py`` (100k x 64 trained item2vec vectors,
cosine): ``nlist ~ 4 sqrt(n)`` with ``nprobe=16``, and ``m=32``, ``ef_construction=80``,
``ef_search=32`` both reach recall@10 >= 0.99 there at several times exact's throughput.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embeddings.checks import check_int
from embeddings.errors import ConfigError, DataError, NotFoundError
from embeddings.files import atomic_output, format_tag, read_json
from embeddings.keys import plain_int
from embeddings.vectors import Embeddings, Key, as_float_matrix, as_key_list, check_k, unit_rows

KINDS = ("exact", "ivf", "hnsw")
METRICS = ("cosine", "ip", "l2")
KIND_PARAMS = {"exact": (), "ivf": ("nlist", "nprobe"), "hnsw": ("m", "ef_construction", "ef_search")}
_GPU_MAX_K = 2048  # FAISS GPU k-selection limit; larger k searches the CPU index
_FORMAT = format_tag("vector_index", 1)


@dataclass(frozen=True)
class IndexConfig:
    """What to build. ``nlist=None`` means ``min(4 * sqrt(n), n / 39)`` cells at build time
    (FAISS k-means wants 39 training points per cell)."""

    kind: str = "exact"
    metric: str = "cosine"
    nlist: int | None = None
    nprobe: int = 16
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 32

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.metric not in METRICS:
            raise ConfigError(f"metric {self.metric!r} is not one of {', '.join(METRICS)}")
        for name in ("nlist", "nprobe", "m", "ef_construction", "ef_search"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))

    @classmethod
    def for_kind(cls, kind: str, metric: str, **params: Any) -> IndexConfig:
        """A config for ``kind``, rejecting parameters that belong to another kind."""
        if kind in KIND_PARAMS:
            unknown = sorted(set(params) - set(KIND_PARAMS[kind]))
            if unknown:
                takes = ", ".join(KIND_PARAMS[kind]) or "no parameters"
                raise ConfigError(f"parameter {unknown[0]!r} does not apply to kind {kind!r} (it takes {takes})")
        return cls(kind=kind, metric=metric, **params)


class VectorIndex:
    """Nearest-neighbour search over ``n`` keyed ``d``-dimensional vectors.

    Make one with :meth:`build`, :meth:`from_embeddings` or :meth:`load`.
    """

    def __init__(self, cpu_index: faiss.Index, keys: list[Key], config: IndexConfig, device: str = "auto") -> None:
        self._cpu = cpu_index
        self._keys = keys
        self._row = dict(zip(keys, range(len(keys))))
        self._key_array = np.array([*keys, None], dtype=object)  # row -1 (padding) maps to None
        self._config = config
        self._device = _resolve_device(device, config.kind)
        self._gpu = _to_gpu(cpu_index, self._device) if self._device != "cpu" else None
        self._apply_search_params()

    # --- construction -------------------------------------------------------------
    @classmethod
    def build(
        cls,
        keys: Iterable[Key] | np.ndarray,
        vectors: object,
        kind: str = "exact",
        metric: str = "cosine",
        device: str = "auto",
        **params: Any,
    ) -> VectorIndex:
        """Index ``vectors`` (``(n, d)``, any real dtype) under ``keys`` (``n`` unique str or int).

        ``params``: ``nlist``, ``nprobe`` for ivf; ``m``, ``ef_construction``, ``ef_search`` for hnsw.
        """
        config = IndexConfig.for_kind(kind, metric, **params)
        key_list = as_key_list(keys)
        matrix = as_float_matrix(vectors)
        if len(key_list) != matrix.shape[0]:
            raise DataError(f"{len(key_list)} keys but {matrix.shape[0]} vectors; they must match one to one")
        if config.metric == "cosine":
            matrix = unit_rows(matrix)
        n, dim = matrix.shape
        if config.kind == "ivf" and config.nlist is None:
            config = replace(config, nlist=max(1, min(round(4 * math.sqrt(n)), n // 39)))
        index = _new_cpu_index(config, dim)
        if config.kind == "ivf":
            if n < config.nlist:
                raise ConfigError(
                    f"kind 'ivf' with nlist={config.nlist} needs at least {config.nlist} vectors to train on, got {n}"
                )
            index.train(matrix)
        index.add(matrix)
        return cls(index, key_list, config, device)

    @classmethod
    def from_embeddings(
        cls, embeddings: Embeddings, kind: str = "exact", metric: str = "cosine", device: str = "auto", **params: Any
    ) -> VectorIndex:
        """Index every row of ``embeddings`` under its key."""
        return cls.build(embeddings.keys, embeddings.vectors, kind=kind, metric=metric, device=device, **params)

    def add(self, keys: Iterable[Key] | np.ndarray, vectors: object) -> None:
        """Append vectors ``(m, d)`` under new keys; a key already present is an error."""
        key_list = as_key_list(keys)
        if key_list and self._keys and type(key_list[0]) is not type(self._keys[0]):
            raise DataError(
                f"keys are {type(key_list[0]).__name__} but the index holds {type(self._keys[0]).__name__} keys"
            )
        if not self._row.keys().isdisjoint(key_list):
            present = next(key for key in key_list if key in self._row)
            raise DataError(f"key {present!r} is already in the index; keys must be unique")
        matrix = self._prepare(vectors, "vectors")
        if len(key_list) != matrix.shape[0]:
            raise DataError(f"{len(key_list)} keys but {matrix.shape[0]} vectors; they must match one to one")
        self._cpu.add(matrix)
        if self._gpu is not None:
            self._gpu.add(matrix)
        self._row.update(zip(key_list, range(len(self._keys), len(self._keys) + len(key_list))))
        self._keys.extend(key_list)
        self._key_array = np.concatenate([self._key_array[:-1], np.array([*key_list, None], dtype=object)])

    # --- search -------------------------------------------------------------------
    def search(self, queries: object, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best keys for each query row.

        ``queries``: ``(m, d)``, converted to contiguous float32. Returns ``keys`` (object
        array ``(m, k)``, ``None`` where fewer than ``k`` neighbours exist) and ``scores``
        (float32 ``(m, k)``, best first, ``-inf`` for padding).
        """
        check_k(k)
        if len(self) == 0:
            raise DataError("the index is empty; add vectors before searching")
        matrix = self._prepare(queries, "queries")
        rows, scores = self._search_rows(matrix, int(k))
        return self._key_array[rows], scores

    def search_keys(self, keys: Iterable[Key], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with the stored vectors of ``keys`` as queries; a key never finds itself."""
        check_k(k)
        key_list = list(keys)
        rows = np.fromiter(map(self._row_of, key_list), dtype=np.int64, count=len(key_list))
        found, scores = self._search_rows(self._cpu.reconstruct_batch(rows), int(k) + 1)
        # Drop each query's own row; where the approximate search missed it, drop the last hit.
        drop = found == rows[:, None]
        drop[~drop.any(axis=1), -1] = True
        keep = np.argsort(drop, axis=1, kind="stable")[:, : int(k)]
        return self._key_array[np.take_along_axis(found, keep, axis=1)], np.take_along_axis(scores, keep, axis=1)

    def _search_rows(self, matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "hnsw":  # a beam narrower than k cannot return k good neighbours
            params = faiss.SearchParametersHNSW(efSearch=max(self._config.ef_search, k))
            scores, rows = self._cpu.search(matrix, k, params=params)
        else:
            index = self._gpu if self._gpu is not None and k <= _GPU_MAX_K else self._cpu
            scores, rows = index.search(matrix, k)
        if self._config.metric == "l2":
            np.subtract(0.0, scores, out=scores)  # 0 - x keeps exact matches at +0.0
        scores[rows < 0] = -np.inf
        return rows, scores

    def _prepare(self, values: object, source: str) -> np.ndarray:
        matrix = as_float_matrix(values, source, dim=self.dim)
        return unit_rows(matrix) if self._config.metric == "cosine" else matrix

    def _row_of(self, key: Key) -> int:
        try:
            return self._row[key]
        except (KeyError, TypeError):
            raise NotFoundError(f"key {key!r} is not in the index ({len(self)} keys)") from None

    # --- tuning -------------------------------------------------------------------
    def set_search_params(self, **params: int) -> None:
        """Change ``nprobe`` (ivf) or ``ef_search`` (hnsw) without rebuilding."""
        allowed = {"ivf": ("nprobe",), "hnsw": ("ef_search",)}.get(self.kind, ())
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ConfigError(f"search parameter {unknown[0]!r} does not apply to kind {self.kind!r}")
        self._config = replace(self._config, **params)
        self._apply_search_params()

    def _apply_search_params(self) -> None:
        if self.kind == "ivf":
            nprobe = min(self._config.nprobe, self._config.nlist)
            self._cpu.nprobe = nprobe
            if self._gpu is not None:
                self._gpu.nprobe = nprobe

    # --- properties ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._row

    def __repr__(self) -> str:
        return (
            f"VectorIndex(kind={self.kind!r}, metric={self.metric!r}, n={len(self)}, dim={self.dim}, "
            f"device={self.device!r})"
        )

    @property
    def keys(self) -> list[Key]:
        return self._keys

    @property
    def dim(self) -> int:
        return int(self._cpu.d)

    @property
    def kind(self) -> str:
        return self._config.kind

    @property
    def metric(self) -> str:
        return self._config.metric

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda:N"``: where searches run."""
        return self._device

    @property
    def config(self) -> IndexConfig:
        return self._config

    # --- persistence --------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``index.faiss`` (the CPU index), ``keys.json`` and ``config.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_output(directory / "index.faiss") as tmp:
            faiss.write_index(self._cpu, str(tmp))
        with atomic_output(directory / "keys.json") as tmp:
            tmp.write_text(json.dumps(self._keys), encoding="utf-8")
        config = {"format": _FORMAT, "dim": self.dim, "size": len(self), **asdict(self._config)}
        with atomic_output(directory / "config.json") as tmp:
            tmp.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str = "auto") -> VectorIndex:
        """Read what :meth:`save` wrote; ``device`` as in :meth:`build`."""
        directory = Path(directory)
        paths = {name: directory / name for name in ("config.json", "keys.json", "index.faiss")}
        for path in paths.values():
            if not path.is_file():
                raise NotFoundError(f"no vector index at {directory}: {path.name} is missing")
        config_data = read_json(paths["config.json"], dict)
        if config_data.pop("format", None) != _FORMAT:
            raise DataError(f"{paths['config.json']}: not a seqemb vector index config ({_FORMAT})")
        dim, size = config_data.pop("dim", None), config_data.pop("size", None)
        try:
            config = IndexConfig(**config_data)
        except (TypeError, ConfigError) as exc:
            raise DataError(f"{paths['config.json']}: {exc}") from None
        try:
            keys = as_key_list(read_json(paths["keys.json"], list))
        except DataError as exc:
            raise DataError(f"{paths['keys.json']}: {exc}") from None
        try:
            index = faiss.read_index(str(paths["index.faiss"]))
        except RuntimeError as exc:
            raise DataError(f"{paths['index.faiss']}: FAISS cannot read it ({str(exc).splitlines()[0]})") from None
        if index.ntotal != len(keys) or index.ntotal != size or index.d != dim:
            raise DataError(
                f"{directory}: index.faiss holds {index.ntotal} vectors of dim {index.d}, "
                f"keys.json {len(keys)} keys and config.json says {size} of dim {dim}"
            )
        return cls(index, keys, config, device)


def _new_cpu_index(config: IndexConfig, dim: int) -> faiss.Index:
    metric = faiss.METRIC_L2 if config.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if config.kind == "exact":
        return faiss.IndexFlatL2(dim) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(dim)
    if config.kind == "ivf":
        quantizer = faiss.IndexFlatL2(dim) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, config.nlist, metric)  # holds a reference to quantizer
        index.make_direct_map()  # lets search_keys reconstruct stored vectors
        return index
    index = faiss.IndexHNSWFlat(dim, config.m, metric)
    index.hnsw.efConstruction = config.ef_construction
    return index


def _gpu_count() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def _resolve_device(device: object, kind: str) -> str:
    """``"cpu"`` or ``"cuda:N"``; "auto" picks the GPU when FAISS can use one."""
    name = str(device)
    if name == "cpu":
        return "cpu"
    if name == "auto":
        return "cuda:0" if kind != "hnsw" and _gpu_count() > 0 else "cpu"
    gpu_id = None
    if name == "cuda":
        gpu_id = 0
    elif name.startswith("cuda:") and not name.startswith("cuda:-"):
        gpu_id = plain_int(name.removeprefix("cuda:"))
    if gpu_id is None:
        raise ConfigError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N")
    if gpu_id >= _gpu_count():
        raise ConfigError(
            f"device {name!r} needs FAISS with GPU support and GPU {gpu_id} visible; "
            f"this FAISS sees {_gpu_count()} GPUs (install faiss-gpu or use device='cpu')"
        )
    if kind == "hnsw":
        warnings.warn("FAISS has no GPU HNSW index; this hnsw index stays on the CPU", stacklevel=3)
        return "cpu"
    return f"cuda:{gpu_id}"


_GPU_RESOURCES: dict[int, Any] = {}


def _to_gpu(cpu_index: faiss.Index, device: str) -> faiss.Index:
    gpu_id = int(device.split(":")[1])
    if gpu_id not in _GPU_RESOURCES:  # one resource pool (streams, scratch memory) per GPU
        _GPU_RESOURCES[gpu_id] = faiss.StandardGpuResources()
    return faiss.index_cpu_to_gpu(_GPU_RESOURCES[gpu_id], gpu_id, cpu_index)

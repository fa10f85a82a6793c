"""VectorIndex: k-nearest-neighbour search over keyed vectors with FAISS.

Three kinds trade exactness for speed:

- ``"exact"``: brute force (``IndexFlatIP`` / ``IndexFlatL2``); the reference answers.
- ``"ivf"``: ``IndexIVFFlat``; k-means (trained on the vectors given to :meth:`VectorIndex.build`)
  cuts the space into ``nlist`` cells and a query scans the ``nprobe`` nearest cells.
- ``"hnsw"``: ``IndexHNSWFlat``; a layered proximity graph with ``m`` links per node,
  built with beam width ``ef_construction`` and searched with beam width
  ``max(ef_search, k)``.
- ``"ivfpq"``: for catalogues of tens of millions. IVF cells as above, and in each cell every
  vector is a product-quantisation code of ``pq_m`` bytes (``pq_m`` sub-vectors, 256 centroids
  each), after an OPQ rotation learned to cut the quantisation error (``opq=True``). ``pq_m``
  defaults to what the memory budget ``bytes_per_vector`` leaves beside the 8-byte id each
  IVF list stores. Codes alone rank neighbours coarsely (they cannot tell near-ties apart), so
  with ``refine=R`` (default 10) the ``R * k`` best candidates of the codes are re-ranked with
  the full vectors, which the index file keeps after the codes (``IndexRefineFlat``): load it
  memory-mapped and only the compressed part and the candidates' pages are read into memory.

Three metrics: ``"cosine"`` (rows and queries are L2-normalised, then inner product),
``"ip"`` (raw inner product) and ``"l2"`` (Euclidean). Scores are always "higher is
better": the cosine or the inner product, and for ``"l2"`` the negated squared distance
``-||q - x||^2``. Keys are the caller's ids (all ``str`` or all ``int``); FAISS sees the
int64 row numbers ``0..n-1`` in order of addition. When fewer than ``k`` neighbours
exist, results are padded with key ``None`` and score ``-inf``.

On a machine where FAISS has GPU support and a GPU is visible, ``device="auto"`` (or
``"cuda"``/``"cuda:N"``) puts a replica of exact and ivf indexes on the GPU for search; with
several GPUs visible, ``"auto"`` (or ``"cuda:all"``) splits the vectors over all of them
(``IndexShards``: each GPU searches its share, the results are merged). The CPU index is kept
as the source of truth: it is what :meth:`VectorIndex.save` writes, it serves reconstruction
for :meth:`VectorIndex.search_keys` and searches with ``k`` beyond the GPU's limit. FAISS has
no GPU HNSW, and its GPU IVF-PQ has no re-ranking stage, so hnsw and ivfpq indexes stay on the CPU.

:meth:`VectorIndex.load` memory-maps the index file (read only: FAISS reads pages as searches
touch them) when ``mmap=True``, or by default when the file is larger than half the memory
available, so an index larger than RAM still serves.

Defaults come from ``benchmarks/index_recall.py`` (100k x 64 trained item2vec vectors,
cosine): ``nlist ~ 4 sqrt(n)`` with ``nprobe=16``, and ``m=32``, ``ef_construction=80``,
``ef_search=32`` both reach recall@10 >= 0.99 there at several times exact's throughput.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import psutil

from embeddings import faiss_gpu
from embeddings.errors import ConfigError, DataError, NotFoundError
from embeddings.files import atomic_output, format_tag, read_json
from embeddings.index_config import IndexConfig
from embeddings.vectors import Embeddings, Key, as_float_matrix, as_key_list, check_k, unit_rows

# Points per IVF cell that k-means trains on: FAISS wants at least 39; more only slows training.
_TRAIN_PER_CELL = 64
_GPU_MAX_K = 2048  # FAISS GPU k-selection limit; larger k searches the CPU index
_FORMAT = format_tag("vector_index", 1)


class VectorIndex:
    """Nearest-neighbour search over ``n`` keyed ``d``-dimensional vectors.

    Make one with :meth:`build`, :meth:`from_embeddings` or :meth:`load`.
    """

    def __init__(
        self,
        cpu_index: faiss.Index,
        keys: list[Key],
        config: IndexConfig,
        device: str = "auto",
        read_only: bool = False,
    ) -> None:
        self._cpu = cpu_index
        self._read_only = read_only
        self._keys = keys
        self._row = dict(zip(keys, range(len(keys))))
        self._key_array = np.array([*keys, None], dtype=object)  # row -1 (padding) maps to None
        self._config = config
        self._device = faiss_gpu.resolve_device(device, config.kind)
        self._gpu = faiss_gpu.to_gpu(cpu_index, self._device) if self._device != "cpu" else None
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
        if config.kind in ("ivf", "ivfpq") and config.nlist is None:
            config = replace(config, nlist=max(1, min(round(4 * math.sqrt(n)), n // 39)))
        if config.kind == "ivfpq":
            config = replace(config, pq_m=config.code_bytes(matrix.shape[1]))
        index = _new_cpu_index(config, dim)
        if config.kind in ("ivf", "ivfpq"):
            needed = max(config.nlist, 256 if config.kind == "ivfpq" else 1)  # PQ: 256 centroids per sub-vector
            if n < needed:
                raise ConfigError(
                    f"kind {config.kind!r} with nlist={config.nlist} needs at least {needed} vectors to train on, got {n}"
                )
            sample = min(n, _TRAIN_PER_CELL * max(config.nlist, 256))
            rows = np.sort(np.random.default_rng(0).choice(n, sample, replace=False)) if sample < n else slice(None)
            index.train(matrix[rows])
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
        if self._read_only:
            raise ConfigError("this index was loaded memory-mapped (read only); load it with mmap=False to add to it")
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
        """Change ``nprobe`` (ivf, ivfpq), ``refine`` (ivfpq, when built with it) or ``ef_search``
        (hnsw) without rebuilding."""
        allowed = {"ivf": ("nprobe",), "hnsw": ("ef_search",), "ivfpq": ("nprobe", "refine")}.get(self.kind, ())
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ConfigError(f"search parameter {unknown[0]!r} does not apply to kind {self.kind!r}")
        if self.kind == "ivfpq" and (params.get("refine", 0) > 0) != (self._config.refine > 0):
            raise ConfigError("refine can change between values above 0 only: it decides what the index stores")
        self._config = replace(self._config, **params)
        self._apply_search_params()

    def _apply_search_params(self) -> None:
        if self.kind in ("ivf", "ivfpq"):
            nprobe = min(self._config.nprobe, self._config.nlist)
            faiss.extract_index_ivf(self._cpu).nprobe = nprobe
            if self._gpu is not None:
                faiss.GpuParameterSpace().set_index_parameter(self._gpu, "nprobe", nprobe)
        if self.kind == "ivfpq" and self._config.refine:
            faiss.downcast_index(self._cpu).k_factor = float(self._config.refine)

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
        """``"cpu"``, ``"cuda:N"`` or ``"cuda:all"`` (sharded over every GPU): where searches run."""
        return self._device

    @property
    def config(self) -> IndexConfig:
        return self._config

    def footprint(self) -> dict[str, int]:
        """Bytes of the FAISS index as :meth:`save` writes it: ``search`` (what a search reads for
        every query: centroids, codes and ids; for ivfpq the compressed part) and ``refine`` (the
        full vectors an ivfpq index keeps for re-ranking, read only for the candidates; else 0)."""
        index = faiss.downcast_index(self._cpu)
        if isinstance(index, faiss.IndexRefine):
            base = faiss.serialize_index(index.base_index).size
            return {"search": int(base), "refine": int(faiss.serialize_index(index).size - base)}
        return {"search": int(faiss.serialize_index(index).size), "refine": 0}

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
    def load(cls, directory: str | os.PathLike, device: str = "auto", mmap: bool | None = None) -> VectorIndex:
        """Read what :meth:`save` wrote; ``device`` as in :meth:`build`. ``mmap=True`` maps the
        index file read-only instead of reading it (None: when it is larger than half the memory
        available); a mapped index searches but cannot :meth:`add`."""
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
        if mmap is None:
            mmap = paths["index.faiss"].stat().st_size > psutil.virtual_memory().available / 2
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        try:
            index = faiss.read_index(str(paths["index.faiss"]), flags)
        except RuntimeError as exc:
            raise DataError(f"{paths['index.faiss']}: FAISS cannot read it ({str(exc).splitlines()[0]})") from None
        if index.ntotal != len(keys) or index.ntotal != size or index.d != dim:
            raise DataError(
                f"{directory}: index.faiss holds {index.ntotal} vectors of dim {index.d}, "
                f"keys.json {len(keys)} keys and config.json says {size} of dim {dim}"
            )
        return cls(index, keys, config, device, read_only=mmap)


def _new_cpu_index(config: IndexConfig, dim: int) -> faiss.Index:
    metric = faiss.METRIC_L2 if config.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if config.kind == "exact":
        return faiss.IndexFlatL2(dim) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(dim)
    if config.kind == "ivf":
        quantizer = faiss.IndexFlatL2(dim) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, config.nlist, metric)  # holds a reference to quantizer
        index.make_direct_map()  # lets search_keys reconstruct stored vectors
        return index
    if config.kind == "ivfpq":
        return _new_ivfpq(config, dim, metric)
    index = faiss.IndexHNSWFlat(dim, config.m, metric)
    index.hnsw.efConstruction = config.ef_construction
    return index


def _new_ivfpq(config: IndexConfig, dim: int, metric: int) -> faiss.Index:
    """OPQ rotation (optional) -> IVF of PQ codes -> re-ranking with the full vectors (optional).

    OPQ maps the vectors to ``pq_m * ceil(dim / pq_m)`` dimensions so that every sub-vector has
    the same width. :meth:`VectorIndex.search_keys` reconstructs stored vectors from the
    re-ranking copy, or without one from the codes through a direct map (8 more bytes a vector).
    """
    m = config.pq_m
    width = m * math.ceil(dim / m) if config.opq else dim
    if width % m:
        raise ConfigError(f"pq_m={m} must divide the dimension {dim} without opq")
    quantizer = faiss.IndexFlatL2(width) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(width)
    index = faiss.IndexIVFPQ(quantizer, width, config.nlist, m, 8, metric)
    index.own_fields = True  # the IVF index owns its quantizer, so Python may drop its reference
    quantizer.this.disown()
    if not config.refine:
        index.make_direct_map()
    if config.opq:
        rotation = faiss.OPQMatrix(dim, m, width)
        index = faiss.IndexPreTransform(rotation, index)
    if config.refine:
        index = faiss.IndexRefineFlat(index)
    return index

"""What a :class:`~embeddings.index.VectorIndex` builds: its kind, metric and parameters.

A frozen dataclass checked on construction, without FAISS, so the command line reads it fast
(the kinds themselves are described in :mod:`embeddings.index`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embeddings.checks import check_int
from embeddings.errors import ConfigError

KINDS = ("exact", "ivf", "hnsw", "ivfpq")
METRICS = ("cosine", "ip", "l2")
KIND_PARAMS = {
    "exact": (),
    "ivf": ("nlist", "nprobe"),
    "hnsw": ("m", "ef_construction", "ef_search"),
    "ivfpq": ("nlist", "nprobe", "bytes_per_vector", "pq_m", "opq", "refine"),
}
IVF_ID_BYTES = 8  # every IVF list stores an int64 id beside each code
PQ_SIZES = (4, 8, 12, 16, 20, 24, 32, 48, 64)  # code bytes FAISS's PQ (and GPU IVF-PQ) handles well


@dataclass(frozen=True)
class IndexConfig:
    """What to build. ``nlist=None`` means ``min(4 * sqrt(n), n / 39)`` cells at build time
    (FAISS k-means wants 39 training points per cell). ``pq_m=None`` (ivfpq) means the largest
    of :data:`PQ_SIZES` that fits ``bytes_per_vector`` with the id."""

    kind: str = "exact"
    metric: str = "cosine"
    nlist: int | None = None
    nprobe: int = 16
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 32
    bytes_per_vector: int = 32
    pq_m: int | None = None
    opq: bool = True
    refine: int = 10

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.metric not in METRICS:
            raise ConfigError(f"metric {self.metric!r} is not one of {', '.join(METRICS)}")
        for name in ("nlist", "nprobe", "m", "ef_construction", "ef_search", "pq_m"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))
        check_int("refine", self.refine, minimum=0)
        if self.bytes_per_vector < IVF_ID_BYTES + PQ_SIZES[0]:
            raise ConfigError(
                f"bytes_per_vector={self.bytes_per_vector} leaves no room for a code: the smallest is "
                f"{IVF_ID_BYTES + PQ_SIZES[0]} ({PQ_SIZES[0]} code bytes and the {IVF_ID_BYTES}-byte id)"
            )

    def code_bytes(self, dim: int) -> int:
        """Bytes of one ivfpq code of ``dim``-d vectors: ``pq_m``, else the largest size the budget
        leaves beside the id (without opq, one that divides ``dim``)."""
        if self.pq_m is not None:
            return self.pq_m
        fits = [size for size in PQ_SIZES if size + IVF_ID_BYTES <= self.bytes_per_vector]
        return max((size for size in fits if self.opq or dim % size == 0), default=fits[0])

    @classmethod
    def for_kind(cls, kind: str, metric: str, **params: Any) -> IndexConfig:
        """A config for ``kind``, rejecting parameters that belong to another kind."""
        if kind in KIND_PARAMS:
            unknown = sorted(set(params) - set(KIND_PARAMS[kind]))
            if unknown:
                takes = ", ".join(KIND_PARAMS[kind]) or "no parameters"
                raise ConfigError(f"parameter {unknown[0]!r} does not apply to kind {kind!r} (it takes {takes})")
        return cls(kind=kind, metric=metric, **params)

"""Where a FAISS index searches: the CPU, one GPU, or split over every GPU FAISS sees."""

from __future__ import annotations

import warnings
from typing import Any

import faiss

from embeddings.errors import ConfigError
from embeddings.keys import plain_int

# hnsw: FAISS has no GPU HNSW; ivfpq: its GPU IVF-PQ has no re-ranking stage.
CPU_ONLY = ("hnsw", "ivfpq")


def gpu_count() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def resolve_device(device: object, kind: str) -> str:
    """``"cpu"`` or ``"cuda:N"``; "auto" picks the GPU when FAISS can use one."""
    name = str(device)
    if name == "cpu":
        return "cpu"
    if name == "auto":
        if kind in CPU_ONLY or gpu_count() == 0:
            return "cpu"
        return "cuda:all" if gpu_count() > 1 else "cuda:0"
    if name == "cuda:all" and gpu_count() > 0 and kind not in CPU_ONLY:
        return name
    gpu_id = None
    if name == "cuda":
        gpu_id = 0
    elif name.startswith("cuda:") and not name.startswith("cuda:-"):
        gpu_id = plain_int(name.removeprefix("cuda:"))
    if gpu_id is None:
        raise ConfigError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N")
    if gpu_id >= gpu_count():
        raise ConfigError(
            f"device {name!r} needs FAISS with GPU support and GPU {gpu_id} visible; "
            f"this FAISS sees {gpu_count()} GPUs (install faiss-gpu or use device='cpu')"
        )
    if kind in CPU_ONLY:
        warnings.warn(f"FAISS on the GPU cannot serve this {kind} index; it stays on the CPU", stacklevel=3)
        return "cpu"
    return f"cuda:{gpu_id}"


_GPU_RESOURCES: dict[int, Any] = {}


def _resources(gpu_id: int) -> Any:
    if gpu_id not in _GPU_RESOURCES:  # one resource pool (streams, scratch memory) per GPU
        _GPU_RESOURCES[gpu_id] = faiss.StandardGpuResources()
    return _GPU_RESOURCES[gpu_id]


def to_gpu(cpu_index: faiss.Index, device: str) -> faiss.Index:
    """A replica on one GPU, or for ``cuda:all`` the vectors split over every GPU (``IndexShards``)."""
    if device != "cuda:all":
        gpu_id = int(device.split(":")[1])
        return faiss.index_cpu_to_gpu(_resources(gpu_id), gpu_id, cpu_index)
    gpus = list(range(gpu_count()))
    options = faiss.GpuMultipleClonerOptions()
    options.shard = True
    return faiss.index_cpu_to_gpu_multiple_py([_resources(g) for g in gpus], cpu_index, options, gpus)

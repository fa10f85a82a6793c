"""Which torch device seqemb computes on: ``device="auto"`` (the default everywhere) is CUDA when a
GPU is visible, else the CPU."""

from __future__ import annotations

import torch

from embeddings.errors import ConfigError

AUTO = "auto"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map ``"auto"`` to CUDA when a GPU is visible, else CPU; validate anything else."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device {device!r} is not a torch device (use auto, cpu or cuda)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for CUDA but no GPU is visible; use --device cpu")
    return resolved

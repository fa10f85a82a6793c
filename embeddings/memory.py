"""Memory a computation is about to ask for, checked against what the machine has before allocating.

A config that needs more memory than is available (``--dim 100000000``) fails in one line that
says how much it needs, instead of a numpy allocation error after the machine starts swapping.
"""

from __future__ import annotations

import os
from pathlib import Path

from embeddings.errors import ConfigError

_GIB = 1024**3


def available_bytes() -> int:
    """Memory available to a new allocation: ``MemAvailable`` of /proc/meminfo, else physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(what: str, needed: int, shape: str) -> None:
    """Raise :class:`ConfigError` when ``needed`` bytes for ``what`` (of ``shape``) exceed the available memory."""
    available = available_bytes()
    if needed > available:
        raise ConfigError(
            f"{what} ({shape}) need {needed / _GIB:,.1f} GiB; this machine has {available / _GIB:,.1f} GiB "
            "available: lower the dimension or the vocabulary (min_count)"
        )

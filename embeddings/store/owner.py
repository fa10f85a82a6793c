"""Who runs a run: the owning process (host, pid, start time) and whether it is still alive.

A running run records its owner and a heartbeat. On the owner's host the process table is the
truth: a run whose pid is gone, or now belongs to a process started at another time (the pid was
reused), is interrupted. From another host only the heartbeat tells: a run whose heartbeat is
older than :data:`STALE_AFTER` is taken as interrupted.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import psutil

HEARTBEAT_SECONDS = 10.0
# Six missed heartbeats: a host that stopped beating that long ago has lost its process.
STALE_AFTER = timedelta(seconds=6 * HEARTBEAT_SECONDS)
# Process start times are read from /proc in clock ticks; allow for rounding.
_START_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class Owner:
    """A process: its host name, pid and start time (Unix seconds)."""

    host: str
    pid: int
    started: float

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


@cache
def _host() -> str:
    return socket.gethostname()


def this_process() -> Owner:
    """The calling process as an :class:`Owner` (fresh in a forked child)."""
    pid = os.getpid()
    return Owner(_host(), pid, psutil.Process(pid).create_time())


def is_alive(owner: Owner, heartbeat_at: datetime | None, now: datetime) -> bool:
    """Whether ``owner`` still runs: by the process table on its host, by its heartbeat elsewhere."""
    if owner.host != _host():
        return heartbeat_at is not None and now - heartbeat_at < STALE_AFTER
    try:
        process = psutil.Process(owner.pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped by its parent
            return False
        started = process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # another user's live process
        return True
    return abs(started - owner.started) < _START_TOLERANCE_S

"""The run records' side of run ownership: which process a stored run belongs to, whether it is
still running, the lock key of a job, and the heartbeat thread.

:mod:`embeddings.store.owner` says whether a process is alive; this module applies it to rows of
the ``runs`` table (``owner_host``, ``owner_pid``, ``owner_started``, ``heartbeat_at``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import and_
from sqlalchemy.exc import OperationalError

from embeddings.store.owner import HEARTBEAT_SECONDS, Owner, is_alive, this_process
from embeddings.store.schema import runs as runs_table
from embeddings.store.schema import utcnow


def lock_key(lock: str) -> str:
    """The stored key of a lock description (a digest: descriptions name long paths and URLs)."""
    return hashlib.sha256(lock.encode("utf-8")).hexdigest()


def owned_now() -> dict[str, Any]:
    """Column values saying this process owns a run and is alive now."""
    owner = this_process()
    return {"owner_host": owner.host, "owner_pid": owner.pid, "owner_started": owner.started, "heartbeat_at": utcnow()}


def _owner_of(run: Mapping[str, Any]) -> Owner | None:
    if run.get("owner_pid") is None:
        return None
    return Owner(run["owner_host"], run["owner_pid"], run["owner_started"])


def owner_text(run: Mapping[str, Any]) -> str:
    owner = _owner_of(run)
    return "an unknown process" if owner is None else str(owner)


def is_running(run: Mapping[str, Any]) -> bool:
    owner = _owner_of(run)
    return owner is None or is_alive(owner, run["heartbeat_at"], utcnow())


def same_owner(run: Mapping[str, Any]) -> Any:
    """SQL condition: the stored run still has ``run``'s owner (compare and set against a takeover)."""
    c = runs_table.c
    return and_(
        c.owner_host == run["owner_host"], c.owner_pid == run["owner_pid"], c.owner_started == run["owner_started"]
    )


def shown(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored run as the store reports it: running in a dead process reads as interrupted."""
    run = dict(row)
    if run["status"] == "running" and not is_running(run):
        run["status"] = "interrupted"
    return run


class Heartbeat:
    """A daemon thread that calls ``beat`` every :data:`HEARTBEAT_SECONDS` until the block ends
    (none for an in-memory store, which dies with its process and shares one connection
    between threads)."""

    def __init__(self, beat: Callable[[], None], *, in_memory: bool) -> None:
        self._beat_once = beat
        self._stop = threading.Event()
        self._thread = None if in_memory else threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._beat_once()
            except OperationalError:  # the database is busy or away for a moment: beat next time
                continue

    def __enter__(self) -> Heartbeat:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

"""Run records: every job's kind, config, metrics, status and artifact, in the store's ``runs`` table.

:class:`RunRecords` is the part of :class:`embeddings.store.Store` that starts, updates, finishes
and lists runs; ``with store.run(kind, config) as run`` records one around a block. Config and
metrics are stored as JSON (numpy values become numbers, NaN and infinities null).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import insert, select, update

from embeddings.errors import ConfigError, NotFoundError
from embeddings.store_frames import jsonable
from embeddings.store_schema import runs as runs_table
from embeddings.store_schema import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclasses.dataclass
class RunHandle:
    """The run open inside ``with store.run(kind, config) as run``.

    ``run.id`` is the run id; ``run.log_metrics({...})`` merges metrics into the stored run
    at once; ``run.artifact_path = path`` is recorded when the block ends.
    """

    store: RunRecords = dataclasses.field(repr=False)
    id: str
    artifact_path: str | Path | None = None

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Merge ``metrics`` into the run's stored metrics (later values win)."""
        self.store.log_metrics(self.id, metrics)


class RunRecords:
    """Run records of a store (mixed into :class:`embeddings.store.Store`, which provides
    ``engine``, ``url``, ``read`` and ``update``)."""

    engine: Engine
    url: str

    def start_run(
        self,
        kind: str,
        config: Any = None,
        *,
        parent_run_id: str | None = None,
        notes: str | None = None,
    ) -> str:
        """Record a run of ``kind`` with status ``running``; return its new UUID.

        ``config`` is a dict or dataclass; it is stored as JSON (numpy values become numbers,
        NaN and infinities become null, other objects their text).
        """
        if parent_run_id is not None:
            self.get_run(parent_run_id)
        run_id = str(uuid.uuid4())
        values = {
            "run_id": run_id,
            "kind": kind,
            "status": "running",
            "config": jsonable(config),
            "metrics": {},
            "started_at": utcnow(),
            "parent_run_id": parent_run_id,
            "notes": notes,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(runs_table).values(values))
        return run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any]) -> None:
        """Merge ``metrics`` into the stored metrics of ``run_id`` (later values win)."""
        self._update_run(run_id, metrics=metrics)

    def finish_run(
        self,
        run_id: str,
        metrics: Mapping[str, Any] | None = None,
        artifact_path: str | Path | None = None,
    ) -> None:
        """Mark ``run_id`` succeeded now, merging ``metrics`` and recording ``artifact_path``."""
        self._update_run(run_id, metrics=metrics, artifact_path=artifact_path, status="succeeded")

    def fail_run(
        self,
        run_id: str,
        error: str | BaseException,
        *,
        metrics: Mapping[str, Any] | None = None,
        artifact_path: str | Path | None = None,
    ) -> None:
        """Mark ``run_id`` failed now with ``error`` (an exception is stored as ``Type: message``)."""
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        self._update_run(run_id, metrics=metrics, artifact_path=artifact_path, status="failed", error=error)

    def reopen_run(self, run_id: str, kind: str, config: Mapping[str, Any]) -> None:
        """Mark ``run_id`` (a ``kind`` run) running again to resume it; every setting in ``config``
        that both it and the stored run name must match, else :class:`ConfigError`."""
        run = self.get_run(run_id)
        if run["kind"] != kind:
            raise ConfigError(f"run {run_id} is a {run['kind']!r} run, not a {kind!r} run; it cannot be resumed here")
        stored = run["config"] or {}
        for key, value in config.items():
            if None not in (value, stored.get(key)) and stored.get(key) != value:
                raise ConfigError(
                    f"run {run_id} was started with {key}={stored.get(key)!r}; resume it with the same {key}"
                )
        self.update("runs", {"status": "running", "finished_at": None, "error": None}, where={"run_id": run_id})

    @contextmanager
    def run(
        self,
        kind: str,
        config: Any = None,
        *,
        parent_run_id: str | None = None,
        notes: str | None = None,
    ) -> Iterator[RunHandle]:
        """Record a run around a block: succeeded when it ends, failed (and re-raised) when it raises.

        Interrupts (``KeyboardInterrupt``) count as failures too.
        """
        handle = RunHandle(self, self.start_run(kind, config, parent_run_id=parent_run_id, notes=notes))
        try:
            yield handle
        except BaseException as exc:
            self.fail_run(handle.id, exc, artifact_path=handle.artifact_path)
            raise
        self.finish_run(handle.id, artifact_path=handle.artifact_path)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run as a dict; ``config`` and ``metrics`` are decoded JSON."""
        with self.engine.connect() as conn:
            row = conn.execute(select(runs_table).where(runs_table.c.run_id == run_id)).first()
        if row is None:
            raise NotFoundError(f"run {run_id!r} is not in the store at {self.url}")
        return dict(row._mapping)

    def runs(self, kind: str | None = None, *, status: str | None = None, limit: int | None = 100) -> pl.DataFrame:
        """Runs, newest first, optionally of one ``kind`` and ``status`` (config/metrics as JSON text)."""
        where = {name: value for name, value in (("kind", kind), ("status", status)) if value is not None}
        return self.read("runs", where=where, order_by="-started_at", limit=limit)

    def _update_run(
        self,
        run_id: str,
        *,
        metrics: Mapping[str, Any] | None = None,
        artifact_path: str | Path | None = None,
        status: str | None = None,
        error: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            stored = conn.execute(
                select(runs_table.c.metrics).where(runs_table.c.run_id == run_id).with_for_update()
            ).first()
            if stored is None:
                raise NotFoundError(f"run {run_id!r} is not in the store at {self.url}")
            values: dict[str, Any] = {"metrics": {**(stored.metrics or {}), **jsonable(dict(metrics or {}))}}
            if artifact_path is not None:
                values["artifact_path"] = str(artifact_path)
            if status is not None:
                values.update(status=status, finished_at=utcnow(), error=error)
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(values))

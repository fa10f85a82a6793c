"""Run records: every job's kind, config, metrics, status and artifact, in the store's ``runs`` table.

:class:`RunRecords` is the part of :class:`embeddings.store.Store` that starts, updates, finishes
and lists runs. Every job runs inside ``with store.run(kind, config, resume=run_id) as run``: the
block starts a run (or reopens ``resume``, whose settings must match), records progress and
metrics as it goes, marks the run failed on any exception (interrupts included) and succeeded
when it ends. :meth:`RunHandle.save_model` writes the run's model directory, and every job
returns a :class:`JobResult`. Config and metrics are stored as JSON (numpy values become
numbers, NaN and infinities null).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from tqdm.auto import tqdm

from embeddings.errors import ConfigError, NotFoundError
from embeddings.settings import models_dir
from embeddings.store.frames import jsonable
from embeddings.store.schema import runs as runs_table
from embeddings.store.schema import utcnow

M = TypeVar("M")


class SavedModel(Protocol):
    """What :meth:`RunHandle.save_model` needs of a model: it writes itself as one directory."""

    def save(self, directory: str | Path) -> Path: ...


@dataclasses.dataclass
class RunHandle:
    """The run open inside ``with store.run(kind, config) as run``.

    ``run.id`` is the run id; ``run.log_metrics({...})`` merges metrics into the stored run
    at once; ``run.artifact_path = path`` (or :meth:`save_model`) is recorded when the block ends.
    """

    store: RunRecords = dataclasses.field(repr=False)
    id: str
    kind: str
    artifact_path: str | Path | None = None

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Merge ``metrics`` into the run's stored metrics (later values win)."""
        self.store.log_metrics(self.id, metrics)

    def save_model(self, model: SavedModel, out: str | Path | None = None) -> Path:
        """Save ``model`` to ``out`` (default ``$SEQEMB_HOME/models/<kind>-<run id>``) as the run's artifact."""
        path = model.save(out if out is not None else models_dir() / f"{self.kind}-{self.id}")
        self.artifact_path = str(path)
        return path

    def progress(self, total: int, *, done: int = 0, unit: str, enabled: bool = True) -> Progress:
        """A progress bar over ``total`` units (``done`` of them finished before) that also records
        ``progress = {"done", "total", "unit"}`` in the run's metrics at every update."""
        return Progress(self, total, done, unit, enabled)


class Progress:
    """Progress of a run: a bar on the terminal (the run id in it is what a resume needs) and the
    run's ``progress`` metric, so the run records show how far a job is."""

    def __init__(self, run: RunHandle, total: int, done: int, unit: str, enabled: bool) -> None:
        self._run, self._total, self._done, self._unit = run, int(total), int(done), unit
        self._bar = tqdm(total=total, initial=done, unit=unit, desc=f"{run.kind} run {run.id}", disable=not enabled)
        self._record()

    def update(self, n: int) -> None:
        """``n`` more units are finished."""
        self._done += int(n)
        self._bar.update(n)
        self._record()

    def _record(self) -> None:
        self._run.log_metrics({"progress": {"done": self._done, "total": self._total, "unit": self._unit}})

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_: object) -> None:
        self._bar.close()


@dataclasses.dataclass(frozen=True)
class JobResult(Generic[M]):
    """What every job returns: its run id, its stored metrics, and for a training job the model
    and the directory it was saved to (``None`` for batch jobs)."""

    run_id: str
    metrics: dict[str, Any]
    model: M | None = None
    path: Path | None = None


class RunRecords:
    """Run records of a store (mixed into :class:`embeddings.store.Store`, which provides
    ``engine`` and ``url``)."""

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
        reopened = {"status": "running", "finished_at": None, "error": None}
        with self.engine.begin() as conn:
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(reopened))

    @contextmanager
    def run(
        self,
        kind: str,
        config: Any = None,
        *,
        resume: str | None = None,
        resume_keys: Iterable[str] = (),
        parent_run_id: str | None = None,
        notes: str | None = None,
    ) -> Iterator[RunHandle]:
        """Record a run around a block: succeeded when it ends, failed (and re-raised) when it raises.

        ``resume`` reopens that run instead of starting one: it must be a ``kind`` run whose stored
        values of ``resume_keys`` match ``config``'s (see :meth:`reopen_run`). Interrupts
        (``KeyboardInterrupt``) count as failures too.
        """
        if resume is None:
            run_id = self.start_run(kind, config, parent_run_id=parent_run_id, notes=notes)
        else:
            wanted = jsonable(config) or {}
            self.reopen_run(resume, kind, {key: wanted.get(key) for key in resume_keys})
            run_id = resume
        handle = RunHandle(self, run_id, kind)
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

    def runs(
        self, kind: str | Sequence[str] | None = None, *, status: str | None = None, limit: int | None = 100
    ) -> list[dict[str, Any]]:
        """Runs as :meth:`get_run` returns them (``config`` and ``metrics`` decoded), newest first,
        optionally of one ``kind`` (or any of several) and ``status``."""
        stmt = select(runs_table).order_by(runs_table.c.started_at.desc(), runs_table.c.run_id).limit(limit)
        if kind is not None:
            kinds = [kind] if isinstance(kind, str) else list(kind)
            stmt = stmt.where(runs_table.c.kind.in_(kinds))
        if status is not None:
            stmt = stmt.where(runs_table.c.status == status)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]

    def model_runs(self, kind: str | Sequence[str]) -> list[dict[str, Any]]:
        """Succeeded runs of ``kind`` (or any of several) whose model directory is on disk, newest first."""
        found = self.runs(kind, status="succeeded", limit=None)
        return [run for run in found if run["artifact_path"] and Path(run["artifact_path"]).is_dir()]

    def newest_model_run(self, kind: str, train_command: str) -> dict[str, Any]:
        """The newest of :meth:`model_runs` of ``kind``; :class:`NotFoundError` naming
        ``train_command`` (the command that trains one) when there is none."""
        found = self.model_runs(kind)
        if not found:
            noun = kind.replace("_", " ")
            raise NotFoundError(f"no trained {noun} in {self.url}; train one with `{train_command}`")
        return found[0]

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

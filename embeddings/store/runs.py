"""Run records: every job's kind, config, metrics, status and artifact, in the store's ``runs`` table.

:class:`RunRecords` is the part of :class:`embeddings.store.Store` that starts, updates, finishes
and lists runs. Every job runs inside ``with store.run(kind, config, resume=run_id) as run``: the
block starts a run (or reopens ``resume``, whose settings must match), records progress and
metrics as it goes, marks the run failed on any exception (interrupts included) and succeeded
when it ends. :meth:`RunHandle.save_model` writes the run's model directory, and every job
returns a :class:`JobResult`. Config and metrics are stored as JSON (numpy values become
numbers, NaN and infinities null).

A running run records its owner process and beats a heartbeat every
:data:`~embeddings.store.owner.HEARTBEAT_SECONDS`. A run whose process died (SIGKILL, power loss)
reads as ``interrupted``; the next job to start marks it so in the store and removes the
temporary model directories dead processes left. ``store.run(..., lock=description)`` makes a
job exclusive: at most one running run per description (a unique index over running runs), so
a second copy of a nightly job, or a second resume of one run, stops with :class:`BusyError`;
a lock whose owner died is taken over, with a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from tqdm.auto import tqdm

from embeddings.errors import BusyError, ConfigError, NotFoundError, printable
from embeddings.files import sweep_temporaries
from embeddings.settings import models_dir
from embeddings.store.frames import jsonable
from embeddings.store.run_owners import Heartbeat, is_running, lock_key, owned_now, owner_text, same_owner, shown
from embeddings.store.schema import runs as runs_table
from embeddings.store.schema import utcnow

log = logging.getLogger(__name__)

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
        lock: str | None = None,
    ) -> str:
        """Record a run of ``kind`` with status ``running``, owned by this process; return its new UUID.

        ``config`` is a dict or dataclass; it is stored as JSON (numpy values become numbers,
        NaN and infinities become null, other objects their text). ``lock`` (a description of
        the job, e.g. its kind, source and model) admits one running run per description: while
        a live run holds it, :class:`BusyError`; a dead holder's run is marked interrupted and
        the lock taken over.
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
            "lock_key": None if lock is None else lock_key(lock),
            **owned_now(),
        }
        try:
            self._insert_run(values)
        except IntegrityError:
            if lock is None:
                raise
            self._take_over(values["lock_key"], lock)
            self._insert_run(values)
        return run_id

    def _insert_run(self, values: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(runs_table).values(values))

    def _take_over(self, key: str, lock: str) -> None:
        """Free the lock ``key`` from a dead holder, or raise :class:`BusyError` naming the live one."""
        with self.engine.connect() as conn:
            holder = conn.execute(
                select(runs_table).where(runs_table.c.lock_key == key, runs_table.c.status == "running")
            ).first()
        if holder is None:  # the holder finished meanwhile
            return
        holder = dict(holder._mapping)
        if is_running(holder):
            raise BusyError(
                f"{lock} is already running as run {holder['run_id']} ({owner_text(holder)}, started "
                f"{holder['started_at']:%Y-%m-%d %H:%M:%S} UTC); wait for it to finish"
            )
        self._mark_interrupted(holder)
        log.warning(
            "run %s (%s) was interrupted: %s is gone; taking over its lock", holder["run_id"], lock, owner_text(holder)
        )

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
        """Mark ``run_id`` failed now with ``error`` (an exception is stored as ``Type: message``, its
        unprintable characters escaped: a PostgreSQL text field cannot hold a NUL)."""
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        self._update_run(run_id, metrics=metrics, artifact_path=artifact_path, status="failed", error=printable(error))

    def reopen_run(self, run_id: str, kind: str, config: Mapping[str, Any]) -> None:
        """Mark ``run_id`` (a ``kind`` run) running again, owned by this process, to resume it;
        every setting in ``config`` that both it and the stored run name must match, else
        :class:`ConfigError`. A run still running in a live process cannot be resumed
        (:class:`BusyError`); one whose process died is taken over."""
        run = self.get_run(run_id)
        if run["kind"] != kind:
            raise ConfigError(f"run {run_id} is a {run['kind']!r} run, not a {kind!r} run; it cannot be resumed here")
        stored = run["config"] or {}
        for key, value in config.items():
            if None not in (value, stored.get(key)) and stored.get(key) != value:
                raise ConfigError(
                    f"run {run_id} was started with {key}={stored.get(key)!r}; resume it with the same {key}"
                )
        reopened = {"status": "running", "finished_at": None, "error": None, **owned_now()}
        # Compare and set: of two resumes at once, only one finds the run free.
        free = runs_table.c.status != "running"
        if run["status"] == "interrupted" and run["owner_pid"] is not None:
            free = free | same_owner(run)  # a dead process's run, still marked running in the store
        try:
            with self.engine.begin() as conn:
                claimed = conn.execute(
                    update(runs_table).where(runs_table.c.run_id == run_id, free).values(reopened)
                ).rowcount
        except IntegrityError:  # a fresh run holds the lock this run took
            claimed = 0
        if claimed != 1:
            holder = self.get_run(run_id)
            raise BusyError(
                f"run {run_id} is already running ({owner_text(holder)}); it cannot be resumed twice at once"
            )

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
        lock: str | None = None,
    ) -> Iterator[RunHandle]:
        """Record a run around a block: succeeded when it ends, failed (and re-raised) when it raises.

        First the runs of dead processes are marked interrupted (:meth:`sweep_interrupted`).
        ``resume`` reopens that run instead of starting one: it must be a ``kind`` run whose stored
        values of ``resume_keys`` match ``config``'s (see :meth:`reopen_run`). ``lock`` makes the
        job exclusive (see :meth:`start_run`). Interrupts (``KeyboardInterrupt``) count as
        failures too. While the block runs, a thread beats the run's heartbeat.
        """
        self.sweep_interrupted()
        if resume is None:
            run_id = self.start_run(kind, config, parent_run_id=parent_run_id, notes=notes, lock=lock)
        else:
            wanted = jsonable(config) or {}
            self.reopen_run(resume, kind, {key: wanted.get(key) for key in resume_keys})
            run_id = resume
        handle = RunHandle(self, run_id, kind)
        with Heartbeat(lambda: self.beat(run_id), in_memory=_in_memory(self.engine)):
            try:
                yield handle
            except BaseException as exc:
                self.fail_run(handle.id, exc, artifact_path=handle.artifact_path)
                raise
        self.finish_run(handle.id, artifact_path=handle.artifact_path)

    def sweep_interrupted(self) -> list[str]:
        """Mark every running run whose process is gone ``interrupted`` and remove the temporary
        model directories that dead processes left in the models folder; return the run ids."""
        with self.engine.connect() as conn:
            found = conn.execute(select(runs_table).where(runs_table.c.status == "running"))
            running = [dict(row._mapping) for row in found]
        swept = [run["run_id"] for run in running if not is_running(run) and self._mark_interrupted(run)]
        sweep_temporaries(models_dir(create=False))
        return swept

    def _mark_interrupted(self, run: Mapping[str, Any]) -> bool:
        """Mark ``run`` interrupted if it is still running under the same (dead) owner."""
        values = {"status": "interrupted", "finished_at": utcnow(), "error": f"interrupted: {owner_text(run)} is gone"}
        condition = and_(runs_table.c.run_id == run["run_id"], runs_table.c.status == "running", same_owner(run))
        with self.engine.begin() as conn:
            return conn.execute(update(runs_table).where(condition).values(values)).rowcount == 1

    def beat(self, run_id: str) -> None:
        """Record that ``run_id``'s process (this one) is alive now."""
        with self.engine.begin() as conn:
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(heartbeat_at=utcnow()))

    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run as a dict; ``config`` and ``metrics`` are decoded JSON; a run stored as running
        whose process is gone reads as ``interrupted``."""
        with self.engine.connect() as conn:
            row = conn.execute(select(runs_table).where(runs_table.c.run_id == run_id)).first()
        if row is None:
            raise NotFoundError(f"run {run_id!r} is not in the store at {self.url}")
        return shown(row._mapping)

    def runs(
        self, kind: str | Sequence[str] | None = None, *, status: str | None = None, limit: int | None = 100
    ) -> list[dict[str, Any]]:
        """Runs as :meth:`get_run` returns them (``config`` and ``metrics`` decoded), newest first,
        optionally of one ``kind`` (or any of several) and stored ``status``; a run stored as
        running whose process is gone is returned as ``interrupted``."""
        stmt = select(runs_table).order_by(runs_table.c.started_at.desc(), runs_table.c.run_id).limit(limit)
        if kind is not None:
            kinds = [kind] if isinstance(kind, str) else list(kind)
            stmt = stmt.where(runs_table.c.kind.in_(kinds))
        if status is not None:
            stmt = stmt.where(runs_table.c.status == status)
        with self.engine.connect() as conn:
            return [shown(row._mapping) for row in conn.execute(stmt)]

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


def _in_memory(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and (engine.url.database or "") in ("", ":memory:")

"""``seqemb score``: the batch scoring job (and the demo's).

It records its run in the store (``with store.run(...)``: failed on any exception, succeeded
at the end) and returns a :class:`~embeddings.store.runs.JobResult`.

:func:`score_batch` scores transactions into ``fraud_scores`` and ``alerts``, *by entity*:
entities are independent, so a chunk is a set of cards with all their transactions, and each
card's features use its whole history (a transaction's score depends on it and its card's
earlier transactions only). With ``since``, only the transactions at or after it are scored and
written (the nightly job: yesterday's transactions, read with the cards' history); earlier ones
are history only, and cards without a new transaction are not scored at all.

Scoring writes are idempotent and resumable. Each chunk is written in ONE database transaction
(:meth:`~embeddings.store.Store.write_all`): its alerts (calibrated score >= ``alert_threshold``;
``alert_id = "<run id>:<txn id>"``, status ``open``) and its ``fraud_scores`` rows, both with
``on_conflict="ignore"``. A chunk's scores and alerts land together or not at all, so after a
crash (even SIGKILL) an entity is either fully scored, with its alerts, or has no row at all; a
rerun with the same run id skips the fully scored entities and scores the rest. Every
transaction ends up with exactly one score row and at most one alert per run.

A source scored again on purpose (a new model, a new threshold) gives the analysts one open
alert per transaction, the newest run's: in the transaction that opens a chunk's alerts, the
open alerts of the same transactions from earlier runs over the same source become
``superseded`` (alerts the analysts already reviewed keep their status). Scoring one source with
one model is exclusive: a second ``seqemb score`` of them while one runs (or a second resume of
a run) stops with :class:`~embeddings.errors.BusyError`.

With ``engine="ray"`` the same chunks run on a Ray cluster, each read, scored and written by an
actor that holds the model (:class:`_RayScoring`), with the same guarantees.

Speed: the source is read and checked once; a chunk's rows are gathered with one vectorised
index, scored by :meth:`FraudModel.score_frame` (features + autoencoder) and written through the
store's bulk path by one writer thread while the next chunk is scored (at most one write in
flight, so a second core is used and at most two chunks are held in memory). A failed write
fails the run; an error while scoring lets the write in flight finish (it commits whole or not
at all) before the run is marked failed.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

import numpy as np
import polars as pl
from sqlalchemy import func, select

from embeddings import ray_engine
from embeddings.checks import check_int, check_number
from embeddings.data import bad_row
from embeddings.errors import ConfigError, DataError
from embeddings.ray_engine import check_engine
from embeddings.sources import Source, check_keyed, describe_source, distinct_keys, first_repeated, source_identity
from embeddings.store import Store
from embeddings.store.runs import JobResult, RunHandle
from fraud.config import (
    DEFAULT_ALERT_THRESHOLD,
    DEFAULT_CHUNK_ENTITIES,
    SCORE_KIND,
)
from fraud.model import FraudModel, read_scoring_block, scoring_text_columns
from fraud.score_counts import recorded_counts

ALERT_KIND = "autoencoder"
# Settings a resumed scoring run must share with the run it continues.
_SCORE_RESUME_KEYS = ("model_path", "alert_threshold", "source", "since")


def score_batch(
    store: Store,
    model: FraudModel,
    source: Source,
    *,
    table: str | None = None,
    query: str | None = None,
    chunk_entities: int = DEFAULT_CHUNK_ENTITIES,
    alert_threshold: float = DEFAULT_ALERT_THRESHOLD,
    run_id: str | None = None,
    model_path: str | os.PathLike | None = None,
    since: datetime | None = None,
    progress: bool = True,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> JobResult[None]:
    """Score every transaction of ``source`` (those at or after ``since`` when given, each with its
    entity's whole history) into ``store``.

    ``engine="ray"`` runs the chunks on a Ray cluster (``ray_address``; see
    :func:`embeddings.ray_engine.connect`) with ``workers`` actors (default: one per CPU of the
    cluster): same chunks, same rows, same guarantees; see :func:`_score_on_ray`.

    ``alert_threshold`` is a calibrated score in ``(0, 1]``; transactions at or above it get an
    alert. ``run_id`` resumes that run (same model path, threshold, source and ``since`` when
    recorded; a resumed run keeps its ``since``): entities already fully scored in it are skipped.
    The run's metrics count transactions, entities and alerts; a failure marks it failed and
    keeps the finished chunks for a resume.
    """
    check_number("alert_threshold", alert_threshold, above=0, at_most=1, note=" (a calibrated score)")
    check_int("chunk_entities", chunk_entities)
    check_engine(engine)
    if run_id is not None and since is None:  # a resumed nightly run keeps its cut-off
        stored_since = (store.get_run(run_id)["config"] or {}).get("since")
        since = None if stored_since is None else datetime.fromisoformat(stored_since)
    config = {
        "model_path": None if model_path is None else str(model_path),
        "alert_threshold": float(alert_threshold),
        "source": source_identity(source, table=table, query=query) or describe_source(source),
        "since": None if since is None else since.isoformat(),
    }
    if engine == "ray":
        ray_job = _RayScoring(store, model, source, table, config, since, alert_threshold, chunk_entities)
        return ray_job.run(run_id, model_path, ray_address, workers, progress)
    # Read and check everything before the run is recorded: bad input leaves nothing behind.
    transactions = model.read(source, table=table, query=query)  # sorted by (entity, ts)
    # A frame has no name to tell one source from another: it neither locks nor supersedes.
    named = not isinstance(source, pl.DataFrame)
    lock = None
    if named and model_path is not None:
        lock = f"seqemb score of {config['source']} with model {os.path.abspath(model_path)}"
    with store.run(SCORE_KIND, config, resume=run_id, resume_keys=_SCORE_RESUME_KEYS, lock=lock) as run:
        earlier = _earlier_runs(store, run.id, config["source"]) if named else []
        entity = transactions["entity"]
        starts = np.flatnonzero(entity.ne_missing(entity.shift(1)).to_numpy())
        offsets = np.append(starts, transactions.height).astype(np.int64)
        new = np.ones(transactions.height, dtype=bool) if since is None else (transactions["ts"] >= since).to_numpy()
        wanted = np.add.reduceat(new.astype(np.int64), offsets[:-1]) if transactions.height else np.zeros(0, np.int64)
        done = _fully_scored(store, run.id, transactions["entity"].gather(offsets[:-1]), wanted)
        todo = np.flatnonzero(~done & (wanted > 0))
        bar = run.progress(int(wanted.sum()), done=int(wanted[done].sum()), unit="txn", enabled=progress)
        # One writer thread: chunk k is written (one transaction) while chunk k + 1 is scored.
        with bar, ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-writer") as writer:
            pending: Future[int] | None = None
            for start in range(0, todo.size, chunk_entities):
                chunk = transactions[_entity_rows(offsets, todo[start : start + chunk_entities])]
                scored = model.score_frame(chunk)
                if since is not None:
                    scored = scored.filter(pl.col("ts") >= since)
                if pending is not None:
                    bar.update(pending.result())  # a failed write raises here
                pending = writer.submit(_write_chunk, store, run.id, scored, float(alert_threshold), earlier)
            if pending is not None:
                bar.update(pending.result())
        _log_score_metrics(store, run, wanted, transactions.height, int(todo.size))
    return JobResult(run.id, store.get_run(run.id)["metrics"])


def _log_score_metrics(store: Store, run: RunHandle, wanted: np.ndarray, history: int, this_pass: int) -> None:
    """A finished score run's metrics: ``wanted`` transactions to score per entity, ``history``
    transactions read, ``this_pass`` entities scored by this pass, and the stored counts."""
    counts = recorded_counts(store, run.id)  # at_least[0] (scores >= 0) is every score of the run
    run.log_metrics(
        {
            "transactions": int(wanted.sum()),
            "history_transactions": history,
            "entities": int((wanted > 0).sum()),
            "entities_this_pass": this_pass,
            "scores": counts["scores_at_least"][0],
            "alerts": store.count("alerts", {"run_id": run.id}),
            **counts,
        }
    )


class _RayScoring:
    """``score_batch(..., engine="ray")``: the same chunks as the one-process job, each read,
    scored and written by an actor of a Ray Data pool (:mod:`embeddings.ray_engine`).

    The driver reads only the entity column (its distinct values, sorted as the one-process job
    sorts them) and, with a transaction id, that column to find a repeated id. Every chunk is
    then read and checked by the workers *before* the run is recorded (bad input leaves nothing
    behind; a bad row is named by its row in the whole file), and their counts of transactions
    to score per entity drive the resume and the progress. Then the chunks of the entities
    still to score go to actors that load the model once; each actor reads its chunk's
    transactions (a filtered scan of the file, or the table read with the chunk's keys as bound
    parameters) and writes the chunk as :func:`_write_chunk` does, in one transaction, so a
    retried chunk or a resumed run leaves every row once.
    """

    def __init__(
        self,
        store: Store,
        model: FraudModel,
        source: Source,
        table: str | None,
        config: dict,
        since: datetime | None,
        threshold: float,
        chunk_entities: int,
    ) -> None:
        self.store, self.model, self.source, self.table, self.config = store, model, source, table, config
        self.since, self.threshold, self.chunk_entities = since, float(threshold), chunk_entities
        self.reading = {"source": source, "table": table, "schema": model.scoring_schema, "since": since}
        self.reading["transaction_id"] = model.config.transaction_id

    def run(
        self,
        run_id: str | None,
        model_path: str | os.PathLike | None,
        address: str | None,
        workers: int | None,
        progress: bool,
    ) -> JobResult[None]:
        if model_path is None:
            raise ConfigError("scoring on Ray loads the model in every worker: give the model's directory (model_path)")
        if isinstance(self.source, pl.DataFrame):
            raise ConfigError("scoring on Ray reads a file or a table in every worker, not a dataframe")
        check_keyed(self.source, table=self.table)
        store_url = self.store.url_for_workers()
        keys = self._planned_keys()
        ray_engine.connect(address)
        workers = workers or ray_engine.cluster_cpus()
        check_int("workers", workers)
        entities = pl.DataFrame({"key": keys, "card_id": keys.cast(pl.String)}).join(
            pl.concat(ray_engine.map_blocks(self._blocks(keys), _CheckChunk, self.reading, workers=workers)),
            on="card_id",
            how="left",
            maintain_order="left",
        )
        wanted = entities["wanted"].to_numpy()
        lock = f"seqemb score of {self.config['source']} with model {os.path.abspath(model_path)}"
        with self.store.run(SCORE_KIND, self.config, resume=run_id, resume_keys=_SCORE_RESUME_KEYS, lock=lock) as run:
            earlier = _earlier_runs(self.store, run.id, self.config["source"])
            done = _fully_scored(self.store, run.id, entities["card_id"], wanted)
            todo = entities.filter(pl.Series(~done & (wanted > 0)))["key"]
            scoring = {**self.reading, "model_path": str(model_path), "store_url": store_url, "run_id": run.id}
            scoring.update(threshold=self.threshold, earlier=earlier)
            bar = run.progress(int(wanted.sum()), done=int(wanted[done].sum()), unit="txn", enabled=progress)
            with bar:
                for result in ray_engine.map_blocks(self._blocks(todo), _ScoreChunk, scoring, workers=workers):
                    bar.update(int(result["transactions"].sum()))
            _log_score_metrics(self.store, run, wanted, int(entities["size"].sum()), todo.len())
        return JobResult(run.id, self.store.get_run(run.id)["metrics"])

    def _planned_keys(self) -> pl.Series:
        """The source's entities, sorted; :class:`DataError` for an empty source or a repeated transaction id."""
        schema, transaction_id = self.model.scoring_schema, self.model.config.transaction_id
        text = scoring_text_columns(schema, transaction_id)
        name = describe_source(self.source, table=self.table)
        keys = distinct_keys(self.source, schema.entity, table=self.table, text_columns=text)
        if keys.len() == 0:
            raise DataError(f"{name}: no rows")
        if transaction_id is not None:
            repeated = first_repeated(self.source, transaction_id, table=self.table, text_columns=text)
            if repeated is not None:
                row, value = repeated
                problem = f"transaction id {str(value)!r} is repeated"
                if row is None:
                    raise DataError(f"{name}: column {transaction_id!r}: {problem}")
                raise bad_row(name, transaction_id, row, problem)
        return keys

    def _blocks(self, keys: pl.Series) -> list[dict]:
        return [
            {"keys": keys.slice(at, self.chunk_entities).to_list()} for at in range(0, keys.len(), self.chunk_entities)
        ]


class _CheckChunk:
    """A Ray worker that reads and checks one chunk of entities: returns each entity's
    ``card_id``, its transactions (``size``) and those to score (``wanted``)."""

    def __init__(self, source: Source, table: str | None, schema, transaction_id: str | None, since) -> None:
        self.source, self.table, self.schema, self.transaction_id, self.since = (
            source,
            table,
            schema,
            transaction_id,
            since,
        )

    def read(self, batch) -> pl.DataFrame:
        """The checked transactions of the batch's one chunk of entities."""
        keys = batch["keys"][0].as_py()
        return read_scoring_block(self.source, self.schema, self.transaction_id, keys, table=self.table)

    def __call__(self, batch) -> dict:
        frame = self.read(batch)
        new = pl.col("ts").is_not_null() if self.since is None else pl.col("ts") >= self.since
        per_entity = frame.group_by("entity", maintain_order=True).agg(size=pl.len(), wanted=new.sum())
        return {
            "card_id": per_entity["entity"].cast(pl.String).to_arrow(),
            "size": per_entity["size"].cast(pl.Int64).to_arrow(),
            "wanted": per_entity["wanted"].cast(pl.Int64).to_arrow(),
        }


class _ScoreChunk(_CheckChunk):
    """A Ray worker that holds the model and the store: reads, scores and writes one chunk."""

    def __init__(self, model_path: str, store_url: str, run_id: str, threshold: float, earlier: list[str], **reading):
        super().__init__(**reading)
        self.model, self.store = FraudModel.load(model_path), Store(store_url)
        self.run_id, self.threshold, self.earlier = run_id, threshold, earlier

    def __call__(self, batch) -> dict:
        scored = self.model.score_frame(self.read(batch))
        if self.since is not None:
            scored = scored.filter(pl.col("ts") >= self.since)
        return {"transactions": [_write_chunk(self.store, self.run_id, scored, self.threshold, self.earlier)]}


def _entity_rows(offsets: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Rows of the entities ``chosen`` (CSR ``offsets``), entity by entity, in order: int64 ``[sum of sizes]``."""
    sizes = offsets[chosen + 1] - offsets[chosen]
    ends = np.cumsum(sizes)
    # Row k of the result is offsets[e] + (k - start of e's block in the result).
    return np.arange(ends[-1] if ends.size else 0, dtype=np.int64) + np.repeat(offsets[chosen] - (ends - sizes), sizes)


def _write_chunk(store: Store, run_id: str, scored: pl.DataFrame, threshold: float, earlier: list[str]) -> int:
    """The chunk's alerts and scores in one transaction, superseding the open alerts ``earlier``
    runs raised on the same transactions (see the module doc); return its transaction count."""
    scores = scored.select(
        pl.lit(run_id).alias("run_id"),
        pl.col("txn_id").cast(pl.String),
        pl.col("entity").cast(pl.String).alias("card_id"),
        pl.col("score").cast(pl.Float64),
    )
    alerts = (
        scores.with_columns(scored["ts"])
        .filter(pl.col("score") >= threshold)
        .select(
            (pl.lit(f"{run_id}:") + pl.col("txn_id")).alias("alert_id"),
            "run_id",
            "txn_id",
            "card_id",
            "score",
            pl.lit(ALERT_KIND).alias("kind"),
            pl.lit("open").alias("status"),
            "ts",
        )
    )
    updates = []
    if earlier and alerts.height:
        where = {"run_id": earlier, "txn_id": alerts["txn_id"], "status": "open"}
        updates.append(("alerts", {"status": "superseded"}, where))
    store.write_all([("alerts", alerts), ("fraud_scores", scores)], on_conflict="ignore", updates=updates)
    return scored.height


def _earlier_runs(store: Store, run_id: str, source: str) -> list[str]:
    """The score runs over ``source`` (as named in their config) started before ``run_id``."""
    started = store.get_run(run_id)["started_at"]
    return [
        run["run_id"]
        for run in store.runs(SCORE_KIND, limit=None)
        if run["run_id"] != run_id and run["started_at"] < started and (run["config"] or {}).get("source") == source
    ]


def _fully_scored(store: Store, run_id: str, entities: pl.Series, wanted: np.ndarray) -> np.ndarray:
    """Boolean per entity of ``entities``: its ``wanted`` transactions to score all have a score row in ``run_id``."""
    table = store.table("fraud_scores")
    stmt = select(table.c.card_id, func.count().label("n")).where(table.c.run_id == run_id).group_by(table.c.card_id)
    stored = store.read_sql(stmt)
    if stored.height == 0:
        return np.zeros(entities.len(), dtype=bool)
    joined = pl.DataFrame({"card_id": entities.cast(pl.String), "size": wanted}).join(
        stored.select(pl.col("card_id").cast(pl.String), pl.col("n").cast(pl.Int64)),
        on="card_id",
        how="left",
        maintain_order="left",
    )
    return (joined["n"].fill_null(0) >= joined["size"]).to_numpy()

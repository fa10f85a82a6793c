"""The batch scoring job: transactions -> ``fraud_scores`` and ``alerts`` in the store.

:func:`score_batch` is the job behind ``seqemb score``. It reads transactions (a store table
through its URL, a file, or a frame), then scores them *by entity*: entities are independent,
so a chunk is a set of cards with all their transactions, and each card's features use its
whole history (a transaction's score depends on it and its card's earlier transactions only).
With ``since``, only the transactions at or after it are scored and written (the nightly job:
yesterday's transactions, read with the cards' history); earlier ones are history only, and
cards without a new transaction are not scored at all.

Writes are idempotent and resumable. Each chunk is written in ONE database transaction
(:meth:`~embeddings.store.Store.write_all`): its alerts (calibrated score >=
``alert_threshold``; ``alert_id = "<run id>:<txn id>"``, status ``open``) and its
``fraud_scores`` rows, both with ``on_conflict="ignore"``. A chunk's scores and alerts land
together or not at all, so after a crash (even SIGKILL) an entity is either fully scored, with
its alerts, or has no row at all; a rerun with the same run id skips the fully scored entities
and scores the rest. Every transaction ends up with exactly one score row and at most one
alert (the deterministic alert ids would make a re-written alert a no-op as well).

Speed: the source is read and checked once; a chunk's rows are gathered with one vectorised
index, scored by :meth:`FraudModel.score_frame` (features + autoencoder) and written through the
store's bulk path by one writer thread while the next chunk is scored (at most one write in
flight, so a second core is used and at most two chunks are held in memory). A failed write
fails the run; an error while scoring lets the write in flight finish (it commits whole or not
at all) before the run is marked failed. Larger ``chunk_entities`` means fewer, larger
transactions and less overlap.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

import numpy as np
import polars as pl
from sqlalchemy import func, select
from tqdm.auto import tqdm

from embeddings.errors import ConfigError
from embeddings.sources import Source, describe_source
from embeddings.store import Store
from fraud.model import FraudModel

RUN_KIND = "score"
ALERT_KIND = "autoencoder"
# Settings a resumed run must share with the run it continues.
_RESUME_KEYS = ("model_path", "alert_threshold", "source", "since")


def score_batch(
    store: Store,
    model: FraudModel,
    source: Source,
    *,
    table: str | None = None,
    query: str | None = None,
    chunk_entities: int = 2000,
    alert_threshold: float = 0.99,
    run_id: str | None = None,
    model_path: str | os.PathLike | None = None,
    since: datetime | None = None,
    progress: bool = True,
) -> str:
    """Score every transaction of ``source`` (those at or after ``since`` when given, each with its
    entity's whole history) into ``store``; return the run id.

    ``alert_threshold`` is a calibrated score in ``(0, 1]``; transactions at or above it get an
    alert. ``run_id`` resumes that run (same model path, threshold, source and ``since`` when
    recorded; a resumed run keeps its ``since``):
    entities already fully scored in it are skipped. The run's metrics count transactions,
    entities and alerts; a failure marks it failed and keeps the finished chunks for a resume.
    """
    if isinstance(alert_threshold, bool) or not 0.0 < float(alert_threshold) <= 1.0:
        raise ConfigError(f"alert_threshold must be a calibrated score in (0, 1], got {alert_threshold!r}")
    if not isinstance(chunk_entities, int) or chunk_entities < 1:
        raise ConfigError(f"chunk_entities must be an integer >= 1, got {chunk_entities!r}")
    config = {
        "model_path": None if model_path is None else str(model_path),
        "alert_threshold": float(alert_threshold),
        "source": describe_source(source, table=table, query=query),
        "since": None if since is None else since.isoformat(),
    }
    # Read and check everything before the run is recorded: bad input leaves nothing behind.
    transactions = model.read(source, table=table, query=query)  # sorted by (entity, ts)
    if run_id is None:
        run_id = store.start_run(RUN_KIND, config)
    else:
        stored_since = (store.get_run(run_id)["config"] or {}).get("since")
        if since is None and stored_since is not None:  # a resumed nightly run keeps its cut-off
            since = datetime.fromisoformat(stored_since)
            config["since"] = stored_since
        store.reopen_run(run_id, RUN_KIND, {key: config[key] for key in _RESUME_KEYS})
    try:
        entity = transactions["entity"]
        starts = np.flatnonzero(entity.ne_missing(entity.shift(1)).to_numpy())
        offsets = np.append(starts, transactions.height).astype(np.int64)
        new = np.ones(transactions.height, dtype=bool) if since is None else (transactions["ts"] >= since).to_numpy()
        wanted = np.add.reduceat(new.astype(np.int64), offsets[:-1]) if transactions.height else np.zeros(0, np.int64)
        done = _fully_scored(store, run_id, transactions, offsets, wanted)
        todo = np.flatnonzero(~done & (wanted > 0))
        bar = tqdm(
            total=int(wanted.sum()),
            initial=int(wanted[done].sum()),
            unit="txn",
            desc=f"score run {run_id}",
            disable=not progress,
        )
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
                pending = writer.submit(_write_chunk, store, run_id, scored, float(alert_threshold))
            if pending is not None:
                bar.update(pending.result())
    except BaseException as exc:
        store.fail_run(run_id, exc)
        raise
    store.finish_run(
        run_id,
        metrics={
            "transactions": int(wanted.sum()),
            "history_transactions": transactions.height,
            "entities": int((wanted > 0).sum()),
            "entities_this_pass": int(todo.size),
            "scores": store.count("fraud_scores", {"run_id": run_id}),
            "alerts": store.count("alerts", {"run_id": run_id}),
        },
    )
    return run_id


def _entity_rows(offsets: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Rows of the entities ``chosen`` (CSR ``offsets``), entity by entity, in order: int64 ``[sum of sizes]``."""
    sizes = offsets[chosen + 1] - offsets[chosen]
    ends = np.cumsum(sizes)
    # Row k of the result is offsets[e] + (k - start of e's block in the result).
    return np.arange(ends[-1] if ends.size else 0, dtype=np.int64) + np.repeat(offsets[chosen] - (ends - sizes), sizes)


def _write_chunk(store: Store, run_id: str, scored: pl.DataFrame, threshold: float) -> int:
    """The chunk's alerts and scores in one transaction (see the module doc); return its transaction count."""
    scores = scored.select(
        pl.lit(run_id).alias("run_id"),
        pl.col("txn_id").cast(pl.String),
        pl.col("entity").cast(pl.String).alias("card_id"),
        pl.col("score").cast(pl.Float64),
    )
    alerts = scores.filter(pl.col("score") >= threshold).select(
        (pl.lit(f"{run_id}:") + pl.col("txn_id")).alias("alert_id"),
        "run_id",
        "txn_id",
        "card_id",
        "score",
        pl.lit(ALERT_KIND).alias("kind"),
        pl.lit("open").alias("status"),
    )
    store.write_all([("alerts", alerts), ("fraud_scores", scores)], on_conflict="ignore")
    return scored.height


def _fully_scored(
    store: Store, run_id: str, transactions: pl.DataFrame, offsets: np.ndarray, wanted: np.ndarray
) -> np.ndarray:
    """Boolean per entity: its ``wanted`` transactions to score all have a score row in ``run_id``."""
    n_entities = offsets.size - 1
    table = store.table("fraud_scores")
    stmt = select(table.c.card_id, func.count().label("n")).where(table.c.run_id == run_id).group_by(table.c.card_id)
    stored = store.read_sql(stmt)
    if stored.height == 0:
        return np.zeros(n_entities, dtype=bool)
    entities = transactions["entity"].gather(offsets[:-1]).cast(pl.String)
    joined = pl.DataFrame({"card_id": entities, "size": wanted}).join(
        stored.select(pl.col("card_id").cast(pl.String), pl.col("n").cast(pl.Int64)),
        on="card_id",
        how="left",
        maintain_order="left",
    )
    return (joined["n"].fill_null(0) >= joined["size"]).to_numpy()

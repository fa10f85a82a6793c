"""The recommender jobs: ``seqemb train-recommender`` and ``seqemb recommend --batch`` (and the demo).

Each records its run in the store (``with store.run(...)``: failed on any exception, succeeded
at the end) and returns a :class:`~embeddings.store.runs.JobResult`.

:func:`run_recommender` reads interactions (and item attributes), trains every stage and saves
the :class:`~recsys.recommender.Recommender` as the run's model directory.

:func:`recommend_batch` writes the top-k items of many users into the store's
``recommendations`` table. It records a run of kind ``recommend`` (config: model path, k,
seen-item exclusion), then scores users ``chunk_size`` at a time and writes each chunk's rows
``(run_id, user_id, rank 1..k, item_id, score)`` in one transaction with
``on_conflict="update"``. Every user's rows land together or not at all, so a job killed at any
point is resumed by running it again with the same run id: the users that already have rows in
that run are read back from the store and skipped, and each ``(user, rank)`` row ends up stored
exactly once. With ``engine="ray"`` the same chunks are written by a pool of Ray actors
(:mod:`embeddings.ray_engine`), each loading the model once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict
from time import perf_counter
from typing import Any, Protocol

import polars as pl
from sqlalchemy import select

from embeddings import ray_engine
from embeddings.checks import check_int
from embeddings.errors import ConfigError, DataError, missing_column
from embeddings.files import check_output_dir
from embeddings.model import EmbeddingModel
from embeddings.ray_engine import check_engine
from embeddings.sources import Source, describe_source, read_table
from embeddings.store import Store
from embeddings.store.runs import JobResult
from recsys.config import DEFAULT_K, RECOMMEND_KIND, RECOMMENDER_KIND, RecommenderJob, check_k
from recsys.data import read_interactions
from recsys.recommender import Recommender
from recsys.train import train_recommender

# Settings a resumed batch must share with the run it continues (else its rows would mix two jobs).
_RESUME_KEYS = ("model_path", "k", "exclude_seen")


class UserRecommender(Protocol):
    """What the batch needs of :class:`recsys.recommender.Recommender`."""

    user_ids: list

    def recommend_users(self, user_ids: list, k: int = 10, exclude_seen: bool = True) -> pl.DataFrame: ...


def run_recommender(
    source: Source,
    job: RecommenderJob,
    *,
    store: Store,
    table: str | None = None,
    query: str | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> JobResult[Recommender] | None:
    """Train on ``source`` and save to ``out`` (default ``$SEQEMB_HOME/models/recommender-<run id>``).

    The run records what was read and the training time. On a follower node of a launch across
    hosts (``job.launch``) it reads and trains its share, and records and saves nothing (None).
    """
    vectors = EmbeddingModel.load(job.item_vectors).embeddings if job.item_vectors is not None else None
    if job.launch.follower:
        interactions, attributes = _training_inputs(source, job, table, query)
        _train(interactions, attributes, vectors, job, progress=False)
        return None
    check_output_dir(out)
    with store.run(RECOMMENDER_KIND, asdict(job)) as run:
        interactions, attributes = _training_inputs(source, job, table, query)
        started = perf_counter()
        recommender = _train(interactions, attributes, vectors, job, progress)
        seconds = perf_counter() - started
        path = run.save_model(recommender, out)
        run.log_metrics(
            {
                **recommender.metrics,
                "users": interactions.n_users,
                "items": recommender.n_items,
                "interactions": interactions.sequences.n_tokens,
                "train_seconds": round(seconds, 3),
                "workers": job.launch.workers,
            }
        )
    return JobResult(run.id, store.get_run(run.id)["metrics"], recommender, path)


def _training_inputs(source: Source, job: RecommenderJob, table: str | None, query: str | None):
    """The interactions and the item attributes (or None) the job trains on."""
    interactions = read_interactions(source, job.schema, table=table, query=query)
    if job.attributes is None:
        return interactions, None
    attributes = read_table(job.attributes, table=job.attributes_table)
    if job.attribute_columns is not None:
        missing = [c for c in job.attribute_columns if c not in attributes.columns]
        if missing:
            name = describe_source(job.attributes, table=job.attributes_table)
            raise missing_column(name, missing[0], attributes.columns)
        attributes = attributes.select(job.attribute_id or job.schema.item, *job.attribute_columns)
    return interactions, attributes


def _train(interactions, attributes, vectors, job: RecommenderJob, progress: bool) -> Recommender | None:
    return train_recommender(
        interactions,
        job.config,
        item_vectors=vectors,
        item_attributes=attributes,
        attribute_id=job.attribute_id or job.schema.item,
        progress=progress,
        launch=job.launch,
    )


def recommend_batch(
    store: Store,
    recommender: UserRecommender,
    user_ids: Iterable[Any] | None = None,
    *,
    k: int = DEFAULT_K,
    exclude_seen: bool = True,
    chunk_size: int = 2000,
    run_id: str | None = None,
    model_path: str | os.PathLike | None = None,
    progress: bool = True,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
) -> JobResult[None]:
    """Write the top ``k`` items of each user to ``store``.

    ``user_ids`` defaults to every user the model knows; ids it does not know get the
    popularity fallback rows of ``recommend_users``. Repeated ids are scored once. ``run_id``
    resumes that run: ``k``, ``exclude_seen`` and (when both name one) ``model_path`` must match,
    and users with rows in it already are skipped. The run's metrics count users and rows; a
    failure marks it failed and leaves the finished chunks in place for the resume. With a
    ``model_path`` the job is exclusive: a second batch of that model while one runs, or a second
    resume of one run, raises :class:`~embeddings.errors.BusyError`.

    ``engine="ray"`` writes the same chunks from a pool of ``workers`` Ray actors (default: one
    per CPU of the cluster at ``ray_address``, see :func:`embeddings.ray_engine.connect`), each
    loading the model at ``model_path`` once and writing its chunks as this process would.
    """
    check_k(k)
    check_int("chunk_size", chunk_size)
    check_engine(engine)
    if engine == "ray":
        if model_path is None:
            raise ConfigError("a batch on Ray loads the model in every worker: give the model's directory (model_path)")
        store_url = store.url_for_workers()
        ray_engine.connect(ray_address)
        workers = workers or ray_engine.cluster_cpus()
        check_int("workers", workers)
    users = _unique_users(recommender.user_ids if user_ids is None else user_ids)
    config = {"model_path": None if model_path is None else str(model_path), "k": k, "exclude_seen": exclude_seen}
    # One batch per model directory at a time: a second copy of the nightly job stops at once.
    lock = None if model_path is None else f"seqemb recommend --batch with model {os.path.abspath(model_path)}"
    config["users"] = users.len()
    with store.run(RECOMMEND_KIND, config, resume=run_id, resume_keys=_RESUME_KEYS, lock=lock) as run:
        run.log_metrics({"users": users.len()})
        todo = users.filter(~users.cast(pl.String).is_in(users_written(store, run.id).implode()))
        chunks = [todo.slice(start, chunk_size).to_list() for start in range(0, todo.len(), chunk_size)]
        with run.progress(users.len(), done=users.len() - todo.len(), unit="user", enabled=progress) as bar:
            if engine == "ray":
                writing = {"model_path": str(model_path), "store_url": store_url, "run_id": run.id, "k": k}
                writing["exclude_seen"] = exclude_seen
                blocks = [{"keys": chunk} for chunk in chunks]
                for result in ray_engine.map_blocks(blocks, _RecommendChunk, writing, workers=workers):
                    bar.update(int(result["users"].sum()))
            else:
                for chunk in chunks:
                    bar.update(write_users(store, recommender, run.id, chunk, k, exclude_seen))
        run.log_metrics({"users_this_pass": todo.len(), "rows": store.count("recommendations", {"run_id": run.id})})
    return JobResult(run.id, store.get_run(run.id)["metrics"])


def write_users(
    store: Store, recommender: UserRecommender, run_id: str, users: list, k: int, exclude_seen: bool
) -> int:
    """Write the top ``k`` rows of ``users`` in ``run_id`` in one transaction; return how many users."""
    rows = _rows(run_id, recommender.recommend_users(users, k=k, exclude_seen=exclude_seen))
    store.write("recommendations", rows, on_conflict="update", chunk_size=max(rows.height, 1))
    return len(users)


class _RecommendChunk:
    """A Ray worker that holds the model and the store and writes one chunk of users (:func:`write_users`)."""

    def __init__(self, model_path: str, store_url: str, run_id: str, k: int, exclude_seen: bool) -> None:
        self.recommender, self.store = Recommender.load(model_path), Store(store_url)
        self.run_id, self.k, self.exclude_seen = run_id, k, exclude_seen

    def __call__(self, batch) -> dict:
        users = batch["keys"][0].as_py()
        return {"users": [write_users(self.store, self.recommender, self.run_id, users, self.k, self.exclude_seen)]}


def users_written(store: Store, run_id: str) -> pl.Series:
    """The distinct user ids (text) that have recommendation rows in ``run_id``."""
    table = store.table("recommendations")
    stmt = select(table.c.user_id).where(table.c.run_id == run_id).distinct()
    return store.read_sql(stmt)["user_id"]


def _unique_users(user_ids: Iterable[Any]) -> pl.Series:
    users = pl.Series("user_id", list(user_ids), strict=False)  # mixed int and text ids become text
    if users.null_count():
        raise DataError(f"user id {users.is_null().arg_true()[0]} of the list is missing (null)")
    return users.unique(maintain_order=True)


def _rows(run_id: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``recommend_users`` output as ``recommendations`` rows of ``run_id`` (ids as text)."""
    return frame.select(
        pl.lit(run_id).alias("run_id"),
        pl.col("user_id").cast(pl.String),
        pl.col("rank").cast(pl.Int64),
        pl.col("item_id").cast(pl.String),
        pl.col("score").cast(pl.Float64),
    )

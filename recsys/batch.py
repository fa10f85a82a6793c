"""Batch recommendations: top-k items for many users into the store's ``recommendations`` table.

:func:`recommend_batch` is the job behind ``seqemb recommend --batch``. It records a run of
kind ``recommend`` (config: model path, k, seen-item exclusion), then scores users
``chunk_size`` at a time and writes each chunk's rows
``(run_id, user_id, rank 1..k, item_id, score)`` in one transaction with
``on_conflict="update"``. Every user's rows land together or not at all, so a job killed at any
point is resumed by running it again with the same run id: the users that already have rows
in that run are read back from the store and skipped, and each ``(user, rank)`` row ends up
stored exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Protocol

import polars as pl
from sqlalchemy import select
from tqdm.auto import tqdm

from embeddings.errors import ConfigError, DataError
from embeddings.store import Store
from recsys.recommender import MAX_K

RUN_KIND = "recommend"
# Settings a resumed run must share with the run it continues (else its rows would mix two jobs).
_RESUME_KEYS = ("model_path", "k", "exclude_seen")


class UserRecommender(Protocol):
    """What the batch needs of :class:`recsys.recommender.Recommender`."""

    user_ids: list

    def recommend_users(self, user_ids: list, k: int = 10, exclude_seen: bool = True) -> pl.DataFrame: ...


def recommend_batch(
    store: Store,
    recommender: UserRecommender,
    user_ids: Iterable[Any] | None = None,
    *,
    k: int = 10,
    exclude_seen: bool = True,
    chunk_size: int = 2000,
    run_id: str | None = None,
    model_path: str | os.PathLike | None = None,
    progress: bool = True,
) -> str:
    """Write the top ``k`` items of each user to ``store``; returns the run id.

    ``user_ids`` defaults to every user the model knows; ids it does not know get the
    popularity fallback rows of ``recommend_users``. Repeated ids are scored once. ``run_id``
    resumes that run: ``k``, ``exclude_seen`` and (when both name one) ``model_path`` must match,
    and users with rows in it already are skipped. The run's metrics count users and rows; a
    failure marks it failed and leaves the finished chunks in place for the resume.
    """
    if not 1 <= k <= MAX_K:
        raise ConfigError(f"k must be between 1 and {MAX_K}, got {k}")
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
    users = _unique_users(recommender.user_ids if user_ids is None else user_ids)
    config = {"model_path": None if model_path is None else str(model_path), "k": k, "exclude_seen": exclude_seen}
    if run_id is None:
        run_id = store.start_run(RUN_KIND, {**config, "users": users.len()})
    else:
        store.reopen_run(run_id, RUN_KIND, {key: config[key] for key in _RESUME_KEYS})
    try:
        todo = users.filter(~users.cast(pl.String).is_in(users_written(store, run_id).implode()))
        # The run id in the bar is what a resume needs if the job is killed.
        bar = tqdm(
            total=users.len(),
            initial=users.len() - todo.len(),
            unit="user",
            desc=f"recommend run {run_id}",
            disable=not progress,
        )
        with bar:
            for start in range(0, todo.len(), chunk_size):
                chunk = todo.slice(start, chunk_size)
                rows = _rows(run_id, recommender.recommend_users(chunk.to_list(), k=k, exclude_seen=exclude_seen))
                store.write("recommendations", rows, on_conflict="update", chunk_size=max(rows.height, 1))
                bar.update(chunk.len())
    except BaseException as exc:
        store.fail_run(run_id, exc, metrics={"users": users.len()})
        raise
    store.finish_run(
        run_id,
        metrics={
            "users": users.len(),
            "users_this_pass": todo.len(),
            "rows": store.count("recommendations", {"run_id": run_id}),
        },
    )
    return run_id


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

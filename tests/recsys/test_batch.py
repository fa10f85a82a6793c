"""Batch recommendations into the store: every (user, rank) once, resumable after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from embeddings.data import EventSchema
from embeddings.errors import ConfigError
from embeddings.settings import default_db_url
from embeddings.store import Store
from embeddings.synthetic import WorldConfig, make_world
from recsys.config import EncoderConfig, FitConfig, NeuMFConfig, RecommenderConfig, TowerConfig
from recsys.data import read_interactions
from recsys.jobs import recommend_batch, users_written
from recsys.recommender import Recommender
from recsys.train import train_recommender

# Every test here runs on each store back-end (tests/store_backends.py).
pytestmark = pytest.mark.usefixtures("db_backend")


def small_recommender(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a small recommender trained once per test session (the batch and service tests share it).

    The synthetic world's users and items are renumbered to integer ids (``u0007`` -> 7), so
    the model's keys are integers and callers that pass text ids exercise the key matching.
    """
    if "path" not in _SMALL:
        world = make_world(WorldConfig(seed=0).scaled(0.2))
        numbered = [pl.col(c).str.slice(1).cast(pl.Int64) for c in ("user_id", "item_id")]
        events = world.events.with_columns(numbered)
        interactions = read_interactions(events, EventSchema(entity="user_id", item="item_id", timestamp="ts"))
        config = RecommenderConfig(
            encoder=EncoderConfig(dim=16, hidden=16),
            fit=FitConfig(epochs=1),
            tower=TowerConfig(dim=16),
            tower_fit=FitConfig(epochs=1),
            neumf=NeuMFConfig(dim=8, mlp=(16, 8), epochs=1),
            rerank_positions=2000,
            device="cpu",
        )
        attributes = world.items.select(numbered[1], "category", "price")
        recommender = train_recommender(interactions, config, item_attributes=attributes, progress=False)
        _SMALL["path"] = recommender.save(tmp_path_factory.mktemp("recommender") / "model")
    return _SMALL["path"]


_SMALL: dict[str, Path] = {}


class Crashing:
    """Passes through to ``inner`` for ``chunks`` calls, then raises (a job killed midway)."""

    def __init__(self, inner: Recommender, chunks: int) -> None:
        self.inner, self.chunks, self.calls = inner, chunks, 0
        self.user_ids = inner.user_ids

    def recommend_users(self, user_ids: list, k: int = 10, exclude_seen: bool = True) -> pl.DataFrame:
        self.calls += 1
        if self.calls > self.chunks:
            raise RuntimeError("killed")
        return self.inner.recommend_users(user_ids, k=k, exclude_seen=exclude_seen)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_recommender(tmp_path_factory)


@pytest.fixture()
def recommender(model_path: Path) -> Recommender:
    return Recommender.load(model_path)


def _stored(store: Store, run_id: str) -> pl.DataFrame:
    return store.read("recommendations", where={"run_id": run_id}).drop("run_id").sort("user_id", "rank")


def _expected(recommender: Recommender, users: list, k: int) -> pl.DataFrame:
    """What the model answers for ``users``, as the store holds it."""
    frame = recommender.recommend_users(users, k=k)
    return frame.with_columns(pl.col("score").cast(pl.Float64)).sort("user_id", "rank")


def _assert_same_rows(stored: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Rows written by another process: the same users, ranks and items; scores equal to float32
    rounding (torch's kernels round differently with another thread count or batch shape)."""
    assert stored.drop("score").equals(expected.drop("score"))
    np.testing.assert_allclose(stored["score"].to_numpy(), expected["score"].to_numpy(), rtol=1e-5, atol=1e-5)


def test_writes_each_users_top_k_with_a_run_record(recommender: Recommender) -> None:
    store = Store()
    run_id = recommend_batch(store, recommender, k=5, chunk_size=70, model_path="/models/r", progress=False).run_id
    stored = _stored(store, run_id)
    assert stored.equals(_expected(recommender, recommender.user_ids, 5))
    assert stored.group_by("user_id").len()["len"].unique().to_list() == [5]
    run = store.get_run(run_id)
    assert (run["kind"], run["status"]) == ("recommend", "succeeded")
    assert run["config"] == {"model_path": "/models/r", "k": 5, "exclude_seen": True, "users": 400}
    assert run["metrics"] == {
        "users": 400,
        "users_this_pass": 400,
        "rows": 2000,
        "progress": {"done": 400, "total": 400, "unit": "user"},
    }


def test_given_users_are_scored_once_and_unknown_ones_get_the_fallback(recommender: Recommender) -> None:
    store = Store()
    run_id = recommend_batch(store, recommender, ["3", 3, "stranger", "3"], k=3, progress=False).run_id
    stored = _stored(store, run_id)
    assert stored.equals(_expected(recommender, [3, "stranger"], 3))  # text ids match the model's integer keys
    popular = recommender.recommend("stranger", k=3)
    assert popular.fallback == "popularity"
    items = {user: frame["item_id"].to_list() for (user,), frame in stored.group_by("user_id")}
    assert items["stranger"] == [str(item) for item in popular.items]
    assert items["3"] != items["stranger"]  # a known user gets the model's answer, not the fallback


def test_a_job_killed_midway_resumes_and_leaves_every_row_once(recommender: Recommender) -> None:
    store = Store()
    crashing = Crashing(recommender, chunks=3)
    with pytest.raises(RuntimeError, match="killed"):
        recommend_batch(store, crashing, k=4, chunk_size=64, progress=False)
    (run_id,) = [run["run_id"] for run in store.runs("recommend")]
    assert store.get_run(run_id)["status"] == "failed"
    assert users_written(store, run_id).len() == 192  # three whole chunks, nothing of the fourth

    again = Crashing(recommender, chunks=100)
    assert recommend_batch(store, again, k=4, chunk_size=64, run_id=run_id, progress=False).run_id == run_id
    assert again.calls == 4  # the 208 users left, 64 a chunk: the 192 written are not scored again
    assert _stored(store, run_id).equals(_expected(recommender, recommender.user_ids, 4))
    run = store.get_run(run_id)
    assert (run["status"], run["error"], run["metrics"]["rows"]) == ("succeeded", None, 1600)

    assert recommend_batch(store, again, k=4, run_id=run_id, progress=False).run_id == run_id  # a finished run: no-op
    assert again.calls == 4
    assert store.count("recommendations") == 1600


# A batch job in its own process, slowed to one chunk per 0.05 s so it can be killed midway.
SLOW_JOB = """
import sys, time
from embeddings.store import Store
from recsys.jobs import recommend_batch
from recsys.recommender import Recommender

inner = Recommender.load(sys.argv[2])

class Slow:
    user_ids = inner.user_ids

    def recommend_users(self, user_ids, k=10, exclude_seen=True):
        time.sleep(0.05)
        return inner.recommend_users(user_ids, k=k, exclude_seen=exclude_seen)

recommend_batch(Store(sys.argv[1]), Slow(), k=4, chunk_size=10, progress=False)
"""


def test_a_job_killed_by_sigkill_resumes_and_leaves_every_row_once(
    recommender: Recommender, model_path: Path, tmp_path: Path
) -> None:
    url = default_db_url()
    store = Store(url)
    root = Path(__file__).resolve().parents[2]
    job = subprocess.Popen([sys.executable, "-c", SLOW_JOB, url, str(model_path)], cwd=root, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while store.count("recommendations") == 0 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL, job.stderr.read().decode()
    written = store.count("recommendations")
    assert 0 < written < 1600 and written % 40 == 0  # whole chunks of 10 users x 4 ranks, not all of them
    (run_id,) = [run["run_id"] for run in store.runs("recommend")]
    assert store.get_run(run_id)["status"] == "interrupted"  # killed: its process is gone

    recommend_batch(store, recommender, k=4, chunk_size=10, run_id=run_id, progress=False)
    _assert_same_rows(_stored(store, run_id), _expected(recommender, recommender.user_ids, 4))
    assert store.get_run(run_id)["metrics"]["users_this_pass"] == 400 - written // 4


def test_resume_must_match_the_run(recommender: Recommender) -> None:
    store = Store()
    run_id = recommend_batch(store, recommender, k=4, model_path="/models/a", progress=False).run_id
    with pytest.raises(ConfigError, match=r"started with k=4; resume it with the same k"):
        recommend_batch(store, recommender, k=5, run_id=run_id, progress=False)
    with pytest.raises(ConfigError, match="started with model_path='/models/a'"):
        recommend_batch(store, recommender, k=4, run_id=run_id, model_path="/models/b", progress=False)
    other = store.start_run("synthetic")
    with pytest.raises(ConfigError, match="is a 'synthetic' run, not a 'recommend' run"):
        recommend_batch(store, recommender, run_id=other, progress=False)
    with pytest.raises(ConfigError, match=r"k must be an integer in \[1, 1000\]"):
        recommend_batch(store, recommender, k=0, progress=False)


@pytest.mark.cluster_store
def test_a_batch_on_ray_writes_the_rows_of_the_one_process_batch(tmp_path_factory, ray_address) -> None:
    path = small_recommender(tmp_path_factory)
    recommender = Recommender.load(path)
    store = Store(default_db_url())
    one = recommend_batch(store, recommender, k=5, chunk_size=16, model_path=path, progress=False)
    ray = recommend_batch(store, recommender, k=5, chunk_size=16, model_path=path, progress=False, engine="ray")
    rows = [
        store.read("recommendations", where={"run_id": r.run_id}).drop("run_id").sort("user_id", "rank")
        for r in (one, ray)
    ]
    assert rows[1].equals(rows[0])  # same users, ranks, items and bit-identical scores
    assert rows[1].height == len(recommender.user_ids) * 5
    assert ray.metrics["progress"] == {
        "done": len(recommender.user_ids),
        "total": len(recommender.user_ids),
        "unit": "user",
    }
    with pytest.raises(ConfigError, match="model_path"):
        recommend_batch(store, recommender, k=5, engine="ray", progress=False)

"""Latency of the Recommender on CPU: ``recommend_session``, ``recommend`` and ``similar_items``.

A recommender (default settings: GRU encoder, two-tower retrieval over an exact FAISS index,
NeuMF re-ranking of the top 100) is trained on a synthetic shop with a 3,000-item catalogue,
saved and loaded back; then each call is timed one request at a time (as a service answers
them), after a warm-up. The target: p99 of ``recommend_session`` under 20 ms.

    python -m benchmarks.recommender_latency --out results/recommender_latency.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import Run
from embeddings.data import EventSchema
from embeddings.synthetic import WorldConfig, make_world
from recsys.config import FitConfig, RecommenderConfig
from recsys.data import read_interactions
from recsys.recommender import Recommender
from recsys.train import train_recommender

WORLD = WorldConfig(seed=0, n_items=3000, n_clusters=30, n_users=3000, n_sessions=30_000)
CONFIG = replace(RecommenderConfig(), fit=FitConfig(epochs=2, tokens_per_batch=8192), tower_fit=FitConfig(epochs=1))


def timed(call, arguments: list, warmup: int = 20) -> dict:
    """Per-call wall times (ms) of ``call(*a)`` for each ``a`` in ``arguments``: p50, p99, max."""
    for a in arguments[:warmup]:
        call(*a)
    times = []
    for a in arguments:
        started = time.perf_counter()
        call(*a)
        times.append(1000 * (time.perf_counter() - started))
    times = np.array(times)
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "max_ms": float(times.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    parser.add_argument("--requests", type=int, default=1000, help="timed calls per method")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a service worker uses one)")
    args = parser.parse_args()
    run = Run()
    torch.set_num_threads(args.threads)
    world = make_world(WORLD)
    interactions = read_interactions(world.events, EventSchema(entity="user_id", item="item_id", timestamp="ts"))
    with run.stage("train"):
        trained = train_recommender(
            interactions, CONFIG, item_attributes=world.items.select("item_id", "category", "price"), progress=False
        )
    train_s = run.stages["train"]
    with tempfile.TemporaryDirectory() as tmp:
        recommender = Recommender.load(trained.save(Path(tmp) / "model"))
    rng = np.random.default_rng(0)
    items, users = recommender.item_ids, recommender.user_ids
    sessions = [([items[i] for i in rng.choice(len(items), rng.integers(1, 20))], 10) for _ in range(args.requests)]
    results = {
        "catalogue_items": recommender.n_items,
        "users": recommender.n_users,
        "train_s": train_s,
        "threads": torch.get_num_threads(),
        "recommend_session": timed(recommender.recommend_session, sessions),
        "recommend": timed(recommender.recommend, [(users[i], 10) for i in rng.integers(0, len(users), args.requests)]),
        "similar_items": timed(
            recommender.similar_items, [(items[i], 10) for i in rng.integers(0, len(items), args.requests)]
        ),
    }
    results["recommend_session_p99_ms"] = results["recommend_session"]["p99_ms"]
    run.write(args.out, results)
    print(
        f"{results['catalogue_items']:,} items, {results['users']:,} users, trained in {train_s:.0f} s, {args.threads} thread(s)"
    )
    print(f"{'call':<20}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name in ("recommend_session", "recommend", "similar_items"):
        r = results[name]
        print(f"{name:<20}{r['p50_ms']:9.2f}{r['p99_ms']:9.2f}{r['max_ms']:9.2f}")


if __name__ == "__main__":
    main()

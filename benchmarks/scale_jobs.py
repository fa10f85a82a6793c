"""The nightly jobs in one process and on a local Ray cluster of 2 workers, side by side in one run.

Scoring: the Fraud Detection Handbook's 1,754,155 transactions (../shared/data/fraud-handbook),
scored by a :class:`~fraud.model.FraudModel` trained untimed on the first ``--train-days`` days
(as in ``benchmarks.fraud_throughput``), read from a Parquet file without the label columns,
``--chunk-entities`` cards per chunk, each engine into its own fresh SQLite store.

Top-K: a synthetic world of ``--users`` users (``embeddings.synthetic``). The towers train untimed
for one epoch on the sessions of ``--train-users`` of them (the job measured is the batch, not
training); the :class:`~recsys.recommender.Recommender` holds every user's history, and
``recommend_batch`` writes the top ``--k`` of each of them, each engine into its own store.

Both engines run the same job with the same model, chunks and store kind, one after the other;
the Ray cluster (``ray.init(num_cpus=2)``) is started before either and its start-up is reported
apart (a nightly job joins a running cluster). Torch runs ``--threads`` threads in the one
process and in each Ray actor.

    python -m benchmarks.scale_jobs --out results/scale_jobs.json [--limit N] [--users 200000]

JSON keys: ``score_identical`` / ``recommend_identical`` (the stored rows of the two engines are
equal: same ids, ranks and scores, bit for bit), ``score_ray_overhead`` /
``recommend_ray_overhead`` (Ray wall / one-process wall), and
``score_rows_exactly_once_after_kill``: ``seqemb score --engine ray`` run as a child process is
SIGKILLed once a chunk is stored, then ``--resume RUN --engine ray`` finishes it; true when every
transaction then has exactly one score row and the rows equal the one-process job's.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from benchmarks._common import Run
from benchmarks.fraud_handbook.data import PATH
from benchmarks.fraud_throughput import LABELS, train_model
from embeddings.data import EventSchema
from embeddings.store import Store
from embeddings.synthetic import WorldConfig, make_world
from fraud.jobs import score_batch
from recsys.config import EncoderConfig, FitConfig, RecommenderConfig, TowerConfig
from recsys.data import read_interactions
from recsys.jobs import recommend_batch
from recsys.train import build_recommender, train_models

ENGINES = ("local", "ray")
SCORE_COLUMNS = ("txn_id", "card_id", "score")


def _sqlite(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / f'{name}.db'}"


def _stored_scores(store: Store, run_id: str) -> pl.DataFrame:
    return store.read("fraud_scores", where={"run_id": run_id}).select(SCORE_COLUMNS).sort("txn_id")


def _stored_alerts(store: Store, run_id: str) -> pl.DataFrame:
    return store.read("alerts", where={"run_id": run_id}).select("txn_id", "score").sort("txn_id")


def score_side_by_side(model_dir: Path, source: Path, folder: Path, chunk: int, workers: int) -> dict[str, Any]:
    """Score ``source`` with each engine into a fresh store; the wall times and whether the rows agree."""
    from fraud.model import FraudModel

    model = FraudModel.load(model_dir, device="cpu")
    out: dict[str, Any] = {}
    rows = {}
    for engine in ENGINES:
        store = Store(_sqlite(folder, f"score-{engine}"))
        started = time.perf_counter()
        result = score_batch(
            store, model, str(source), model_path=model_dir, chunk_entities=chunk, engine=engine,
            workers=workers if engine == "ray" else None, progress=False,
        )  # fmt: skip
        out[f"{engine}_seconds"] = round(time.perf_counter() - started, 3)
        out[f"{engine}_transactions"] = int(result.metrics["transactions"])
        rows[engine] = (_stored_scores(store, result.run_id), _stored_alerts(store, result.run_id))
        store.close()
    out["identical"] = all(a.equals(b) for a, b in zip(rows["local"], rows["ray"]))
    out["alerts"] = rows["local"][1].height
    out["reference"] = rows["local"][0]
    return out


def score_after_kill(
    model_dir: Path, source: Path, folder: Path, chunk: int, workers: int, address: str, reference: pl.DataFrame
) -> dict[str, Any]:
    """``seqemb score --engine ray`` killed (SIGKILL) once a chunk is stored, then resumed."""
    url = _sqlite(folder, "score-killed")
    command = [sys.executable, "-c", "from ui.cli import main; main()", "score", str(source), "--model",
               str(model_dir), "--chunk-entities", str(chunk), "--engine", "ray", "--ray-address", address,
               "--workers", str(workers), "--db", url]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    store = Store(url)
    run_id, done, deadline = None, 0, time.monotonic() + 1800
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
        runs = store.runs("score")
        if runs:
            run_id = runs[0]["run_id"]
            done = int(store.read("fraud_scores", where={"run_id": run_id}).height)
            if done:
                break
    killed_with = done
    if child.poll() is not None:
        raise RuntimeError(f"the scoring child ended before it was killed: {child.stderr.read()}")
    child.send_signal(signal.SIGKILL)
    child.wait()
    status = store.get_run(run_id)["status"]
    resumed = subprocess.run([*command, "--resume", run_id], capture_output=True, text=True)
    if resumed.returncode != 0:
        raise RuntimeError(f"the resumed run failed: {resumed.stderr}")
    scores = _stored_scores(store, run_id)
    store.close()
    return {
        "rows_when_killed": killed_with,
        "status_after_kill": status,
        "rows": scores.height,
        "distinct_txn_ids": scores["txn_id"].n_unique(),
        "exactly_once": scores.height == scores["txn_id"].n_unique() == reference.height and scores.equals(reference),
    }


def recommender_world(users: int, train_users: int, seed: int = 0):
    """A Recommender over every user of a synthetic world, its towers trained on ``train_users`` of them."""
    world = make_world(WorldConfig(seed=seed, n_users=users, n_sessions=2 * users, n_items=5_000, n_clusters=50))
    interactions = read_interactions(world.events, EventSchema(entity="user_id", item="item_id", timestamp="ts"))
    config = RecommenderConfig(
        encoder=EncoderConfig(dim=32, hidden=32),
        fit=FitConfig(epochs=1, tokens_per_batch=8192),
        tower=TowerConfig(dim=32),
        tower_fit=FitConfig(epochs=1, tokens_per_batch=8192),
        neumf=None,
        device="cpu",
    )
    sample = np.random.default_rng(seed).choice(interactions.n_users, min(train_users, interactions.n_users), False)
    towers, _, _ = train_models(interactions.sequences.select(np.sort(sample)), len(interactions.vocab), config,
                                None, None, False)  # fmt: skip
    return build_recommender(
        towers, None, interactions.vocab, interactions.users, interactions.sequences, config
    ), interactions


def recommend_side_by_side(model_dir: Path, folder: Path, k: int, workers: int) -> dict[str, Any]:
    """The top-``k`` batch of every user with each engine into a fresh store."""
    from recsys.recommender import Recommender

    recommender = Recommender.load(model_dir)
    out: dict[str, Any] = {"users": len(recommender.user_ids), "k": k}
    rows = {}
    for engine in ENGINES:
        store = Store(_sqlite(folder, f"recommend-{engine}"))
        started = time.perf_counter()
        result = recommend_batch(
            store, recommender, k=k, model_path=model_dir, engine=engine, workers=workers if engine == "ray" else None,
            progress=False,
        )  # fmt: skip
        out[f"{engine}_seconds"] = round(time.perf_counter() - started, 3)
        rows[engine] = store.read("recommendations", where={"run_id": result.run_id}).drop("run_id")
        rows[engine] = rows[engine].sort("user_id", "rank")
        store.close()
    out["rows"] = rows["local"].height
    out["identical"] = rows["local"].equals(rows["ray"])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--limit", type=int, help="score only the first N transactions in time order (default: all)")
    parser.add_argument("--chunk-entities", type=int, default=500, help="cards per scoring chunk (both engines)")
    parser.add_argument("--train-days", type=int, default=7, help="days the fraud model trains on (untimed)")
    parser.add_argument("--users", type=int, default=200_000, help="users of the synthetic world for the top-K job")
    parser.add_argument("--train-users", type=int, default=20_000, help="users whose sessions train the towers")
    parser.add_argument("--k", type=int, default=10, help="items per user")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors (the local cluster has 2 CPUs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the one process and in each actor")
    args = parser.parse_args(argv)
    import ray

    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the actors' torch threads
    torch.set_num_threads(args.threads)
    run = Run()
    results: dict[str, Any] = {"threads": args.threads, "workers": args.workers, "chunk_entities": args.chunk_entities}
    with tempfile.TemporaryDirectory(prefix="scale_jobs-") as tmp:
        folder = Path(tmp)
        with run.stage("setup"):
            source = folder / "transactions.parquet"
            scan = pl.scan_parquet(PATH).sort("TX_DATETIME", maintain_order=True).drop(LABELS, strict=False)
            (scan if args.limit is None else scan.head(args.limit)).sink_parquet(source)
            fraud_dir = train_model(train_days=args.train_days).save(folder / "fraud-model")
            recommender, interactions = recommender_world(args.users, args.train_users)
            recommender_dir = recommender.save(folder / "recommender")
            results["recommend_events"] = interactions.sequences.n_tokens
        started = time.perf_counter()
        context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        results["ray_start_seconds"] = round(time.perf_counter() - started, 3)
        try:
            with run.stage("score"):
                score = score_side_by_side(fraud_dir, source, folder, args.chunk_entities, args.workers)
            reference = score.pop("reference")
            with run.stage("score_kill"):
                kill = score_after_kill(fraud_dir, source, folder, args.chunk_entities, args.workers,
                                        context.address_info["address"], reference)  # fmt: skip
            with run.stage("recommend"):
                recommend = recommend_side_by_side(recommender_dir, folder, args.k, args.workers)
        finally:
            ray.shutdown()
    results.update(
        score=score,
        score_kill=kill,
        recommend=recommend,
        score_identical=score["identical"],
        recommend_identical=recommend["identical"],
        score_ray_overhead=round(score["ray_seconds"] / score["local_seconds"], 3),
        recommend_ray_overhead=round(recommend["ray_seconds"] / recommend["local_seconds"], 3),
        score_rows_exactly_once_after_kill=kill["exactly_once"],
    )
    print(
        f"score {score['local_transactions']:,} tx: one process {score['local_seconds']:.1f} s, Ray "
        f"{score['ray_seconds']:.1f} s (x{results['score_ray_overhead']}), identical {score['identical']}; "
        f"killed at {kill['rows_when_killed']:,} rows and resumed: exactly once {kill['exactly_once']}"
    )
    print(
        f"top-{args.k} of {recommend['users']:,} users: one process {recommend['local_seconds']:.1f} s, Ray "
        f"{recommend['ray_seconds']:.1f} s (x{results['recommend_ray_overhead']}), identical {recommend['identical']}"
    )
    run.write(args.out, results)


if __name__ == "__main__":
    main()

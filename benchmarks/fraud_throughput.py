"""End-to-end batch scoring throughput: a transactions file -> ``fraud_scores`` + ``alerts`` in a fresh store (SQLite, and PostgreSQL with ``--db``).

Data: the Fraud Detection Handbook's simulated transactions (../shared/data/fraud-handbook,
1,754,155 transactions of 4,990 customers, 2018-04-01 .. 2018-09-30; see its SOURCE.md),
entity ``CUSTOMER_ID``, counterparty ``TERMINAL_ID``, id ``TRANSACTION_ID``.

Model (not timed): a :class:`~fraud.model.FraudModel` with the default autoencoder, trained for
``--epochs`` on the first ``--train-days`` days only (training speed is not what is measured;
scores only need a trained model of the production shape). Labels only drop known frauds.

Timed: :func:`fraud.jobs.score_batch` over the first ``--limit`` transactions in time order
(default: all), read from a Parquet file without the label columns (written untimed to a temp
dir) into a fresh SQLite store in a temp dir and, with ``--db URL`` (a PostgreSQL database), into
a fresh schema of that database (dropped afterwards), one after the other in the same run with
the same model: read and checks, step features, GRU autoencoder,
calibration, and the writes (one transaction per chunk of entities: scores and alerts). Torch
runs with ``--threads`` intra-op threads; ``score_batch`` writes chunk k in its writer thread
while it scores chunk k + 1. The per-stage seconds come from timing wrappers put around
``FraudModel.read``, ``step_features``, ``score_steps`` and ``Store.write_all`` for the run:
``write_s`` runs in the writer thread, overlapping the others, so the stages can add up to more
than ``seconds``. ``cpu_s`` is the process CPU time and ``stages_cpu`` the CPU time of each stage
(of the thread that ran it: work in polars' or torch's own worker threads is not counted): on a machine shared with
other work, ``cpu_s / seconds`` shows how much of its cores the run got, and the CPU times are
what the stages cost without the others' load.

Target: >= 1,000,000 transactions per minute (16,667 per second) end to end on 2 CPU cores: by
default one torch thread scores while the writer thread writes, one core each. ``--threads 2``
gives torch both cores as well; on a machine whose cores are busy with other work that is much
slower (torch's threads wait for each other at every small GRU step).

    python -m benchmarks.fraud_throughput --out results/fraud_throughput.json [--db URL] [--limit N] [--threads 2]

The JSON has one result per back-end (``sqlite``, ``postgres``) and ``score_tx_per_s_<backend>``.

:func:`measure_throughput` returns the results as a dict (for benchmarks.fraud_handbook).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import torch

import fraud.model as fraud_model
from benchmarks._common import Run
from benchmarks._stores import backend_name, scratch_store
from benchmarks.fraud_handbook.data import PATH  # (its step_features / score_steps get timed)
from embeddings.store import Store
from fraud.config import AutoencoderConfig, FraudModelConfig, TransactionSchema
from fraud.jobs import score_batch
from fraud.model import FraudModel, train_fraud_model

SCHEMA = TransactionSchema(
    entity="CUSTOMER_ID", counterparty="TERMINAL_ID", amount="TX_AMOUNT", timestamp="TX_DATETIME", label="TX_FRAUD"
)
TRANSACTION_ID = "TRANSACTION_ID"
LABELS = ("TX_FRAUD", "TX_FRAUD_SCENARIO")
TARGET_TX_PER_MIN = 1_000_000


def train_model(path: Path = PATH, *, train_days: int = 7, epochs: int = 1, seed: int = 0) -> FraudModel:
    """A FraudModel trained on the first ``train_days`` days of ``path`` (the last 20 % of them calibrate)."""
    tx = pl.scan_parquet(path).filter(pl.col("TX_TIME_DAYS") < train_days).collect()
    config = FraudModelConfig(AutoencoderConfig(epochs=epochs, seed=seed, device="cpu"), transaction_id=TRANSACTION_ID)
    return train_fraud_model(tx, SCHEMA, config)


@contextlib.contextmanager
def _stage_timers(model: FraudModel, store: Store) -> Iterator[dict[str, float]]:
    """Wall and CPU seconds (the calling thread's) spent in reading, step features, the
    autoencoder and the store writes, while inside: ``{"wall": {...}, "cpu": {...}}``."""
    keys = ("read_s", "features_s", "autoencoder_s", "write_s")
    seconds = {"wall": dict.fromkeys(keys, 0.0), "cpu": dict.fromkeys(keys, 0.0)}

    def timed(key: str, call: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                seconds["wall"][key] += time.perf_counter() - started
                seconds["cpu"][key] += time.thread_time() - cpu

        return wrapper

    saved = fraud_model.step_features, fraud_model.score_steps
    model.read = timed("read_s", model.read)  # instance attributes: gone with the objects
    store.write_all = timed("write_s", store.write_all)
    fraud_model.step_features = timed("features_s", fraud_model.step_features)
    fraud_model.score_steps = timed("autoencoder_s", fraud_model.score_steps)
    try:
        yield seconds
    finally:
        fraud_model.step_features, fraud_model.score_steps = saved
        del model.read, store.write_all


def measure_throughput(
    path: Path = PATH,
    *,
    limit: int | None = None,
    threads: int = 1,
    model: FraudModel | None = None,
    chunk_entities: int = 2000,
    alert_threshold: float = 0.99,
    train_days: int = 7,
    epochs: int = 1,
    progress: bool = False,
    db_url: str | None = None,
) -> dict[str, Any]:
    """Time ``score_batch`` end to end (file -> a fresh store: SQLite, or a new schema of the
    PostgreSQL database ``db_url``) over the first ``limit`` transactions of ``path`` (all when
    None) with ``threads`` torch threads; train a model first when none is given.

    Returns ``score_tx_per_s``, ``score_tx_per_min``, ``transactions``, ``seconds``, ``cpu_s``,
    ``threads``, a ``stages`` breakdown in seconds and the settings.
    """
    results: dict[str, Any] = {
        "data": str(path),
        "limit": limit,
        "chunk_entities": chunk_entities,
        "backend": backend_name(db_url),
    }
    if model is None:
        started = time.perf_counter()
        model = train_model(path, train_days=train_days, epochs=epochs)
        results.update(train_days=train_days, epochs=epochs, train_s=round(time.perf_counter() - started, 3))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="fraud_throughput-") as tmp:
            source = Path(tmp) / "transactions.parquet"
            scan = pl.scan_parquet(path).drop(LABELS, strict=False)
            (scan if limit is None else scan.head(limit)).sink_parquet(source)
            scratch = stack.enter_context(scratch_store(db_url, Path(tmp), prefix="fraud_throughput"))
            store = Store(scratch)
            load = os.getloadavg()[0]
            with _stage_timers(model, store) as stages:
                started, cpu = time.perf_counter(), time.process_time()
                run_id = score_batch(
                    store,
                    model,
                    str(source),
                    chunk_entities=chunk_entities,
                    alert_threshold=alert_threshold,
                    progress=progress,
                ).run_id
                seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
            metrics = store.get_run(run_id)["metrics"]
            store.close()
    finally:
        torch.set_num_threads(previous)
    n = int(metrics["transactions"])
    if metrics["scores"] != n:
        raise RuntimeError(f"scored {metrics['scores']} of {n} transactions")
    results.update(
        transactions=n,
        entities=int(metrics["entities"]),
        alerts=int(metrics["alerts"]),
        seconds=round(seconds, 3),
        cpu_s=round(cpu_s, 3),
        threads=threads,
        score_tx_per_s=round(n / seconds, 1),
        score_tx_per_min=round(60 * n / seconds),
        target_tx_per_min=TARGET_TX_PER_MIN,
        stages={key: round(value, 3) for key, value in stages["wall"].items()},
        stages_cpu={key: round(value, 3) for key, value in stages["cpu"].items()},
        load_average_1min_at_start=round(load, 2),
        cpu_count=os.cpu_count(),
    )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--limit", type=int, help="score only the first N transactions (default: all)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (the store writes run in one more thread)"
    )
    parser.add_argument("--chunk-entities", type=int, default=2000, help="entities per chunk (one transaction each)")
    parser.add_argument("--train-days", type=int, default=7, help="days of data the model trains on (untimed)")
    parser.add_argument("--epochs", type=int, default=1, help="autoencoder epochs (untimed)")
    parser.add_argument("--model", type=Path, help="score with this saved FraudModel (skip training)")
    parser.add_argument("--save-model", type=Path, help="save the trained model here (to reuse with --model)")
    parser.add_argument("--progress", action="store_true", help="show the scoring progress bar")
    parser.add_argument("--db", help="also score into a fresh schema of this PostgreSQL database (SQLAlchemy URL)")
    args = parser.parse_args(argv)
    run = Run()
    results: dict[str, Any] = {}
    if args.model is not None:
        model = FraudModel.load(args.model, device="cpu")
    else:  # one model for every back-end
        with run.stage("train"):
            model = train_model(train_days=args.train_days, epochs=args.epochs)
        results.update(train_days=args.train_days, epochs=args.epochs)
        if args.save_model is not None:
            model.save(args.save_model)
    for db_url in (None, args.db) if args.db else (None,):
        measured = measure_throughput(
            model=model,
            limit=args.limit,
            threads=args.threads,
            chunk_entities=args.chunk_entities,
            progress=args.progress,
            db_url=db_url,
        )
        backend = measured["backend"]
        results[backend] = measured
        results[f"score_tx_per_s_{backend}"] = measured["score_tx_per_s"]
        results[f"score_tx_per_min_{backend}"] = measured["score_tx_per_min"]
        stages = ", ".join(
            f"{key} {value:.1f} (cpu {measured['stages_cpu'][key]:.1f})" for key, value in measured["stages"].items()
        )
        print(
            f"{backend}: {measured['transactions']:,} transactions in {measured['seconds']:.1f} s "
            f"(cpu {measured['cpu_s']:.1f} s, {measured['threads']} torch threads, "
            f"load {measured['load_average_1min_at_start']}): {measured['score_tx_per_s']:,.0f} tx/s = "
            f"{measured['score_tx_per_min']:,} tx/min (target {TARGET_TX_PER_MIN:,}); {stages}"
        )
    if args.out:
        run.write(args.out, results)


if __name__ == "__main__":
    main()

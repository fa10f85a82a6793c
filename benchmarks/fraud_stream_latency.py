"""Latency of scoring one new transaction on CPU with :class:`fraud.stream.StreamScorer`.

A fraud model (merchant vectors = one-hot home region, as in the tests) is trained on the
first 90 % of the time span of a synthetic world, saved and loaded back; a ``StreamScorer`` is
warmed on that history; then the later transactions are scored one call at a time, in time
order (as a service answers them), after a warm-up. Each streamed score is checked against
``FraudModel.score_frame`` over the full frame. For comparison: the batch ``score_frame`` cost
per transaction (amortised over the whole frame), ``score_many`` on batches of 100, and
scoring one transaction without carried state (``FraudModel.score`` of its entity's history
up to the cut-off plus the transaction), and ``FraudModel.read`` of one row alone (the
validation a non-plain mapping or a frame goes through). The target: p99 of ``score`` a few ms.

    python -m benchmarks.fraud_stream_latency --out results/fraud_stream_latency.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from benchmarks._common import Run
from embeddings.synthetic import WorldConfig, make_world
from embeddings.vectors import Embeddings
from fraud.config import AutoencoderConfig, FraudModelConfig, TransactionSchema
from fraud.model import FraudModel, train_fraud_model
from fraud.stream import StreamScorer

SCHEMA = TransactionSchema(label="is_fraud")
CONFIG = FraudModelConfig(AutoencoderConfig(epochs=2, device="cpu"), transaction_id="txn_id")
HISTORY_SHARE = 0.9
NAIVE_REQUESTS = 200
BATCH = 100


def percentiles(times_ms: list[float]) -> dict:
    times = np.array(times_ms)
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "max_ms": float(times.max()),
    }


def timed_calls(call, arguments: list) -> tuple[list, list[float], list[float]]:
    """``call(a)`` for each ``a``, one at a time: results, wall times and this thread's CPU times (ms).

    On a shared machine the wall time includes waiting for a core; the CPU time does not.
    """
    results, times, cpu = [], [], []
    for a in arguments:
        started, cpu_started = time.perf_counter(), time.thread_time()
        results.append(call(a))
        times.append(1000 * (time.perf_counter() - started))
        cpu.append(1000 * (time.thread_time() - cpu_started))
    return results, times, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    parser.add_argument("--requests", type=int, default=2000, help="timed single-transaction calls")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls first (they advance the state too)")
    parser.add_argument("--scale", type=float, default=0.5, help="synthetic world scale (1.0 = 100k transactions)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a service worker uses one)")
    args = parser.parse_args()
    run = Run()
    torch.set_num_threads(args.threads)

    world = make_world(WorldConfig(seed=0).scaled(args.scale))
    merchants = world.merchants
    vectors = Embeddings(
        merchants["merchant_id"].to_list(),
        np.eye(world.config.n_regions, dtype=np.float32)[merchants["region"].to_numpy()],
    )
    transactions = world.transactions.sort("ts", maintain_order=True)
    ts = transactions["ts"]
    cutoff = ts.min() + (ts.max() - ts.min()) * HISTORY_SHARE
    history = transactions.filter(pl.col("ts") < cutoff)
    new = transactions.filter(pl.col("ts") >= cutoff).drop("is_fraud", "fraud_kind")
    if new.height < args.warmup + args.requests:
        parser.error(f"only {new.height} transactions after the cut-off; raise --scale or lower --requests")
    started = time.perf_counter()
    trained = train_fraud_model(history, SCHEMA, CONFIG, vectors)
    train_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        model = FraudModel.load(trained.save(Path(tmp) / "model"), device="cpu")

    scorer = StreamScorer(model)
    started = time.perf_counter()
    entities = scorer.warm(history)
    warm_s = time.perf_counter() - started
    stream = list(new.head(args.warmup + args.requests).iter_rows(named=True))
    for transaction in stream[: args.warmup]:
        scorer.score(transaction)
    results, times, cpu_times = timed_calls(scorer.score, stream[args.warmup :])
    state_bytes = [s.recent.nbytes + s.counterparty_sum.nbytes for s in map(scorer.state, {r.entity for r in results})]

    full = model.read(transactions.drop("is_fraud"))
    started = time.perf_counter()
    batch = model.score_frame(full)
    batch_s = time.perf_counter() - started
    expected = pl.DataFrame({"txn_id": [r.txn_id for r in results]}).join(
        batch, on="txn_id", how="left", maintain_order="left"
    )["raw_score"]
    raw = np.array([r.raw_score for r in results])
    max_rel_diff = float(np.max(np.abs(raw - expected.to_numpy()) / np.abs(expected.to_numpy())))

    # score_many: the next transactions, BATCH at a time.
    rest = new.slice(args.warmup + args.requests)
    chunks = [rest.slice(i, BATCH) for i in range(0, rest.height - BATCH + 1, BATCH)][:20]
    _, many_times, _ = timed_calls(scorer.score_many, chunks)

    # Without carried state: read and score_frame the entity's history plus the new transaction.
    past = history.drop("is_fraud", "fraud_kind")
    naive = [
        pl.concat([past.filter(pl.col("card_id") == t["card_id"]), pl.DataFrame([t], schema=past.schema)])
        for t in stream[args.warmup : args.warmup + NAIVE_REQUESTS]
    ]
    _, naive_times, _ = timed_calls(model.score, naive)
    _, read_times, _ = timed_calls(model.read, [pl.DataFrame([t]) for t in stream[args.warmup :]])

    out = {
        "transactions": transactions.height,
        "history_transactions": history.height,
        "entities_warmed": entities,
        "features": len(scorer.feature_names),
        "window": scorer.window,
        "train_s": train_s,
        "warm_s": warm_s,
        "threads": torch.get_num_threads(),
        "requests": len(times),
        "score": percentiles(times),
        "score_p99_ms": percentiles(times)["p99_ms"],
        "score_cpu": percentiles(cpu_times),
        "read_one_row": percentiles(read_times),
        "max_rel_diff_vs_score_frame": max_rel_diff,
        "state_bytes_per_entity_max": int(max(state_bytes)),
        "score_many_per_txn_ms": float(np.median(many_times)) / BATCH if many_times else None,
        "score_frame_per_txn_ms": 1000 * batch_s / full.height,
        "score_frame_s": batch_s,
        "single_without_state": percentiles(naive_times),
    }
    run.write(args.out, out)
    print(
        f"{out['transactions']:,} transactions, {entities:,} entities warmed in {warm_s:.2f} s, "
        f"{out['features']} features, window {out['window']}, {args.threads} thread(s); "
        f"max relative difference to score_frame {max_rel_diff:.1e}"
    )
    print(f"{'call':<34}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, key in [
        ("score (one transaction)", "score"),
        ("  its CPU time (no waiting)", "score_cpu"),
        ("model.read alone (1 row)", "read_one_row"),
        ("score_frame(history + 1), no state", "single_without_state"),
    ]:
        r = out[key]
        print(f"{name:<34}{r['p50_ms']:9.3f}{r['p99_ms']:9.3f}{r['max_ms']:9.3f}")
    if many_times:
        print(f"score_many per transaction (batches of {BATCH}): {out['score_many_per_txn_ms']:.3f} ms")
    print(f"score_frame per transaction (whole frame, batch): {out['score_frame_per_txn_ms']:.4f} ms")


if __name__ == "__main__":
    main()

"""The dashboard's queries on a large store: 10M transactions and scores, 100k alerts (SQLite, and PostgreSQL with ``--db``).

Fill (timed, reported as rows per second): a fresh store (a SQLite file in a temp dir; with
``--db URL`` also a fresh schema of that PostgreSQL database, dropped afterwards) gets
``--scores`` transactions of ``--cards`` cards at ``--merchants`` merchants over ``--days`` days,
one succeeded ``score`` run with a score for each, and ``--alerts`` of them (a random subset, the
only scores >= 0.99) alerted as the scoring job writes them. Rows go through
:meth:`Store.write` in chunks of ``--chunk`` rows (the bulk path: driver tuples on SQLite, COPY
into a staging table on PostgreSQL). Then ``ANALYZE`` (what autovacuum does on a live server).

Timed, each ``--repeat`` times after one warm-up call (median and the warm-up in ms), through
the dashboard's own functions (:mod:`ui.dashboard.queries`): the alerts tab's

- ``first_page``: the run's alerts, highest score first, page 1, with the count of matches;
- ``card``: the alerts of one card (one that has alerts);
- ``score``: alerts with score >= 0.999;
- ``day``: alerts of one day's transactions;
- ``merchant``: the alerts of one merchant (looked up among its transactions);
- ``page_100``: page 100 of the run's alerts (OFFSET 2475);

and the threshold panel's ``threshold_summary`` (how many alerts the threshold would raise, out
of how many scores) and ``histogram`` (the run's score histogram): the run's recorded counts
(:mod:`fraud.score_counts`) plus one count over the scores at or above the threshold. The JSON key of each is ``<backend>_<query>_ms`` (median). The plans (``EXPLAIN QUERY
PLAN`` on SQLite, ``EXPLAIN`` on PostgreSQL) of the alerts queries are recorded beside them.

Target: every alerts-tab query under 300 ms on both back-ends with 10M scores and 100k alerts.

    python -m benchmarks.store_scale --out results/store_scale.json [--db URL] [--scores 10000000]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import text

from benchmarks._common import Run
from benchmarks._stores import backend_name, scratch_store
from embeddings.store import Store
from fraud.score_counts import recorded_counts
from ui.dashboard import alerts as alerts_tab
from ui.dashboard import queries
from ui.dashboard.queries import AlertFilter

T0 = datetime(2024, 1, 1)
ALERT_FLOOR = 0.99
TARGET_MS = 300


def fill(
    store: Store, *, scores: int, alerts: int, cards: int, merchants: int, days: int, chunk: int, seed: int
) -> dict:
    """Write the transactions, one score run's scores and its alerts; return the run id and rows/s per table."""
    rng = np.random.default_rng(seed)
    alerted = np.zeros(scores, dtype=bool)
    alerted[rng.choice(scores, size=alerts, replace=False)] = True
    run_id = store.start_run("score", {"source": "store_scale", "alert_threshold": ALERT_FLOOR})
    seconds = dict.fromkeys(("transactions", "fraud_scores", "alerts"), 0.0)
    for start in range(0, scores, 1_000_000):
        stop = min(start + 1_000_000, scores)
        n = stop - start
        index = np.arange(start, stop)
        frame = pl.DataFrame(
            {
                "txn_id": pl.Series(index).cast(pl.String).str.zfill(10),
                "card_id": pl.Series(rng.integers(0, cards, n)).cast(pl.String).str.zfill(7),
                "merchant_id": pl.Series(rng.integers(0, merchants, n)).cast(pl.String).str.zfill(6),
                "amount": rng.gamma(2.0, 30.0, n).round(2),
                # In time order, spread evenly over the days.
                "ts": pl.Series(
                    (np.datetime64(T0, "s") + (index * (days * 86_400 / scores)).astype("timedelta64[s]")).astype(
                        "datetime64[us]"
                    )
                ).cast(pl.Datetime("us")),
            }
        )
        mask = alerted[start:stop]
        score = np.where(mask, rng.uniform(ALERT_FLOOR, 1.0, n), rng.uniform(0.0, ALERT_FLOOR, n))
        scored = frame.select("txn_id", "card_id", "ts").with_columns(run_id=pl.lit(run_id), score=score)
        for table, rows in (
            ("transactions", frame),
            ("fraud_scores", scored.select("run_id", "txn_id", "card_id", "score")),
            (
                "alerts",
                scored.filter(pl.Series(mask)).select(
                    (pl.lit(f"{run_id}:") + pl.col("txn_id")).alias("alert_id"),
                    "run_id",
                    "txn_id",
                    "card_id",
                    "score",
                    pl.lit("autoencoder").alias("kind"),
                    pl.lit("open").alias("status"),
                    "ts",
                ),
            ),
        ):
            started = time.perf_counter()
            store.write(table, rows, chunk_size=chunk)
            seconds[table] += time.perf_counter() - started
    store.finish_run(run_id, recorded_counts(store, run_id))  # as a finished score run records them
    counts = {"transactions": scores, "fraud_scores": scores, "alerts": alerts}
    return {
        "run_id": run_id,
        "fill_s": {table: round(value, 1) for table, value in seconds.items()},
        "fill_rows_per_s": {table: round(counts[table] / seconds[table]) for table in counts},
    }


def _analyze(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def _plan(store: Store, statement) -> list[str]:
    """The database's plan for ``statement`` (values inlined: they are this benchmark's own)."""
    sql = str(statement.compile(store.engine, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
    with store.engine.connect() as conn:
        rows = conn.execute(text(prefix + sql)).all()
    return [str(row[-1]) for row in rows]


def _timed(call: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(median ms of ``repeat`` calls, ms of the warm-up call)."""
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return round(statistics.median(times[1:]), 2), round(times[0], 2)


def measure(store: Store, run_id: str, *, days: int, repeat: int) -> dict[str, Any]:
    """Time the dashboard's queries on the filled store; their results and plans beside."""
    alerts = store.read("alerts", where={"run_id": run_id}, columns=["card_id", "txn_id"], limit=1)
    card = alerts["card_id"][0]
    merchant = store.read("transactions", where={"txn_id": alerts["txn_id"][0]})["merchant_id"][0]
    day = T0 + timedelta(days=days // 2)
    filters = {
        "first_page": (AlertFilter(run_id=run_id), 1),
        "card": (AlertFilter(run_id=run_id, card_id=card), 1),
        "score": (AlertFilter(run_id=run_id, min_score=0.999), 1),
        "day": (AlertFilter(run_id=run_id, since=day, until=day + timedelta(days=1)), 1),
        "merchant": (AlertFilter(run_id=run_id, merchant_id=merchant), 1),
        "page_100": (AlertFilter(run_id=run_id), 100),
    }
    results: dict[str, Any] = {"queries": {}}
    for name, (where, page) in filters.items():
        frame, total = queries.alerts_page(store, where, page)
        median, first = _timed(lambda: queries.alerts_page(store, where, page), repeat)
        page_stmt, count_stmt = queries.alerts_page_statements(store, where, page)
        results["queries"][name] = {
            "ms": median,
            "warm_up_ms": first,
            "rows": frame.height,
            "matches": total,
            "plan_page": _plan(store, page_stmt),
            "plan_count": _plan(store, count_stmt),
        }
    for name, call in (
        ("threshold_summary", lambda: alerts_tab.threshold_summary(store, run_id, ALERT_FLOOR)),
        ("histogram", lambda: queries.score_histogram(store, run_id, ALERT_FLOOR)),
    ):
        median, first = _timed(call, repeat)
        results["queries"][name] = {"ms": median, "warm_up_ms": first}
    return results


def run_backend(db_url: str | None, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Fill a scratch store on one back-end and time its queries."""
    with scratch_store(db_url, folder, prefix="store_scale") as url:
        store = Store(url)
        try:
            filled = fill(
                store,
                scores=args.scores,
                alerts=args.alerts,
                cards=args.cards,
                merchants=args.merchants,
                days=args.days,
                chunk=args.chunk,
                seed=args.seed,
            )
            started = time.perf_counter()
            _analyze(store)
            filled["analyze_s"] = round(time.perf_counter() - started, 1)
            return filled | measure(store, filled["run_id"], days=args.days, repeat=args.repeat)
        finally:
            store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--db", help="also measure on a fresh schema of this PostgreSQL database (SQLAlchemy URL)")
    parser.add_argument("--scores", type=int, default=10_000_000, help="transactions, each scored once")
    parser.add_argument("--alerts", type=int, default=100_000, help="alerts (a random subset of the scores)")
    parser.add_argument("--cards", type=int, default=200_000)
    parser.add_argument("--merchants", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--chunk", type=int, default=100_000, help="rows per write transaction")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per query (after one warm-up)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run = Run()
    results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k not in ("out", "db")}}
    results["target_ms"] = TARGET_MS
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="store_scale-")))
        for db_url in (None, args.db) if args.db else (None,):
            backend = backend_name(db_url)
            with run.stage(backend):
                measured = run_backend(db_url, folder, args)
            results[backend] = measured
            for name, query in measured["queries"].items():
                results[f"{backend}_{name}_ms"] = query["ms"]
            shown = ", ".join(f"{name} {query['ms']:.1f}" for name, query in measured["queries"].items())
            print(f"{backend}: fill {measured['fill_rows_per_s']} rows/s; ms: {shown}")
    if args.out:
        run.write(args.out, results)


if __name__ == "__main__":
    main()

"""Building sequences from event files of 1M, 10M and 100M rows: time per event and peak memory.

Data: a synthetic Parquet file per size (written untimed, streamed by polars, to a temp dir):
``user`` text ids ``u<k>`` (one user per 20 events), ``item`` text ids ``i<k>`` (100k items, the
square of a uniform draw picks one, so a few are far more frequent), ``ts`` one second apart.

Timed, each size in a fresh child process, what ``seqemb item2vec`` does with its defaults (no
session gap: a user's whole history is one sequence, min length 2):
:func:`embeddings.event_stream.read_event_table` (the file streamed in batches of
:data:`embeddings.sources.BATCH_ROWS`), :func:`embeddings.data.build_sequences`, keys put back,
then one epoch of item2vec (skip-gram, 64 dimensions, ``--threads`` numba threads). Beside it, up to
``--whole-max`` rows, the path every source took before: :func:`embeddings.data.read_events`
(the file read whole), then the same build and epoch. The peak RSS is the child's, measured
from outside (``os.wait4``). JSON keys per size (``1M``, ``10M``, ``100M``; the streamed path):
``<size>_seconds``, ``<size>_peak_rss_bytes``, ``<size>_bytes_per_event`` (peak RSS / events);
under ``sizes`` the stages' seconds, the CSR arrays' bytes and the read-whole figures.

Targets: peak RSS <= 12 GiB at 100M rows; seconds per event at 100M within 1.3x of 10M.

    python -m benchmarks.data_scale --out results/data_scale.json [--sizes 1000000 10000000 100000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks._common import Run, size_label

SIZES = (1_000_000, 10_000_000, 100_000_000)
EVENTS_PER_USER = 20
ITEMS = 100_000
TARGET_RSS_GIB = 12.0
TARGET_SCALING = 1.3


def write_events(path: Path, rows: int, seed: int = 0) -> None:
    """The synthetic events file of the module doc, written by a streaming query."""
    i = pl.int_range(0, rows, dtype=pl.Int64)
    uniform = pl.col("i").hash(seed) / float(2**64)
    frame = (
        pl.LazyFrame()
        .select(i.alias("i"))
        .select(
            user=pl.format("u{}", pl.col("i").hash(seed + 1) % max(1, rows // EVENTS_PER_USER)),
            item=pl.format("i{}", (uniform * uniform * ITEMS).cast(pl.Int64)),
            ts=pl.lit(datetime(2024, 1, 1)) + pl.duration(seconds=pl.col("i")),
        )
    )
    frame.sink_parquet(path)


def build(path: str, mode: str, threads: int) -> dict[str, Any]:
    """One measured run (in a child process): ``mode`` "stream" or "whole"."""
    from embeddings.data import EventSchema, build_sequences, read_events
    from embeddings.event_stream import EventTable, read_event_table
    from embeddings.sgns import item2vec
    from embeddings.sgns_config import SGNSConfig

    schema = EventSchema(entity="user", item="item", timestamp="ts")
    started, cpu = time.perf_counter(), time.process_time()
    if mode == "stream":
        table = read_event_table(path, schema)
    else:
        events, report = read_events(path, schema)
        table = EventTable(events, report)
    built = table.keyed(build_sequences(table.events, min_length=2))
    read_s = time.perf_counter() - started
    config = SGNSConfig(dim=64, epochs=1, workers=threads, backend="numba", device="cpu")
    _, result = item2vec(built.sequences, built.vocab, config, progress=False)
    seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "seconds": round(seconds, 3),
        "read_and_build_s": round(read_s, 3),
        "epoch_s": round(result.seconds, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
        "sequences": len(built.sequences),
        "tokens": built.sequences.n_tokens,
        "vocab": len(built.vocab),
        "csr_gib": round((built.sequences.tokens.nbytes + built.sequences.offsets.nbytes) / 2**30, 3),
    }


def _child(path: Path, mode: str, rows: int, threads: int) -> dict[str, Any]:
    """:func:`build` in a child process, with the child's peak RSS as its parent sees it."""
    code = f"import json, benchmarks.data_scale as b; print(json.dumps(b.build({str(path)!r}, {mode!r}, {threads})))"
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe read to its end: two could fill and block the child
        text=True,
        cwd=Path(__file__).parents[1],
    )
    lines = child.stdout.read().strip().splitlines()
    _, status, usage = os.wait4(child.pid, 0)  # reaps the child, with its own resource usage
    if os.waitstatus_to_exitcode(status) != 0:
        return {"mode": mode, "failed": lines[-1:]}
    measured = json.loads(lines[-1])
    measured["rows"] = rows
    measured["s_per_event"] = measured["seconds"] / rows
    measured["peak_rss_bytes"] = usage.ru_maxrss * 1024  # Linux reports KiB
    measured["peak_rss_gib"] = round(measured["peak_rss_bytes"] / 2**30, 3)
    return measured


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="rows of each events file")
    parser.add_argument("--whole-max", type=int, default=10_000_000, help="read whole only files up to this many rows")
    parser.add_argument("--folder", type=Path, help="where to write the files (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="numba threads of the epoch")
    args = parser.parse_args(argv)
    run = Run()
    results: dict[str, Any] = {"sizes": {}, "events_per_user": EVENTS_PER_USER, "items": ITEMS}
    with tempfile.TemporaryDirectory(prefix="data_scale-", dir=args.folder) as tmp:
        for rows in args.sizes:
            path = Path(tmp) / f"events-{rows}.parquet"
            with run.stage(f"write_{rows}"):
                write_events(path, rows)
            measured = {"file_gib": round(path.stat().st_size / 2**30, 3), "load_at_start": os.getloadavg()[0]}
            with run.stage(f"build_{rows}"):
                measured["stream"] = _child(path, "stream", rows, args.threads)
                if rows <= args.whole_max:
                    measured["whole"] = _child(path, "whole", rows, args.threads)
            results["sizes"][str(rows)] = measured
            stream = measured["stream"]
            if "seconds" in stream:
                results[f"{size_label(rows)}_seconds"] = stream["seconds"]
                results[f"{size_label(rows)}_peak_rss_bytes"] = stream["peak_rss_bytes"]
                results[f"{size_label(rows)}_bytes_per_event"] = round(stream["peak_rss_bytes"] / rows, 1)
            path.unlink()
            line = ", ".join(
                f"{m['mode']} {m['seconds']:.1f} s ({m['s_per_event'] * 1e9:.0f} ns/event), peak {m['peak_rss_gib']} GiB"
                if "seconds" in m
                else f"{m['mode']} failed: {m['failed']}"
                for m in (measured.get("stream"), measured.get("whole"))
                if m is not None
            )
            print(f"{rows:,} rows ({measured['file_gib']} GiB file): {line}", flush=True)
    sizes = sorted(int(s) for s in results["sizes"])
    largest, previous = (sizes[-1], sizes[-2]) if len(sizes) > 1 else (sizes[-1], None)
    top = results["sizes"][str(largest)]["stream"]
    if "seconds" in top:
        results["peak_rss_gib_at_largest"] = top["peak_rss_gib"]
        results["peak_rss_target_gib"] = TARGET_RSS_GIB
        if previous is not None and "seconds" in results["sizes"][str(previous)]["stream"]:
            ratio = top["s_per_event"] / results["sizes"][str(previous)]["stream"]["s_per_event"]
            results["s_per_event_ratio_largest_to_previous"] = round(ratio, 3)
            results["scaling_target"] = TARGET_SCALING
    run.write(args.out, results)


if __name__ == "__main__":
    main()

"""Open-loop load on ``seqemb serve`` (loopback): where the service's knee is and how it holds past it.

The demo's recommender (``seqemb demo --no-ui --scale S`` in a temporary ``SEQEMB_HOME``, or
``--model DIR``) is served by ``seqemb serve --workers W --threads T``. The generator sends each
request at its scheduled time whatever happened to the earlier ones (open loop, so a slow server
cannot slow the offered load down) and times it from that scheduled time. The mix is a client's:
50% ``GET /recommend`` of a known user, 25% ``POST /recommend/session`` of 5 items, 15%
``GET /similar``, 10% malformed (k=0, bad JSON, an over-long URL, k=true), and ``/health`` probed
at 10 per second besides. Phases: a step series (``--steps``) whose knee is the highest rate with
goodput at least 95% of it, then 200 req/s for 60 s, then twice the knee for 20 s.

Per step: sent, answered, a status histogram, p50/p99 per endpoint, goodput (answers within 1 s,
per second) and the server's CPU seconds and RSS. The generator runs on the same machine: its
own CPU use is recorded too. Keys: ``knee_rps``, ``goodput_at_200``, ``p99_ms_at_200``,
``health_p99_ms_overload``, ``goodput_overload_ratio`` (goodput at twice the knee over goodput at
the knee) and ``count_5xx`` (5xx other than admission control's 503).

    pip install -e '.[bench]'   # aiohttp, the load generator
    python -m benchmarks.service_load --workers 2 --threads 1 --out results/service_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil

from benchmarks._common import ROOT, Run

GOOD_WITHIN_S = 1.0
TIMEOUT_S = 5.0
HEALTH_RPS = 10


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seqemb(*args: str) -> list[str]:
    return [sys.executable, "-c", "from ui.cli import main; main()", *args]


def demo_model(home: Path, scale: float) -> Path:
    """Train the demo's recommender in ``home`` and return its directory."""
    env = {**os.environ, "SEQEMB_HOME": str(home)}
    env.pop("SEQEMB_DB_URL", None)
    subprocess.run(_seqemb("demo", "--no-ui", "--scale", str(scale)), env=env, cwd=ROOT, check=True)
    return max((home / "models").glob("recommender-*"), key=lambda p: p.stat().st_mtime)


def _requests(rng: random.Random, users: list[str], items: list[str]) -> tuple[str, str, str, dict[str, Any]]:
    """One request of the mix: (endpoint name, method, path, httpx keyword arguments)."""
    draw = rng.random()
    if draw < 0.50:
        return "recommend", "GET", "/recommend", {"params": {"user_id": rng.choice(users), "k": "10"}}
    if draw < 0.75:
        session = {"item_ids": rng.sample(items, 5), "k": 10}
        return "session", "POST", "/recommend/session", {"json": session}
    if draw < 0.90:
        return "similar", "GET", "/similar", {"params": {"item_id": rng.choice(items), "k": "10"}}
    bad = [
        ("GET", "/recommend", {"params": {"user_id": rng.choice(users), "k": "0"}}),
        ("POST", "/recommend/session", {"data": b'{"item_ids": [1,', "headers": {"content-type": "application/json"}}),
        ("GET", "/similar", {"params": {"item_id": "x" * 10_000}}),
        ("POST", "/recommend/session", {"json": {"item_ids": [items[0]], "k": True}}),
    ]
    method, path, kwargs = rng.choice(bad)
    return "malformed", method, path, kwargs


async def _step(client: aiohttp.ClientSession, rate: float, seconds: float, rng, users, items) -> list[dict[str, Any]]:
    """Send ``rate`` requests a second for ``seconds`` (plus the health probes); return one record each."""
    records: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()

    async def send(scheduled: float, name: str, method: str, path: str, kwargs: dict[str, Any]) -> None:
        try:
            async with client.request(method, path, **kwargs) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            status = type(exc).__name__
        records.append({"endpoint": name, "status": status, "latency": loop.time() - scheduled})

    schedule = [(i / rate, *_requests(rng, users, items)) for i in range(int(rate * seconds))]
    schedule += [(i / HEALTH_RPS, "health", "GET", "/health", {}) for i in range(int(HEALTH_RPS * seconds))]
    schedule.sort(key=lambda entry: entry[0])
    start = loop.time()
    tasks = []
    for offset, name, method, path, kwargs in schedule:
        delay = start + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(start + offset, name, method, path, kwargs)))
    await asyncio.gather(*tasks)
    return records


def _summary(records: list[dict[str, Any]], rate: float, seconds: float, cpu: float, rss: int, own_cpu: float) -> dict:
    load = [r for r in records if r["endpoint"] != "health"]
    answered = [r for r in load if isinstance(r["status"], int)]
    good = [r for r in answered if r["latency"] <= GOOD_WITHIN_S and r["status"] < 500]
    by_endpoint = {}
    for name in ("recommend", "session", "similar", "malformed", "health"):
        times = np.array([r["latency"] for r in records if r["endpoint"] == name and isinstance(r["status"], int)])
        if times.size:
            by_endpoint[name] = {
                "p50_ms": round(float(np.percentile(times, 50)) * 1000, 2),
                "p99_ms": round(float(np.percentile(times, 99)) * 1000, 2),
            }
    return {
        "rate_rps": rate,
        "seconds": seconds,
        "sent": len(load),
        "answered": len(answered),
        "statuses": dict(Counter(str(r["status"]) for r in load)),
        "health_statuses": dict(Counter(str(r["status"]) for r in records if r["endpoint"] == "health")),
        "goodput_rps": round(len(good) / seconds, 2),
        "latency": by_endpoint,
        "server_cpu_seconds": round(cpu, 2),
        "server_rss_mib": round(rss / 2**20, 1),
        "generator_cpu_seconds": round(own_cpu, 2),
    }


def _server_usage(server: psutil.Process) -> tuple[float, int]:
    processes = [server, *server.children(recursive=True)]
    cpu, rss = 0.0, 0
    for process in processes:
        try:
            times = process.cpu_times()
            cpu += times.user + times.system
            rss += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return cpu, rss


async def _phase(url, server, rate, seconds, rng, users, items) -> dict[str, Any]:
    me = psutil.Process()
    connector = aiohttp.TCPConnector(limit=1000)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout) as client:
        cpu_before, _ = _server_usage(server)
        own_before = sum(me.cpu_times()[:2])
        records = await _step(client, rate, seconds, rng, users, items)
        cpu_after, rss = _server_usage(server)
        own = sum(me.cpu_times()[:2]) - own_before
    summary = _summary(records, rate, seconds, cpu_after - cpu_before, rss, own)
    print(json.dumps({k: summary[k] for k in ("rate_rps", "sent", "answered", "goodput_rps", "statuses", "latency")}))
    return summary


def _wait_ready(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"seqemb serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("seqemb serve did not answer /health in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="Recommender directory (default: train the demo's).")
    parser.add_argument("--demo-scale", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-in-flight", type=int)
    parser.add_argument("--steps", default="25,50,100,150,200,300", help="Rates of the step series (req/s).")
    parser.add_argument("--step-seconds", type=float, default=10)
    parser.add_argument("--hold-seconds", type=float, default=60, help="Seconds at 200 req/s.")
    parser.add_argument("--overload-seconds", type=float, default=20, help="Seconds at twice the knee.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run = Run()

    with tempfile.TemporaryDirectory() as tmp:
        with run.stage("model"):
            model = args.model or demo_model(Path(tmp) / "home", args.demo_scale)
        from recsys.recommender import Recommender

        loaded = Recommender.load(model)
        users = [str(u) for u in loaded.user_ids[:2000]]
        items = [str(i) for i in loaded.catalogue.to_list()[:2000]]
        del loaded
        port = _port()
        url = f"http://127.0.0.1:{port}"
        serve = ["serve", "--model", str(model), "--port", str(port), "--workers", str(args.workers),
                 "--threads", str(args.threads)]  # fmt: skip
        if args.max_in_flight:
            serve += ["--max-in-flight", str(args.max_in_flight)]
        env = {k: v for k, v in os.environ.items() if k != "SEQEMB_API_KEY"}
        server = subprocess.Popen(_seqemb(*serve), env=env, cwd=ROOT)
        try:
            _wait_ready(url, server)
            process = psutil.Process(server.pid)
            rng = random.Random(args.seed)
            steps = []
            with run.stage("steps"):
                for rate in [float(r) for r in args.steps.split(",")]:
                    steps.append(asyncio.run(_phase(url, process, rate, args.step_seconds, rng, users, items)))
            holding = [s for s in steps if s["goodput_rps"] >= 0.95 * s["rate_rps"]]
            knee = max((s["rate_rps"] for s in holding), default=steps[0]["rate_rps"])
            with run.stage("hold_200"):
                hold = asyncio.run(_phase(url, process, 200.0, args.hold_seconds, rng, users, items))
            with run.stage("overload"):
                overload = asyncio.run(_phase(url, process, 2 * knee, args.overload_seconds, rng, users, items))
        finally:
            server.terminate()
            server.wait(30)

    knee_goodput = next(s["goodput_rps"] for s in steps if s["rate_rps"] == knee)
    phases = [*steps, hold, overload]
    count_5xx = sum(
        n for p in phases for status, n in p["statuses"].items() if status.startswith("5") and status != "503"
    )
    results = {
        "settings": {
            "workers": args.workers,
            "threads": args.threads,
            "max_in_flight": args.max_in_flight or 2 * args.threads,
            "model": str(args.model) if args.model else f"demo --scale {args.demo_scale}",
            "generator": "aiohttp on the same machine (its CPU is recorded per step)",
        },
        "knee_rps": knee,
        "goodput_at_200": hold["goodput_rps"],
        "p99_ms_at_200": {name: v["p99_ms"] for name, v in hold["latency"].items()},
        "health_p99_ms_overload": overload["latency"].get("health", {}).get("p99_ms"),
        "goodput_overload_ratio": round(overload["goodput_rps"] / knee_goodput, 3) if knee_goodput else None,
        "count_5xx": count_5xx,
        "count_503": sum(p["statuses"].get("503", 0) for p in phases),
        "steps": steps,
        "hold_200": hold,
        "overload": overload,
    }
    print(json.dumps({k: v for k, v in results.items() if k not in ("steps", "hold_200", "overload")}, indent=2))
    run.write(args.out, results)


if __name__ == "__main__":
    main()

"""node2vec speed on BlogCatalog: seqemb against PecanPy and fastnode2vec, same settings, one run.

Measured for (p, q) = (1, 1) and (0.25, 4), each side with the same number of worker
threads (``--workers``, 2 by default), walks of 80 nodes, 10 walks per node, d = 128,
window 10, 5 negatives, one skip-gram epoch:

- ``walk_steps_per_s``: nodes in all walks / seconds of the walk call, as a user makes it
  (seqemb: ``random_walks``, timed inside ``node2vec_with_stats``; PecanPy:
  ``simulate_walks``, which includes its transition preprocessing and its mapping of walks
  to id strings, while ``walk_kernel_steps_per_s`` times its preprocessing and compiled walk
  loop alone; fastnode2vec: ``generate_random_walk`` for every start, the call its gensim
  workers make, on the same number of threads).
- ``total_s``: end to end, from reading ``blogcatalog.mat`` to the ``(n, d)`` vectors:
  building the graph, the walks, skip-gram, vectors (seqemb: ``Graph.from_scipy`` +
  ``node2vec_with_stats``; PecanPy: its graph object + ``embed``; fastnode2vec: its
  ``Graph`` + ``Node2Vec.train``; both peers train with gensim ``Word2Vec``).

Each peer runs in its own virtual environment (PecanPy pins numpy < 2), created on first
use under ``--cache`` (default ``~/.cache/seqemb-bench/<peer>``) with ``python -m venv`` and
``pip install``, and is called in a subprocess: this same file with ``--peer``, which then
imports nothing but numpy, scipy and the peer. Every side first runs a small graph
untimed, so timings exclude one-off compilation where a library allows it (PecanPy compiles
its walk loop again for every graph object; that stays in its numbers).

PecanPy's mode is its fastest for this graph, measured here on 2 threads at p=0.25, q=4
(walks only): PreComp 27 s preprocessing + 11 s walks, SparseOTF 72 s, DenseOTF 386 s;
at p = q = 1 its FirstOrderUnweighted mode (no second-order work at all) is the fastest.
``peer_*`` keys report the peer with the smallest ``total_s`` at each setting (top level:
p = q = 1; every side and setting under ``settings``); ``fastest_walk_peer*`` the peer
whose walks are fastest.

    python -m benchmarks.node2vec_speed --out results/node2vec_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse

from benchmarks._common import DATA, Run

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("SEQEMB_BENCH_CACHE", Path.home() / ".cache" / "seqemb-bench"))
PEERS = {"pecanpy": "pecanpy==2.0.9", "fastnode2vec": "fastnode2vec==0.0.7"}
SETTINGS = ((1.0, 1.0), (0.25, 4.0))
WARMUP_NODES = 300


def setting_name(p: float, q: float) -> str:
    return f"p{p:g}_q{q:g}"


def read_network(path: Path):
    """BlogCatalog's symmetric adjacency as CSR with sorted rows."""
    network = scipy.io.loadmat(path)["network"].tocsr()
    network.sort_indices()
    return network


# --- seqemb (this process) ------------------------------------------------------------------
def run_ours(path: Path, p: float, q: float, params: dict) -> dict:
    from embeddings.graph import Graph
    from embeddings.graph.config import Node2VecConfig
    from embeddings.graph.node2vec import node2vec_with_stats

    config = Node2VecConfig(
        dim=params["dim"], walk_length=params["walk_length"], walks_per_node=params["walks_per_node"],
        window=params["window"], negative=params["negative"], epochs=params["epochs"], p=p, q=q,
        seed=params["seed"], workers=params["workers"],
    )  # fmt: skip
    warm, _ = Graph.from_scipy(read_network(path)[:WARMUP_NODES, :WARMUP_NODES])
    node2vec_with_stats(warm, config, progress=False)

    start = time.perf_counter()
    graph, _ = Graph.from_scipy(read_network(path))
    load_s = time.perf_counter() - start
    result = node2vec_with_stats(graph, config, progress=False)
    total_s = time.perf_counter() - start
    nodes_walked = result.walk_steps + result.walks
    return {
        "name": "seqemb",
        "load_s": load_s,
        "walk_s": result.walk_seconds,
        "walk_steps": nodes_walked,
        "walk_steps_per_s": nodes_walked / result.walk_seconds,
        "train_s": total_s - load_s - result.walk_seconds,
        "total_s": total_s,
        "vectors": list(result.embeddings.vectors.shape),
    }


# --- peers (a subprocess in the peer's own environment) ------------------------------------
def peer_python(peer: str, cache: Path) -> Path:
    """The peer's interpreter, creating its virtual environment on first use."""
    venv = cache / peer
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} and installing {PEERS[peer]} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PEERS[peer]], check=True)
    return python


def run_peer(peer: str, path: Path, p: float, q: float, params: dict, cache: Path) -> dict:
    """Run this module with ``--peer`` in the peer's environment; returns its JSON line."""
    threads = str(params["workers"])
    env = {**os.environ, "NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    command = [str(peer_python(peer, cache)), "-m", "benchmarks.node2vec_speed", "--peer", peer, "--network", str(path),
               "--p", str(p), "--q", str(q), "--params", json.dumps(params)]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{peer} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pecanpy_graph(mode: str, network, p: float, q: float, params: dict):
    from pecanpy import pecanpy

    graph = getattr(pecanpy, mode)(p=p, q=q, workers=params["workers"], verbose=False, random_state=params["seed"])
    graph.indptr = network.indptr.astype(np.uint32)
    graph.indices = network.indices.astype(np.uint32)
    graph.data = network.data.astype(np.float32)
    graph.set_node_ids([str(i) for i in range(network.shape[0])])
    return graph


def peer_pecanpy(path: Path, p: float, q: float, params: dict) -> dict:
    mode = "FirstOrderUnweighted" if p == q == 1 else "PreComp"
    # PecanPy's walks have walk_length + 1 nodes: ask for one step less to get the same walks.
    steps = params["walk_length"] - 1
    embed_args = {"dim": params["dim"], "num_walks": params["walks_per_node"], "walk_length": steps,
                  "window_size": params["window"], "epochs": params["epochs"]}  # fmt: skip
    pecanpy_graph(mode, read_network(path)[:WARMUP_NODES, :WARMUP_NODES], p, q, params).embed(**embed_args)

    timers: dict[str, float] = {}
    counted: dict[str, int] = {}

    def timed(name, function):
        def call(*args, **kwargs):
            start = time.perf_counter()
            out = function(*args, **kwargs)
            timers[name] = timers.get(name, 0.0) + time.perf_counter() - start
            if name == "walks":
                counted["steps"] = sum(map(len, out))
            return out

        return call

    start = time.perf_counter()
    graph = pecanpy_graph(mode, read_network(path), p, q, params)
    load_s = time.perf_counter() - start
    # Instance attributes shadow the methods that embed() and simulate_walks() call.
    graph.simulate_walks = timed("walks", graph.simulate_walks)
    graph._random_walks = timed("kernel", graph._random_walks)
    graph.preprocess_transition_probs = timed("preprocess", graph.preprocess_transition_probs)
    vectors = graph.embed(**embed_args)
    total_s = time.perf_counter() - start
    return {
        "name": f"pecanpy ({mode})",
        "mode": mode,
        "load_s": load_s,
        "walk_s": timers["walks"],
        "preprocess_s": timers.get("preprocess", 0.0),
        "walk_kernel_s": timers["kernel"],
        "walk_steps": counted["steps"],
        "walk_steps_per_s": counted["steps"] / timers["walks"],
        "walk_kernel_steps_per_s": counted["steps"] / (timers["kernel"] + timers.get("preprocess", 0.0)),
        "train_s": total_s - load_s - timers["walks"],
        "total_s": total_s,
        "vectors": list(np.asarray(vectors).shape),
    }


def fastnode2vec_graph(network):
    from fastnode2vec import Graph

    upper = scipy.sparse.triu(network, k=1).tocoo()
    return Graph(zip(upper.row.tolist(), upper.col.tolist()), directed=False, weighted=False, verbose=False)


def peer_fastnode2vec(path: Path, p: float, q: float, params: dict) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from fastnode2vec import Node2Vec

    def embed(graph) -> np.ndarray:
        model = Node2Vec(graph, dim=params["dim"], walk_length=params["walk_length"], window=params["window"],
                         p=p, q=q, workers=params["workers"], negative=params["negative"])  # fmt: skip
        model.train(epochs=params["walks_per_node"] * params["epochs"], verbose=False)
        return model.wv[graph.node_names]

    embed(fastnode2vec_graph(read_network(path)[:WARMUP_NODES, :WARMUP_NODES]))

    start = time.perf_counter()
    graph = fastnode2vec_graph(read_network(path))
    load_s = time.perf_counter() - start
    vectors = embed(graph)
    total_s = time.perf_counter() - start

    # Walks alone, made by the call its training workers make, on as many threads.
    starts = np.tile(np.arange(len(graph.node_names)), params["walks_per_node"])
    chunks = np.array_split(starts, 64 * params["workers"])

    def walk(chunk: np.ndarray) -> int:
        return sum(len(graph.generate_random_walk(params["walk_length"], p, q, int(s))) for s in chunk)

    walk_start = time.perf_counter()
    with ThreadPoolExecutor(params["workers"]) as pool:
        steps = sum(pool.map(walk, chunks))
    walk_s = time.perf_counter() - walk_start
    return {
        "name": "fastnode2vec",
        "load_s": load_s,
        "walk_s": walk_s,
        "walk_steps": steps,
        "walk_steps_per_s": steps / walk_s,
        "train_s": total_s - load_s,
        "total_s": total_s,
        "vectors": list(vectors.shape),
        "note": "walks are drawn inside gensim's workers while training; train_s includes them",
    }


# --- driver ----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding blogcatalog/")
    parser.add_argument("--peers", nargs="*", choices=list(PEERS), default=list(PEERS))
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the peers' environments live")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peer", choices=list(PEERS), help=argparse.SUPPRESS)
    parser.add_argument("--network", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--p", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--q", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    args = parser.parse_args()
    run = Run()
    if args.peer:
        measure = peer_pecanpy if args.peer == "pecanpy" else peer_fastnode2vec
        print(json.dumps(measure(args.network, args.p, args.q, json.loads(args.params))))
        return
    if args.out is None:
        parser.error("--out is required")

    path = args.data / "blogcatalog" / "blogcatalog.mat"
    params = {"dim": 128, "walk_length": 80, "walks_per_node": 10, "window": 10, "negative": 5,
              "epochs": args.epochs, "workers": args.workers, "seed": args.seed}  # fmt: skip
    results: dict = {"graph": "blogcatalog (10,312 nodes, 333,983 edges)", "params": params, "settings": {}}
    for p, q in SETTINGS:
        name = setting_name(p, q)
        ours = run_ours(path, p, q, params)
        print(f"{name} seqemb: {json.dumps(ours)}", flush=True)
        peers = {}
        for peer in args.peers:
            peers[peer] = run_peer(peer, path, p, q, params, args.cache)
            print(f"{name} {peer}: {json.dumps(peers[peer])}", flush=True)
        entry = {"ours": ours, "peers": peers}
        if peers:
            best = min(peers, key=lambda peer: peers[peer]["total_s"])
            fastest_walks = max(peers, key=lambda peer: peers[peer]["walk_steps_per_s"])
            entry |= {
                "peer_name": peers[best]["name"],
                "ours_walk_steps_per_s": ours["walk_steps_per_s"],
                "peer_walk_steps_per_s": peers[best]["walk_steps_per_s"],
                "ours_total_s": ours["total_s"],
                "peer_total_s": peers[best]["total_s"],
                "fastest_walk_peer": peers[fastest_walks]["name"],
                "fastest_walk_peer_steps_per_s": peers[fastest_walks]["walk_steps_per_s"],
            }
        results["settings"][name] = entry
    # The headline keys are those of p = q = 1.
    results |= {k: v for k, v in results["settings"][setting_name(*SETTINGS[0])].items() if k not in ("ours", "peers")}

    print(f"\n{'setting':<10}{'side':<34}{'walk Msteps/s':>14}{'walk s':>9}{'train s':>9}{'total s':>9}")
    for name, entry in results["settings"].items():
        for side in [entry["ours"], *entry["peers"].values()]:
            print(f"{name:<10}{side['name']:<34}{side['walk_steps_per_s'] / 1e6:>14.2f}{side['walk_s']:>9.2f}"
                  f"{side['train_s']:>9.2f}{side['total_s']:>9.2f}")  # fmt: skip
    run.write(args.out, results)


if __name__ == "__main__":
    main()

"""node2vec: biased random walks + skip-gram with negative sampling = node embeddings.

:func:`node2vec` walks the graph (:func:`embeddings.graph.walks.random_walks`, return parameter
``p``, in-out parameter ``q``), counts how often each node occurs in the walks and trains
the shared SGNS trainer (:mod:`embeddings.sgns`) on the walks as sentences: for every node
``c`` of a walk and every node ``o`` within the window around it, maximise

    log σ(u_o · v_c) + Σ_{k=1..negative} log σ(-u_k · v_c),

negatives ``k`` drawn ∝ ``count**0.75``. The node vectors are the ``v``. A node that no
walk visits (an isolated node) gets no vector; the count of such nodes comes back in
:class:`Node2VecResult` and is logged.

The card-merchant graph of a transaction table and vectors for cards unseen at training are
:mod:`embeddings.graph.transactions`; the job that reads, trains, saves and records is
:func:`embeddings.jobs.run_node2vec`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from embeddings.errors import DataError
from embeddings.graph.config import Node2VecConfig
from embeddings.graph.graph import Graph
from embeddings.graph.walks import random_walks
from embeddings.sgns import SGNSResult, train_sgns
from embeddings.vectors import Embeddings

log = logging.getLogger(__name__)


@dataclass
class Node2VecResult:
    """Embeddings and what it took to make them.

    ``walks`` and ``walk_steps`` (moves along an arc) count the walks;
    ``walk_steps_per_s`` = ``walk_steps / walk_seconds``; ``nodes_without_vector`` counts
    the nodes no walk visited (they have no row in ``embeddings``).
    """

    embeddings: Embeddings
    walks: int
    walk_steps: int
    walk_seconds: float
    train_seconds: float
    nodes_without_vector: int
    sgns: SGNSResult

    @property
    def walk_steps_per_s(self) -> float:
        return self.walk_steps / self.walk_seconds if self.walk_seconds > 0 else 0.0

    def metrics(self) -> dict[str, Any]:
        """The statistics as plain numbers, for a run record or ``model.json``."""
        return {
            "nodes": len(self.embeddings),
            "nodes_without_vector": self.nodes_without_vector,
            "walks": self.walks,
            "walk_steps": self.walk_steps,
            "walk_seconds": round(self.walk_seconds, 3),
            "walk_steps_per_s": round(self.walk_steps_per_s),
            "train_seconds": round(self.train_seconds, 3),
            "train_items_per_s": round(self.sgns.items_per_s),
            "final_loss": self.sgns.epoch_loss[-1] if self.sgns.epoch_loss else None,
            "backend": self.sgns.backend,
        }


def node2vec_with_stats(graph: Graph, config: Node2VecConfig | None = None, progress: bool = True) -> Node2VecResult:
    """Walk ``graph``, train SGNS on the walks and return the node vectors with statistics."""
    config = config or Node2VecConfig()
    start = time.perf_counter()
    walks = random_walks(
        graph, walk_length=config.walk_length, walks_per_node=config.walks_per_node, p=config.p, q=config.q,
        seed=config.sgns.seed, workers=config.sgns.workers, progress=progress,
    )  # fmt: skip
    walk_seconds = time.perf_counter() - start
    if walks.n_tokens == len(walks):
        raise DataError(f"graph: no edges to walk ({graph.n_nodes} nodes, none with an out-edge)")
    counts = np.bincount(walks.tokens, minlength=graph.n_nodes + 1)
    result = train_sgns(walks, counts, config.sgns, progress=progress)
    visited = counts[1:] > 0
    keys = graph.nodes.filter(pl.Series(visited)).to_list()
    missing = int(graph.n_nodes - np.count_nonzero(visited))
    if missing:
        log.info("node2vec: %d of %d nodes are on no walk (isolated) and get no vector", missing, graph.n_nodes)
    return Node2VecResult(
        embeddings=Embeddings(keys, result.input_vectors[1:][visited]),
        walks=len(walks),
        walk_steps=walks.n_tokens - len(walks),
        walk_seconds=walk_seconds,
        train_seconds=result.seconds,
        nodes_without_vector=missing,
        sgns=result,
    )


def node2vec(graph: Graph, config: Node2VecConfig | None = None, progress: bool = True) -> Embeddings:
    """Node vectors of ``graph`` (keys: its node ids; isolated nodes have none)."""
    return node2vec_with_stats(graph, config, progress).embeddings

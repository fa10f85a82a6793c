"""The hyperparameters of node2vec (the biased walks, and the SGNS training on them) and the
settings of the node2vec job around them (:func:`embeddings.jobs.run_node2vec`).

Its own module, free of the walk and training kernels, so that the command line can read the
defaults without loading numba or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from embeddings.checks import check_int, check_number
from embeddings.sgns_config import SGNSConfig

NODE2VEC_KIND = "node2vec"  # the run kind (and model directory prefix) of the node2vec job


def check_walk_params(walk_length: int, walks_per_node: int, p: float, q: float, seed: int, workers: int) -> None:
    """Raise :class:`~embeddings.errors.ConfigError` unless the walk parameters make sense."""
    check_int("walk_length", walk_length)
    check_int("walks_per_node", walks_per_node)
    check_number("p", p, above=0)
    check_number("q", q, above=0)
    check_int("seed", seed, minimum=0)
    check_int("workers", workers, minimum=0, note=" (0 = every core)")


def paper_sgns() -> SGNSConfig:
    """The node2vec paper's training settings: 128 dimensions, window 10, one pass, 5 negatives."""
    return SGNSConfig(dim=128, window=10, negative=5, epochs=1)


@dataclass
class Node2VecConfig:
    """Walk and training hyperparameters; defaults are the node2vec paper's.

    ``p`` (return) and ``q`` (in-out) bias the walks of ``walk_length`` nodes, ``walks_per_node``
    of them from every node. ``sgns`` trains on the walks (dimension, window, negatives, ...); its
    ``seed`` and ``workers`` also drive the walks, so one seed fixes the whole run.
    """

    walk_length: int = 80
    walks_per_node: int = 10
    p: float = 1.0
    q: float = 1.0
    sgns: SGNSConfig = field(default_factory=paper_sgns)

    def __post_init__(self) -> None:
        check_walk_params(self.walk_length, self.walks_per_node, self.p, self.q, self.sgns.seed, self.sgns.workers)
        check_int("walk_length", self.walk_length, minimum=2, note=" (a walk of one node has no context)")


@dataclass
class Node2VecJob:
    """What ``seqemb node2vec`` does: which edge columns to read and how to walk and train.

    ``transactions=True``: the source is a transaction table; ``src`` and ``dst`` name its
    card and merchant columns and the graph is :func:`~embeddings.graph.transactions.transaction_graph` of it.
    """

    src: str = "src"
    dst: str = "dst"
    weight: str | None = None
    directed: bool = False
    transactions: bool = False
    config: Node2VecConfig = field(default_factory=Node2VecConfig)
    index_kind: str = "hnsw"

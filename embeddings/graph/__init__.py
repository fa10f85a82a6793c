"""Graphs and node2vec.

- :mod:`~embeddings.graph.graph` — :class:`Graph` (CSR) from edge tables, PyG, networkx, scipy;
- :mod:`~embeddings.graph.arcs` — how edge lists become CSR arcs;
- :mod:`~embeddings.graph.walks` / :mod:`~embeddings.graph.walk_kernels` — node2vec's biased walks;
- :mod:`~embeddings.graph.config` / :mod:`~embeddings.graph.node2vec` — node2vec itself;
- :mod:`~embeddings.graph.transactions` — card-merchant graphs and their node ids.

The names below load on first use (:mod:`embeddings.lazy`).
"""

from embeddings.lazy import lazy_exports

_EXPORTS = {
    "Graph": "embeddings.graph.graph",
    "GraphReport": "embeddings.graph.graph",
    "Node2VecConfig": "embeddings.graph.config",
    **{
        name: "embeddings.graph.transactions"
        for name in (
            "CARD_PREFIX",
            "MERCHANT_PREFIX",
            "card_key",
            "card_keys",
            "inductive_vectors",
            "merchant_key",
            "merchant_keys",
            "transaction_graph",
        )
    },
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 -- the export table is the one list of names
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

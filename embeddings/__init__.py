"""The foundation of seqemb: events -> sequences -> embeddings -> vector index, and the store.

>>> from embeddings import EventSchema, read_events, build_sequences, item2vec, VectorIndex

The names below load on first use, so importing one light part (the store, the errors) does not
pull in torch, numba or faiss.
"""

from __future__ import annotations

from embeddings.lazy import lazy_exports

_EXPORTS = {
    "BuildReport": "embeddings.data",
    "EventSchema": "embeddings.data",
    "build_sequences": "embeddings.data",
    "read_events": "embeddings.data",
    "split_sessions": "embeddings.data",
    "ConfigError": "embeddings.errors",
    "DataError": "embeddings.errors",
    "NotFoundError": "embeddings.errors",
    "SeqembError": "embeddings.errors",
    "Graph": "embeddings.graph",
    "transaction_graph": "embeddings.graph",
    "Node2VecConfig": "embeddings.graph.config",
    "node2vec": "embeddings.graph.node2vec",
    "VectorIndex": "embeddings.index",
    "item2vec": "embeddings.sgns",
    "Item2VecJob": "embeddings.sgns_config",
    "Node2VecJob": "embeddings.graph.config",
    "run_item2vec": "embeddings.jobs",
    "run_node2vec": "embeddings.jobs",
    "EmbeddingModel": "embeddings.model",
    "Sequences": "embeddings.sequences",
    "SGNSConfig": "embeddings.sgns_config",
    "train_sgns": "embeddings.sgns",
    "read_table": "embeddings.sources",
    "Store": "embeddings.store",
    "World": "embeddings.synthetic",
    "WorldConfig": "embeddings.synthetic",
    "make_world": "embeddings.synthetic",
    "Embeddings": "embeddings.vectors",
    "Vocabulary": "embeddings.vocab",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 -- the export table is the one list of names
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

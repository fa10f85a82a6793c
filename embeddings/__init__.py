"""The foundation of seqemb: events -> sequences -> embeddings -> vector index, and the store.

>>> from embeddings import EventSchema, read_events, build_sequences, item2vec, VectorIndex
"""

from embeddings.data import BuildReport, EventSchema, build_sequences, read_events, split_sessions
from embeddings.errors import ConfigError, DataError, NotFoundError, SeqembError
from embeddings.graph import Graph
from embeddings.index import VectorIndex
from embeddings.item2vec import Item2VecJob, item2vec, run_item2vec
from embeddings.model import EmbeddingModel
from embeddings.node2vec import Node2VecConfig, Node2VecJob, node2vec, run_node2vec, transaction_graph
from embeddings.sequences import Sequences
from embeddings.sgns import SGNSConfig, train_sgns
from embeddings.sources import read_table
from embeddings.store import Store
from embeddings.synthetic import World, WorldConfig, make_world
from embeddings.vectors import Embeddings
from embeddings.vocab import Vocabulary

__all__ = [
    "BuildReport",
    "ConfigError",
    "DataError",
    "Embeddings",
    "EventSchema",
    "Item2VecJob",
    "EmbeddingModel",
    "Graph",
    "Node2VecConfig",
    "Node2VecJob",
    "node2vec",
    "run_node2vec",
    "transaction_graph",
    "NotFoundError",
    "SGNSConfig",
    "SeqembError",
    "Sequences",
    "Store",
    "VectorIndex",
    "Vocabulary",
    "World",
    "WorldConfig",
    "build_sequences",
    "item2vec",
    "make_world",
    "read_events",
    "read_table",
    "run_item2vec",
    "split_sessions",
    "train_sgns",
]

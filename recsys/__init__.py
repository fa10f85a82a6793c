"""Recommendations on sequence embeddings: GRU session encoder, DSSM two-tower retrieval,
NeuMF re-ranking, and the :class:`Recommender` a service or notebook imports.

The names below load on first use (:mod:`embeddings.lazy`), so reading a config does not load torch.
"""

from embeddings.lazy import lazy_exports

_EXPORTS = {
    **{
        name: "recsys.data"
        for name in ("EvalCases", "Interactions", "leave_one_out", "prefix_cases", "read_interactions", "time_split")
    },
    "evaluate": "recsys.metrics",
    "sample_negatives": "recsys.metrics",
    "Recommendations": "recsys.recommender",
    "Recommender": "recsys.recommender",
    "RecommenderConfig": "recsys.config",
    "train_recommender": "recsys.train",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 -- the export table is the one list of names
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

"""Recommendations on sequence embeddings: GRU session encoder, DSSM two-tower retrieval,
NeuMF re-ranking, and the :class:`Recommender` a service or notebook imports."""

from recsys.data import EvalCases, Interactions, leave_one_out, prefix_cases, read_interactions, time_split
from recsys.metrics import evaluate, sample_negatives
from recsys.recommender import Recommendations, Recommender
from recsys.train import RecommenderConfig, train_recommender

__all__ = [
    "EvalCases",
    "Interactions",
    "Recommendations",
    "Recommender",
    "RecommenderConfig",
    "evaluate",
    "leave_one_out",
    "prefix_cases",
    "read_interactions",
    "sample_negatives",
    "time_split",
    "train_recommender",
]

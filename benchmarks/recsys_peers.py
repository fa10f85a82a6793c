"""Peers for the user-based benchmark: popularity and implicit's ALS and BPR on a leave-one-out split.

- ALS: implicit's ``AlternatingLeastSquares`` (Hu, Koren, Volinsky, ICDM 2008; conjugate
  gradient solver), confidence ``1 + alpha`` on each positive.
- BPR: implicit's ``BayesianPersonalizedRanking`` (Rendle et al., UAI 2009), with item biases.

Both learn user and item factors from the binary users x items matrix of the training
sequences; a user's scores are ``user_factors @ item_factors.T`` (column 0, PAD, is an
empty column of the matrix and never ranked).

Protocol (shared with the seqemb models through :func:`protocol_inputs` and :func:`score`):
HR@10 and NDCG@10 under full ranking (every item but those already in the user's history)
and against 100 sampled negatives (items the user never had, fixed by the seed). The
hyperparameters are chosen on the validation cases only, separately for each protocol by
NDCG@10: each model is fit on ``split.train`` and scored on ``split.valid``. For the test
cases each chosen setting is fit again on the train sequences plus the validation item:
everything before the test item, which is what a sequence model sees as the history.

    python -m benchmarks.recsys_peers            # ML-100K, prints the table
"""

from __future__ import annotations

import argparse
import time
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from benchmarks._common import Run
from embeddings.errors import ConfigError
from embeddings.sequences import Sequences
from recsys.data import EvalCases, LeaveOneOut
from recsys.metrics import PROTOCOLS, Scorer, evaluate, sample_negatives
from recsys.popularity import Popularity

THREADS = 2
N_NEGATIVES = 100
ALS_ITERATIONS = 30
BPR_ITERATIONS = 100
GRID: dict[str, list[dict[str, float]]] = {
    "pop": [{}],
    "als": [
        {"factors": f, "regularization": r, "alpha": a}
        for f, r, a in product((32, 64, 128), (0.1, 1.0, 10.0, 100.0), (1.0, 10.0))
    ],
    "bpr": [
        {"factors": f, "regularization": r, "learning_rate": lr}
        for f, r, lr in product((32, 64, 128), (0.001, 0.01), (0.005, 0.01, 0.02))
    ],
}


def append(sequences: Sequences, rows: np.ndarray, tokens: np.ndarray) -> Sequences:
    """``sequences`` with ``tokens[j]`` added at the end of row ``rows[j]`` (in the order given)."""
    owners = np.concatenate([np.repeat(np.arange(len(sequences)), sequences.lengths), rows])
    order = np.argsort(owners, kind="stable")
    merged = np.concatenate([sequences.tokens, np.asarray(tokens, dtype=np.int32)])[order]
    return Sequences.from_lengths(np.bincount(owners, minlength=len(sequences)), merged)


def with_targets(cases: EvalCases) -> Sequences:
    """Each case's history with its target appended: the user's items up to and including the target."""
    return append(cases.histories, np.arange(len(cases)), cases.targets)


def protocol_inputs(split: LeaveOneOut, n_items: int, seed: int) -> dict[str, np.ndarray]:
    """The sampled negatives of the validation and test cases, ``{"valid": [B, 100], "test": [B, 100]}``.

    Negatives avoid every item of the user (history, validation and test items); ``valid``
    and ``test`` list the same users in the same order, as :func:`recsys.data.leave_one_out` makes them.
    """
    if not np.array_equal(split.valid.users, split.test.users):
        raise ConfigError("validation and test cases must list the same users in the same order")
    owned = with_targets(split.test)
    return {
        "valid": sample_negatives(split.valid, n_items, owned, n=N_NEGATIVES, seed=seed),
        "test": sample_negatives(split.test, n_items, owned, n=N_NEGATIVES, seed=seed + 1),
    }


def score(scorer: Scorer, cases: EvalCases, negatives: np.ndarray) -> dict[str, float]:
    """``{"<protocol>_hr10", "<protocol>_ndcg10"}`` for both protocols; full ranking excludes the history."""
    out = {}
    for protocol in PROTOCOLS:
        extra = {"exclude": cases.histories} if protocol == "full" else {"negatives": negatives}
        result = evaluate(scorer, cases, protocol=protocol, ks=(10,), **extra)
        out |= {f"{protocol}_hr10": result["hr@10"], f"{protocol}_ndcg10": result["ndcg@10"]}
    return out


def interaction_matrix(train: Sequences, n_items: int) -> scipy.sparse.csr_matrix:
    """Binary CSR float32 ``(len(train), n_items + 1)``: 1 where user ``u`` has item ``i`` in ``train[u]``."""
    rows = np.repeat(np.arange(len(train)), train.lengths)
    ones = np.ones(rows.size, dtype=np.float32)
    matrix = scipy.sparse.csr_matrix((ones, (rows, train.tokens)), shape=(len(train), n_items + 1))
    matrix.data[:] = 1.0  # an item twice in a row was summed
    return matrix


class FactorScorer:
    """Scorer protocol over learnt factors: ``users`` rows of ``user_factors @ item_factors.T``, float32."""

    def __init__(self, user_factors: np.ndarray, item_factors: np.ndarray):
        self.user_factors = np.asarray(user_factors, dtype=np.float32)
        self.item_factors = np.asarray(item_factors, dtype=np.float32)

    def __call__(self, histories: Sequences, users: np.ndarray) -> np.ndarray:
        if users.min() < 0:
            raise ConfigError("a matrix-factorisation peer scores known users only; got user -1")
        return self.user_factors[users] @ self.item_factors.T


def fit(model: str, train: Sequences, n_items: int, params: dict[str, float], seed: int) -> Scorer:
    """Popularity, or implicit's CPU ALS or BPR fit on the binary matrix of ``train`` with ``params``."""
    if model == "pop":
        return Popularity(train, n_items)
    kind, iterations = {
        "als": (AlternatingLeastSquares, ALS_ITERATIONS),
        "bpr": (BayesianPersonalizedRanking, BPR_ITERATIONS),
    }[model]
    factors = kind(**params, iterations=iterations, num_threads=THREADS, random_state=seed)
    factors.fit(interaction_matrix(train, n_items), show_progress=False)
    return FactorScorer(factors.user_factors, factors.item_factors)


def _tuned(model: str, split: LeaveOneOut, n_items: int, negatives: dict[str, np.ndarray], seed: int) -> dict:
    """Pick the grid point with the best validation NDCG@10 per protocol, refit, score the test cases."""
    grid = GRID[model]
    valid = [score(fit(model, split.train, n_items, params, seed), split.valid, negatives["valid"]) for params in grid]
    # For the test cases: the training rows plus each user's validation item.
    train_valid = append(split.train, split.valid.users, split.valid.targets)
    test: dict[int, dict[str, float]] = {}  # one refit per chosen setting
    out: dict[str, Any] = {}
    for protocol in PROTOCOLS:
        best = max(range(len(grid)), key=lambda i: valid[i][f"{protocol}_ndcg10"])
        if best not in test:
            test[best] = score(fit(model, train_valid, n_items, grid[best], seed), split.test, negatives["test"])
        out |= {f"{protocol}_{metric}": test[best][f"{protocol}_{metric}"] for metric in ("hr10", "ndcg10")}
        out |= {f"{protocol}_params": grid[best], f"{protocol}_valid_ndcg10": valid[best][f"{protocol}_ndcg10"]}
    return out


def run_peers(split: LeaveOneOut, n_items: int, seed: int = 0) -> dict[str, Any]:
    """Popularity, ALS and BPR on ``split``; keys ``<model>_<protocol>_hr10`` / ``_ndcg10`` and more.

    Also ``<model>_<protocol>_params`` (the chosen setting), ``<model>_<protocol>_valid_ndcg10``
    and ``train_s_<model>`` (seconds for the whole model search, refits included).
    """
    negatives = protocol_inputs(split, n_items, seed)
    results: dict[str, Any] = {}
    with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, single-threaded BLAS
        for model in GRID:
            start = time.perf_counter()
            tuned = _tuned(model, split, n_items, negatives, seed)
            results[f"train_s_{model}"] = time.perf_counter() - start
            results |= {f"{model}_{key}": value for key, value in tuned.items()}
    return results


def main(argv: list[str] | None = None) -> None:
    from benchmarks.recsys_data import ml100k

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-rating", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    run = Run()
    interactions, split = ml100k(args.min_rating)
    results = run_peers(split, interactions.n_items, args.seed)
    print(f"ML-100K leave-one-out: {len(split.test)} test users, {interactions.n_items} items")
    print(f"{'model':6} {'protocol':8} {'HR@10':>7} {'NDCG@10':>8}  chosen on validation")
    for model in ("pop", "als", "bpr"):
        for protocol in PROTOCOLS:
            hr, ndcg = results[f"{model}_{protocol}_hr10"], results[f"{model}_{protocol}_ndcg10"]
            print(f"{model:6} {protocol:8} {hr:7.4f} {ndcg:8.4f}  {results[f'{model}_{protocol}_params']}")
    if args.out is not None:
        run.write(args.out, results)


if __name__ == "__main__":
    main()

"""Top-k evaluation of next-item scorers: HR@k, NDCG@k and MRR@k under two protocols.

A *scorer* is any callable ``scorer(histories: Sequences, users: np.ndarray) -> [B, n_items + 1]``
float scores (numpy or torch, any device), one row per case and one column per token;
column 0 (PAD) is never ranked. Higher is better.

Protocols, for each case with target item ``t``:

- ``"full"``: rank ``t`` among all items ``1 .. n_items``. Items in the case's ``exclude``
  sequence (typically the user's history: items they already have) are left out, except
  ``t`` itself.
- ``"sampled"``: rank ``t`` among itself and the case's row of ``negatives`` (100 items the
  user never had, from :func:`sample_negatives`): the protocol of the NCF (He et al., WWW
  2017) and SASRec (Kang and McAuley, ICDM 2018) papers.

The 0-based rank ``r`` of the target is the number of candidates scored strictly higher,
plus a uniformly random place among the candidates scored exactly the same: metrics are
their expectation over that tie-break, computed exactly (a constant scorer gets the
metrics of a random ranking, not a perfect one). Then ``HR@k = [r < k]``,
``NDCG@k = [r < k] / log2(r + 2)`` (one relevant item) and ``MRR@k = [r < k] / (r + 1)``,
averaged over cases. NaN scores raise :class:`DataError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from numba import njit

from embeddings.checks import check_int
from embeddings.errors import ConfigError, DataError
from embeddings.sequences import Sequences
from recsys.data import EvalCases

Scorer = Callable[[Sequences, np.ndarray], "np.ndarray | torch.Tensor"]
PROTOCOLS = ("full", "sampled")
METRICS = ("hr", "ndcg", "mrr")


def _as_array(scores: np.ndarray | torch.Tensor) -> np.ndarray:
    """Scores as a float numpy array on the CPU (no copy when they already are)."""
    if isinstance(scores, torch.Tensor):
        scores = scores.detach()
        scores = (scores if scores.dtype in (torch.float32, torch.float64) else scores.float()).cpu().numpy()
    scores = np.asarray(scores)
    return scores if scores.dtype in (np.float32, np.float64) else scores.astype(np.float32)


@njit(nogil=True, cache=True)
def _rank_counts(scores, targets, greater, ties):  # pragma: no cover - compiled
    """Per row: items 1.. scored above / level with the target (target excluded); -1 marks a row with NaN."""
    for i in range(scores.shape[0]):
        t = scores[i, targets[i]]
        g = 0
        e = 0
        nan = math.isnan(t)
        for j in range(1, scores.shape[1]):
            v = scores[i, j]
            g += v > t
            e += v == t
            nan |= math.isnan(v)
        greater[i] = -1 if nan else g
        ties[i] = e - 1


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise ConfigError("ks must name at least one cut-off k")
    for k in ks:
        check_int("k", k)
    return tuple(int(k) for k in ks)


def _full_counts(scores: np.ndarray, targets: np.ndarray, exclude: Sequences | None) -> tuple[np.ndarray, np.ndarray]:
    """Per case: items ``1 .. n_items`` other than the excluded ones scored above / level with the target."""
    b, width = scores.shape
    greater = np.empty(b, dtype=np.int64)
    ties = np.empty(b, dtype=np.int64)
    _rank_counts(scores, targets, greater, ties)
    if greater.min() < 0:
        raise DataError(f"scorer returned NaN scores for case {int(greater.argmin())} of a batch")
    if exclude is not None and exclude.n_tokens:
        cols = exclude.tokens.astype(np.int64)
        if cols.min() < 0 or cols.max() >= width:
            raise DataError(f"exclude holds tokens outside the scored range 0..{width - 1}")
        rows = np.repeat(np.arange(b), exclude.lengths)
        codes = np.unique(rows * width + cols)  # an item twice in a history is excluded once
        rows, cols = codes // width, codes % width
        drop = (cols != 0) & (cols != targets[rows])
        rows, cols = rows[drop], cols[drop]
        values, t = scores[rows, cols], scores[rows, targets[rows]]
        greater -= np.bincount(rows[values > t], minlength=b)
        ties -= np.bincount(rows[values == t], minlength=b)
    return greater, ties


def _sampled_counts(scores: np.ndarray, targets: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per case: negatives scored above / level with the target."""
    width = scores.shape[1]
    if negatives.min() < 1 or negatives.max() >= width:
        raise DataError(f"negatives hold tokens outside the scored items 1..{width - 1}")
    t = np.take_along_axis(scores, targets[:, None], axis=1)
    neg = np.take_along_axis(scores, negatives, axis=1)
    if np.isnan(t).any() or np.isnan(neg).any():
        raise DataError("scorer returned NaN scores for a target or negative")
    return (neg > t).sum(1), (neg == t).sum(1)


def _tie_expected(greater: np.ndarray, ties: np.ndarray, ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Each metric at each k, per case, averaged over the ranks ``greater .. greater + ties``."""
    k_max = max(ks)
    r = np.arange(k_max, dtype=np.float64)
    discounts = {"hr": np.ones(k_max), "ndcg": 1.0 / np.log2(r + 2.0), "mrr": 1.0 / (r + 1.0)}
    # cumulative[name][m] = sum of the discounts of ranks 0 .. m - 1.
    cumulative = {name: np.concatenate([[0.0], np.cumsum(d)]) for name, d in discounts.items()}
    out = {}
    for k in ks:
        lo = np.minimum(greater, k)
        hi = np.minimum(greater + ties + 1, k)
        for name in METRICS:
            out[f"{name}@{k}"] = (cumulative[name][hi] - cumulative[name][lo]) / (ties + 1)
    return out


def evaluate(
    scorer: Scorer,
    cases: EvalCases,
    *,
    protocol: str = "full",
    ks: Sequence[int] = (10, 20),
    exclude: Sequences | None = None,
    negatives: np.ndarray | None = None,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Mean HR@k, NDCG@k and MRR@k of ``scorer`` over ``cases``, plus ``"cases"`` (their number).

    ``protocol="full"`` ranks the target among all items, ``exclude`` (a :class:`Sequences`
    aligned with ``cases``, optional) leaving out items other than the target. ``"sampled"``
    ranks it among its row of ``negatives`` (int ``[B, m]``, required; see
    :func:`sample_negatives`). The scorer sees ``batch_size`` cases at a time. Keys:
    ``"hr@10"``, ``"ndcg@10"``, ``"mrr@10"`` and so on for each of ``ks``.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    ks = _check_ks(ks)
    check_int("batch_size", batch_size)
    if len(cases) == 0:
        raise DataError("no cases to evaluate")
    if protocol == "full" and negatives is not None:
        raise ConfigError("negatives apply to protocol='sampled'; the full protocol ranks all items")
    if protocol == "sampled":
        if negatives is None:
            raise ConfigError("protocol='sampled' needs negatives (see sample_negatives)")
        if exclude is not None:
            raise ConfigError(
                "exclude applies to protocol='full'; sampled negatives already leave out the user's items"
            )
        negatives = np.asarray(negatives, dtype=np.int64)
        if negatives.ndim != 2 or negatives.shape[0] != len(cases) or negatives.shape[1] < 1:
            raise ConfigError(f"negatives must have shape ({len(cases)}, m >= 1); got {negatives.shape}")
    if exclude is not None and len(exclude) != len(cases):
        raise ConfigError(f"exclude has {len(exclude)} sequences for {len(cases)} cases; align them")

    sums = {f"{name}@{k}": 0.0 for k in ks for name in METRICS}
    for start in range(0, len(cases), batch_size):
        index = np.arange(start, min(start + batch_size, len(cases)))
        batch = cases.select(index)
        scores = _as_array(scorer(batch.histories, batch.users))
        if scores.ndim != 2 or scores.shape[0] != len(index):
            raise ValueError(f"scorer returned shape {scores.shape}; expected ({len(index)}, n_items + 1)")
        if int(batch.targets.max()) >= scores.shape[1]:
            raise DataError(f"target token {int(batch.targets.max())} is beyond the {scores.shape[1] - 1} scored items")
        if protocol == "full":
            ex = exclude.select(index) if exclude is not None else None
            greater, ties = _full_counts(scores, batch.targets, ex)
        else:
            greater, ties = _sampled_counts(scores, batch.targets, negatives[index])
        per_case = _tie_expected(greater, ties, ks)
        for key, values in per_case.items():
            sums[key] += float(values.sum())
    result = {key: total / len(cases) for key, total in sums.items()}
    result["cases"] = float(len(cases))
    return result


def _invalid(draws: np.ndarray, rows: np.ndarray, forbidden: np.ndarray, width: int) -> np.ndarray:
    """Mask of draws that hit a forbidden ``row * width + item`` code or repeat an earlier draw of their row."""
    codes = rows[:, None] * width + draws
    pos = np.minimum(np.searchsorted(forbidden, codes), forbidden.size - 1)
    hit = forbidden[pos] == codes
    order = np.argsort(draws, axis=1, kind="stable")
    ordered = np.take_along_axis(draws, order, axis=1)
    repeat = np.zeros_like(hit)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    np.put_along_axis(hit, order, np.take_along_axis(hit, order, axis=1) | repeat, axis=1)
    return hit


def sample_negatives(cases: EvalCases, n_items: int, exclude: Sequences, n: int = 100, seed: int = 0) -> np.ndarray:
    """int64 ``[B, n]``: per case, ``n`` distinct items drawn uniformly from ``1 .. n_items``.

    Never the case's target nor an item of ``exclude[i]`` (the user's items; a
    :class:`Sequences` aligned with ``cases``). Rejection sampling: all draws at once, then
    only the rejected ones again, until none is left. ``seed`` fixes the result.
    """
    check_int("n", n)
    check_int("n_items", n_items)
    if len(exclude) != len(cases):
        raise ConfigError(f"exclude has {len(exclude)} sequences for {len(cases)} cases; align them")
    b, width = len(cases), n_items + 1
    if b and int(cases.targets.max()) > n_items:
        raise DataError(f"target token {int(cases.targets.max())} is beyond n_items = {n_items}")
    items = np.concatenate([exclude.tokens.astype(np.int64), cases.targets])
    owners = np.concatenate([np.repeat(np.arange(b), exclude.lengths), np.arange(b)])
    keep = (items >= 1) & (items <= n_items)
    forbidden = np.unique(owners[keep] * width + items[keep])
    available = n_items - np.bincount(forbidden // width, minlength=b)
    if b and available.min() < n:
        case = int(available.argmin())
        raise ConfigError(f"case {case} leaves {available[case]} items to sample from; {n} negatives asked")
    rng = np.random.default_rng(seed)
    draws = rng.integers(1, n_items + 1, size=(b, n))
    rows = np.arange(b)
    while rows.size:
        bad = _invalid(draws[rows], rows, forbidden, width)
        still = bad.any(axis=1)
        rows, bad = rows[still], bad[still]
        redraw = draws[rows]
        redraw[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
        draws[rows] = redraw
    return draws

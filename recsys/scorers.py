"""Trained models as scorers for :func:`recsys.metrics.evaluate`: histories -> a score per item.

A scorer maps ``(histories: Sequences, users)`` to ``[B, n_tokens]`` float scores (column 0,
PAD, ignored). :func:`session_scorer` ranks every item by the model's own logits (the GRU
encoder alone, or the two-tower model); :func:`reranking_scorer` re-scores the top-N of the
two-tower model with NeuMF and keeps every other item below them, in retrieval order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from embeddings.sequences import Sequences
from recsys.neumf import NeuMF, rerank
from recsys.padding import pad_rows

Scorer = Callable[[Sequences, np.ndarray], torch.Tensor]


def _sessions(model: torch.nn.Module, histories: Sequences, max_history: int) -> torch.Tensor:
    """``model.encode`` of the last ``max_history`` items of each history: ``[B, dim]`` on the model's device."""
    tokens, lengths = pad_rows(histories, np.arange(len(histories)), max_history)
    device = next(model.parameters()).device
    with torch.no_grad():
        return model.encode(tokens.to(device), lengths.to(device))


def session_scorer(model: torch.nn.Module, max_history: int = 50) -> Scorer:
    """Scores ``u . v_i / tau`` for every item ``i`` from ``model.encode`` of the last ``max_history`` items."""
    model.eval()
    with torch.no_grad():
        items = model.item_vectors().detach()

    def score(histories: Sequences, users: np.ndarray) -> torch.Tensor:
        return (_sessions(model, histories, max_history) @ items.T / model.config.temperature).cpu()

    return score


def reranking_scorer(towers: torch.nn.Module, neumf: NeuMF, n_candidates: int = 100, max_history: int = 50) -> Scorer:
    """Two-tower retrieval of ``n_candidates`` items, re-scored by ``neumf``; the rest ranked after them."""
    towers.eval()
    with torch.no_grad():
        items = towers.item_vectors().detach()

    def score(histories: Sequences, users: np.ndarray) -> torch.Tensor:
        sessions = _sessions(towers, histories, max_history)
        base = (sessions @ items.T / towers.config.temperature).cpu()
        base[:, 0] = float("-inf")
        top = torch.topk(base, n_candidates, dim=1)
        reranked = rerank(neumf, sessions.cpu(), top.indices, top.values)
        # Everything outside the candidate list stays in retrieval order, below every candidate.
        floor = reranked.min(dim=1, keepdim=True).values
        out = base - base.max(dim=1, keepdim=True).values + floor - 1.0
        return out.scatter_(1, top.indices, reranked)

    return score

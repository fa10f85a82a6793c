"""Next-item objectives over normalised session and item vectors.

Both take session vectors ``s[P, d]`` at the P predicted positions and their target tokens
``y[P]``, and score items by ``s . v_i / tau`` (``v`` unit item vectors).

- :func:`full_softmax_loss` — cross-entropy over every item: exact, cost ``P x n_items``.
- :func:`sampled_softmax_loss` — mixed negative sampling for large catalogues: the batch's
  own targets (in-batch negatives, drawn about as often as items are popular) plus ``M``
  items drawn from a shared proposal ``q``; each candidate's logit is corrected by
  minus the log of its expected count among the candidates, ``log(P f_j + M q_j)`` (logQ
  correction), so the sampled softmax estimates the full one without a
  popularity bias. Candidates equal to a row's target, other than its own column, are masked.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

ItemVectors = Callable[[torch.Tensor | None], torch.Tensor]


def full_softmax_loss(
    sessions: torch.Tensor, targets: torch.Tensor, items: ItemVectors, temperature: float
) -> torch.Tensor:
    """Mean cross-entropy of ``targets[P]`` over all items ``items(None)[n_tokens, d]`` (PAD column excluded)."""
    logits = (sessions / temperature) @ items(None).T
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, targets)


def sampled_softmax_loss(
    sessions: torch.Tensor,
    targets: torch.Tensor,
    items: ItemVectors,
    temperature: float,
    log_frequency: torch.Tensor,
    log_proposal: torch.Tensor,
    n_negatives: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mixed in-batch + sampled softmax cross-entropy with logQ correction.

    ``log_frequency[n_tokens]``: log of each item's share of training targets (in-batch
    negatives follow it); ``log_proposal[n_tokens]``: log probabilities of the shared
    proposal the ``n_negatives`` extra items are drawn from (``-inf`` for PAD). ``items(tokens)``
    gives unit vectors of the candidate tokens only, so the cost does not grow with the catalogue.
    """
    sampled = torch.multinomial(log_proposal.exp(), n_negatives, replacement=True, generator=generator)
    sampled = sampled.to(targets.device)
    candidates = torch.cat([targets, sampled])
    # Expected number of times each candidate item is in the list: P * freq + M * q.
    correction = torch.logaddexp(
        log_frequency[candidates] + math.log(len(targets)), log_proposal[candidates] + math.log(n_negatives)
    )
    logits = (sessions / temperature) @ items(candidates).T - correction
    rows = torch.arange(len(targets), device=targets.device)
    hits = candidates[None, :] == targets[:, None]
    hits[rows, rows] = False
    logits = logits.masked_fill(hits, float("-inf"))
    return F.cross_entropy(logits, rows)

"""Training loop for next-item prediction at every position of every sequence.

Works for any model with ``forward(tokens[B, L], lengths[B]) -> sessions[B, L, d]``, ``n_tokens``,
``item_vectors() -> [n_tokens, d]`` and ``config.temperature`` (the GRU encoder and the
two-tower model). Sequences are cut into windows of ``max_length`` (see
:func:`recsys.batches.windows`), batched by length, and trained with Adam, gradient-norm
clipping against exploding gradients, and full or sampled softmax. With a ``validate``
callback the weights of the best epoch are kept (early stopping with ``patience``).

Inside a launch of several workers (:mod:`embeddings.ddp`) the model trains in DDP: every rank
draws the same batches and trains on its own rows of each, and ``validate`` runs on rank 0.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from embeddings import ddp
from embeddings.errors import ConfigError
from embeddings.sequences import Sequences
from recsys.config import FitConfig
from recsys.losses import full_softmax_loss, sampled_softmax_loss
from recsys.padding import length_batches, pad_rows, windows


@dataclass
class FitResult:
    """Per-epoch history (``loss``, ``seconds``, ``positions_per_s``, ``valid``) and the kept epoch."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_valid: float | None = None


def _log_distributions(train: Sequences, n_tokens: int, power: float, device: torch.device):
    """Log item frequencies (what in-batch negatives follow) and the log proposal ``freq ** power``."""
    counts = np.maximum(np.bincount(train.tokens, minlength=n_tokens).astype(np.float64), 0.5)
    counts[0] = 0.0
    frequency = counts / counts.sum()
    proposal = counts**power / (counts**power).sum()
    with np.errstate(divide="ignore"):
        logs = np.log(np.stack([frequency, proposal]))
    return torch.tensor(logs[0], dtype=torch.float32, device=device), torch.tensor(
        logs[1], dtype=torch.float32, device=device
    )


def fit(
    model: torch.nn.Module,
    train: Sequences,
    config: FitConfig = FitConfig(),
    *,
    validate: Callable[[torch.nn.Module], float] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    label: str = "train",
) -> FitResult:
    """Train ``model`` to predict each next item of ``train``; return the per-epoch history."""
    device = torch.device(device)
    model.to(device)
    train = windows(train, config.max_length)
    lengths = train.lengths
    keep = np.flatnonzero(lengths >= 2)
    if keep.size == 0:
        raise ConfigError("no training sequence has two or more items; nothing to predict")
    train, lengths = train.select(keep), lengths[keep]
    n_positions = int((lengths - 1).sum())
    log_frequency, log_proposal = _log_distributions(train, model.n_tokens, config.proposal_power, device)
    ranks = ddp.ranks()
    progress = progress and ranks.main
    net = ranks.wrap(model)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed + ranks.rank)  # each rank its own negatives
    rng = np.random.default_rng(config.seed)  # the same batches on every rank
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    result, best_state, stale = FitResult(), None, 0
    for epoch in range(config.epochs):
        model.train()
        started, total, seen = time.perf_counter(), 0.0, 0
        bar = tqdm(
            total=n_positions, desc=f"{label} epoch {epoch + 1}/{config.epochs}", disable=not progress, unit="pos"
        )
        for rows in ranks.parts(length_batches(lengths, config.tokens_per_batch, rng)):
            tokens, batch_lengths = pad_rows(train, rows)
            tokens, batch_lengths = tokens.to(device), batch_lengths.to(device)
            sessions = net(tokens[:, :-1], batch_lengths - 1)
            mask = torch.arange(tokens.shape[1] - 1, device=device)[None, :] < (batch_lengths - 1)[:, None]
            sessions, targets = sessions[mask], tokens[:, 1:][mask]
            if config.loss == "full":
                loss = full_softmax_loss(sessions, targets, model.item_vectors, model.config.temperature)
            else:
                loss = sampled_softmax_loss(
                    sessions,
                    targets,
                    model.item_vectors,
                    model.config.temperature,
                    log_frequency,
                    log_proposal,
                    config.negatives,
                    generator,
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            total += loss.item() * len(targets)
            seen += len(targets)
            bar.update(len(targets) * ranks.world)
            bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
        bar.close()
        schedule.step()
        total, seen = ranks.sum(total, seen)
        seconds = time.perf_counter() - started
        record = {"epoch": epoch + 1, "loss": total / seen, "seconds": seconds, "positions_per_s": seen / seconds}
        if validate is not None:
            model.eval()
            with torch.no_grad():
                record["valid"] = ranks.from_main(lambda: float(validate(model)))
            if result.best_valid is None or record["valid"] > result.best_valid:
                result.best_valid, result.best_epoch, stale = record["valid"], epoch + 1, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
        result.history.append(record)
        if validate is not None and stale >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = len(result.history)
    model.eval()
    return result

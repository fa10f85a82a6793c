"""Batched torch path for skip-gram / CBOW with negative sampling (for CUDA; also runs on CPU).

The objective, subsampling, dynamic window, per-epoch sequence shuffling and
learning-rate schedule are those of :mod:`embeddings.sgns`; only the update
order differs. Instead of one example at a time, each step takes
``batch_size`` consecutive centre positions of the subsampled corpus and trains all of their examples at once: skip-gram
examples are (centre, context) pairs, CBOW examples are centres with the mean of
their context vectors. Gradients are written by hand (no autograd) and applied
with ``index_add_``, so rows that occur several times in a step receive the sum
of their updates, as in synchronous mini-batch SGD.

Shapes in a step: ``inputs`` (B, C) token indices of the input side (C = 1 for
skip-gram, 2·window for CBOW) with a (B, C) validity mask, ``targets`` (B, 1 + K)
with the true centre in column 0 and K noise tokens after it.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from embeddings.sequences import Sequences
from embeddings.sgns_config import SGNSConfig
from embeddings.sgns_kernels import MAX_EXP


def train_torch(
    sequences: Sequences,
    keep: np.ndarray,
    noise: np.ndarray,
    syn0: np.ndarray,
    syn1: np.ndarray,
    config: SGNSConfig,
    device: torch.device,
    bar: tqdm,
) -> tuple[np.ndarray, np.ndarray, list[float], list[int]]:
    """Train ``syn0``/``syn1`` (float32, (V, dim)); return them, each epoch's mean loss per example and kept tokens.

    ``keep`` (V,) are keep probabilities and ``noise`` (V,) the noise
    distribution, both from :mod:`embeddings.sgns`.
    """
    gen = torch.Generator(device=device).manual_seed(config.seed)
    w_in = torch.from_numpy(syn0).to(device)
    w_out = torch.from_numpy(syn1).to(device)
    tokens = torch.from_numpy(sequences.tokens).to(device=device, dtype=torch.long)
    lengths = torch.from_numpy(sequences.lengths).to(device)
    starts = torch.from_numpy(sequences.offsets[:-1]).to(device)
    positions = torch.arange(tokens.numel(), device=device)
    keep_t = torch.from_numpy(keep).to(device)
    noise_cum = torch.cumsum(torch.from_numpy(noise).to(device), 0)
    noise_cum /= noise_cum[-1].clone()
    offsets = torch.cat([torch.arange(-config.window, 0), torch.arange(1, config.window + 1)]).to(device)
    n_raw = max(sequences.n_tokens, 1)
    schedule_total = config.epochs * n_raw
    cbow = config.mode == "cbow"

    epoch_loss, kept_tokens = [], []
    for epoch in range(config.epochs):
        if config.shuffle:
            order = torch.randperm(len(sequences), generator=gen, device=device)
        else:
            order = torch.arange(len(sequences), device=device)
        # visit[i]: where the i-th token of this epoch's sequence order sits in ``tokens``
        visit_len = lengths[order]
        shift = torch.repeat_interleave(starts[order] - (torch.cumsum(visit_len, 0) - visit_len), visit_len)
        visit = positions + shift
        draws = torch.rand(tokens.numel(), generator=gen, device=device, dtype=torch.float64)
        kept_pos = torch.nonzero(draws < keep_t[tokens[visit]]).squeeze(1)
        kept = tokens[visit[kept_pos]]
        kept_seq = torch.repeat_interleave(order, visit_len)[kept_pos]
        reach = config.window - torch.randint(0, config.window, (kept.numel(),), generator=gen, device=device)
        raw_at = np.append(kept_pos.cpu().numpy(), n_raw)  # visit position of each kept token, for lr and progress
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        examples = torch.zeros((), dtype=torch.long, device=device)
        for step, lo in enumerate(range(0, kept.numel(), config.batch_size)):
            hi = min(lo + config.batch_size, kept.numel())
            centre = torch.arange(lo, hi, device=device)
            ctx = centre[:, None] + offsets[None, :]
            inside = (ctx >= 0) & (ctx < kept.numel())
            ctx = ctx.clamp(0, kept.numel() - 1)
            valid = inside & (offsets.abs()[None, :] <= reach[centre, None]) & (kept_seq[ctx] == kept_seq[centre, None])
            if cbow:
                has_context = valid.any(1)
                inputs, mask, centre_tok = kept[ctx[has_context]], valid[has_context], kept[centre[has_context]]
            else:
                rows, cols = torch.nonzero(valid, as_tuple=True)
                inputs, centre_tok = kept[ctx[rows, cols]][:, None], kept[centre[rows]]
                mask = torch.ones_like(inputs, dtype=torch.bool)
            alpha = config.alpha - (config.alpha - config.min_alpha) * (epoch * n_raw + raw_at[lo]) / schedule_total
            loss_sum += _step(w_in, w_out, inputs, mask, centre_tok, noise_cum, config.negative, alpha, gen)
            examples += centre_tok.numel()
            bar.update(int(raw_at[hi] - raw_at[lo]) + (int(raw_at[0]) if lo == 0 else 0))
            if step % 64 == 0:
                bar.set_postfix(loss=f"{float(loss_sum) / max(int(examples), 1):.4f}", refresh=False)
        if kept.numel() == 0:
            bar.update(n_raw)
        epoch_loss.append(float(loss_sum) / max(int(examples), 1))
        kept_tokens.append(kept.numel())
    return w_in.cpu().numpy(), w_out.cpu().numpy(), epoch_loss, kept_tokens


def _step(
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    inputs: torch.Tensor,
    mask: torch.Tensor,
    centre: torch.Tensor,
    noise_cum: torch.Tensor,
    negative: int,
    alpha: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """One SGD step on B examples; returns their summed loss -[log σ(u_o·h) + Σ_k log σ(-u_k·h)].

    ``h`` is the mean of the valid input rows; every valid input row receives the
    full input gradient (word2vec's CBOW rule; for skip-gram there is one row).
    Noise draws equal to the centre are ignored, as in word2vec, and targets
    scored beyond ±MAX_EXP get no update, as in the CPU kernel.
    """
    draws = torch.rand(centre.numel() * negative, generator=gen, device=centre.device, dtype=torch.float64)
    negatives = torch.searchsorted(noise_cum, draws, right=True).view(-1, negative)
    targets = torch.cat([centre[:, None], negatives], 1)
    live = torch.ones_like(targets, dtype=w_in.dtype)
    live[:, 1:] = (negatives != centre[:, None]).to(w_in.dtype)
    labels = torch.zeros_like(live)
    labels[:, 0] = 1.0

    maskf = mask.to(w_in.dtype)
    h = (w_in[inputs] * maskf[..., None]).sum(1) / maskf.sum(1, keepdim=True)
    u = w_out[targets]
    logits = torch.bmm(u, h[:, :, None]).squeeze(2)
    loss = -(torch.nn.functional.logsigmoid(torch.where(labels > 0, logits, -logits)) * live).sum()
    in_range = (logits.abs() < MAX_EXP).to(w_in.dtype)
    g = (labels - torch.sigmoid(logits)) * live * in_range * alpha
    grad_h = torch.bmm(g[:, None, :], u).squeeze(1)
    w_out.index_add_(0, targets.reshape(-1), (g[:, :, None] * h[:, None, :]).reshape(-1, h.shape[1]))
    rows, cols = torch.nonzero(mask, as_tuple=True)
    w_in.index_add_(0, inputs[rows, cols], grad_h[rows])
    return loss.double()

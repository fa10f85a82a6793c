"""NeuMF re-ranker: neural collaborative filtering (He et al., WWW 2017) over a GRU session vector.

NeuMF fuses two views of a (user, item) pair and reads a score off both:

    GMF:  φ_G = p_G ⊙ q_G                                  (element-wise product, width ``dim``)
    MLP:  φ_M = a_L(… a_1(W_1 [p_M ; q_M] + b_1) …)        (ReLU tower ``mlp``, width ``mlp[-1]``)
    NeuMF: correction(u, i) = hᵀ [φ_G ; φ_M]

Here the user is a session: its vector ``s`` (width ``session_dim``, from the GRU encoder) is
projected into the two spaces by two linear maps, ``p_G = A_G s`` and ``p_M = A_M s``; the items
have their own GMF and MLP embedding tables ``q_G``, ``q_M`` (token-indexed, row 0 = PAD).

As a re-ranker the model scores the C candidates the retriever returned and keeps the retriever's
score as a prior: ``logit(n, c) = base[n, c] + correction(session_n, candidates[n, c])``. The output
vector ``h`` starts at zero, so an untrained re-ranker returns the retriever's ranking unchanged.
PAD candidates (token 0, used to fill short lists) get ``-inf`` and never rank above a real item.

Objective (listwise): for each case n the target item sits among its C candidates at position t_n;
minimise the softmax cross-entropy over the list, ``-log softmax(logit(n, ·))[t_n]``, averaged over
cases, with Adam, gradient-norm clipping and shuffled, seeded minibatches.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from embeddings import ddp
from embeddings.checks import check_int
from embeddings.device import resolve_device
from embeddings.errors import ConfigError, DataError
from recsys.config import NeuMFConfig


class NeuMF(nn.Module):
    """GMF ⊕ MLP correction on top of a retriever's candidate scores (see the module docstring).

    Built from ``(n_tokens, session_dim, config)`` alone, so ``load_state_dict`` on a fresh
    instance restores a saved model. ``item_init`` (``[n_tokens, d]``, e.g. item2vec vectors in
    token order) only initialises both item tables: copied when ``d == dim``, else projected onto
    its top ``min(d, dim)`` principal axes (uncentred SVD) and zero-padded to ``dim``; either way
    rescaled to the random init's scale (mean row norm 1 over the non-PAD rows).
    """

    def __init__(self, n_tokens: int, session_dim: int, config: NeuMFConfig, item_init: Tensor | None = None) -> None:
        super().__init__()
        check_int("n_tokens", n_tokens, minimum=2, note=" (PAD + at least one item)")
        check_int("session_dim", session_dim)
        self.n_tokens, self.session_dim, self.config = n_tokens, session_dim, config
        dim = config.dim
        self.user_gmf = nn.Linear(session_dim, dim)
        self.user_mlp = nn.Linear(session_dim, dim)
        self.item_gmf = nn.Embedding(n_tokens, dim)
        self.item_mlp = nn.Embedding(n_tokens, dim)
        widths = (2 * dim, *config.mlp)
        self.tower = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(dim + config.mlp[-1], 1, bias=False)  # a bias would shift every candidate alike
        for table in (self.item_gmf, self.item_mlp):
            nn.init.normal_(table.weight, std=dim**-0.5)
        nn.init.zeros_(self.out.weight)
        if item_init is not None:
            init = _fit_width(torch.as_tensor(item_init, dtype=torch.float32), n_tokens, dim)
            with torch.no_grad():
                self.item_gmf.weight.copy_(init)
                self.item_mlp.weight.copy_(init)

    def forward(self, session: Tensor, items: Tensor, base: Tensor) -> Tensor:
        """Re-ranking logits ``[B, C]`` = ``base`` ``[B, C]`` + correction(``session`` ``[B, S]``, ``items`` ``[B, C]``).

        ``items`` are item tokens (0 = PAD, scored ``-inf``).
        """
        gmf = self.user_gmf(session)[:, None, :] * self.item_gmf(items)  # [B, C, dim]
        # first tower layer on [p_M ; q_M], with the user half computed once per row instead of once per candidate
        first = self.tower[0]
        w_user, w_item = first.weight.split(self.config.dim, dim=1)
        user = F.linear(self.user_mlp(session), w_user, first.bias)  # [B, mlp[0]]
        hidden = self.dropout(F.relu(user[:, None, :] + F.linear(self.item_mlp(items), w_item)))
        for layer in self.tower[1:]:
            hidden = self.dropout(F.relu(layer(hidden)))  # [B, C, mlp[-1]]
        correction = self.out(torch.cat([gmf, hidden], dim=-1)).squeeze(-1)
        return (base + correction).masked_fill(items == 0, -math.inf)


def _fit_width(init: Tensor, n_tokens: int, dim: int) -> Tensor:
    """``init`` ``[n_tokens, d]`` -> ``[n_tokens, dim]``: copy or principal-axes projection, mean row norm 1."""
    if init.ndim != 2 or init.shape[0] != n_tokens:
        raise ConfigError(f"item_init must have shape [n_tokens={n_tokens}, d], got {list(init.shape)}")
    if not torch.isfinite(init).all():
        raise ConfigError("item_init holds NaN or infinite values")
    if init.shape[1] != dim:
        _, _, vh = torch.linalg.svd(init, full_matrices=False)
        init = init @ vh[:dim].T  # [n_tokens, min(n_tokens, d, dim)]
        init = F.pad(init, (0, dim - init.shape[1]))
    norm = init[1:].norm(dim=1).mean()
    return init / norm if norm > 0 else init


def _as_inputs(sessions: Tensor, candidates: Tensor, base: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Check shapes and convert: sessions ``[N, S]`` float32, candidates ``[N, C]`` int64, base ``[N, C]`` float32."""
    sessions = torch.as_tensor(sessions, dtype=torch.float32)
    candidates = torch.as_tensor(candidates, dtype=torch.long)
    base = torch.as_tensor(base, dtype=torch.float32)
    if sessions.ndim != 2 or candidates.ndim != 2 or base.shape != candidates.shape:
        raise DataError(
            f"expected sessions [N, S], candidates [N, C] and base [N, C], got {list(sessions.shape)}, "
            f"{list(candidates.shape)} and {list(base.shape)}"
        )
    if sessions.shape[0] != candidates.shape[0]:
        raise DataError(f"sessions has {sessions.shape[0]} rows but candidates has {candidates.shape[0]}")
    if not torch.isfinite(sessions).all() or torch.isnan(base).any():
        raise DataError("sessions must be finite and base must not hold NaN")
    return sessions, candidates, base


def _check_tokens(candidates: Tensor, n_tokens: int) -> None:
    """Raise unless every candidate is a token in ``[0, n_tokens)`` (0 = PAD)."""
    outside = ((candidates < 0) | (candidates >= n_tokens)).any(1)
    if outside.any():
        row = int(outside.nonzero()[0, 0])
        raise DataError(f"candidates row {row} holds a token outside [0, {n_tokens}) (0 = PAD)")


def _target_positions(candidates: Tensor, targets: Tensor) -> Tensor:
    """Position ``[N]`` of each target (a non-PAD token) in its candidate row (first occurrence)."""
    targets = torch.as_tensor(targets, dtype=torch.long)
    if targets.shape != candidates.shape[:1]:
        raise DataError(f"targets must have shape [N={candidates.shape[0]}], got {list(targets.shape)}")
    hit = (candidates == targets[:, None]) & (targets[:, None] > 0)
    missing = ~hit.any(1)
    if missing.any():
        row = int(missing.nonzero()[0, 0])
        raise DataError(
            f"target {int(targets[row])} of row {row} is not among its candidates (or is PAD); "
            "put each case's target into its candidate list"
        )
    return hit.to(torch.uint8).argmax(1)


def train_neumf(
    sessions: Tensor,
    candidates: Tensor,
    base: Tensor,
    targets: Tensor,
    config: NeuMFConfig = NeuMFConfig(),
    *,
    item_init: Tensor | None = None,
    n_tokens: int | None = None,
    progress: bool = True,
) -> NeuMF:
    """Train a :class:`NeuMF` re-ranker with the listwise objective of the module docstring.

    Shapes: ``sessions`` ``[N, S]`` session vectors, ``candidates`` ``[N, C]`` item tokens (0 = PAD
    filler), ``base`` ``[N, C]`` the retriever's scores, ``targets`` ``[N]`` the true next item.
    ``candidates[n]`` must contain ``targets[n]`` (the caller inserts it where the retriever missed
    it, with its true, finite base score) and should hold distinct items; the loss is the
    cross-entropy over the C candidates, with the target's first occurrence as the label. The catalogue
    size ``n_tokens`` defaults to ``item_init``'s rows, else to the largest candidate + 1.
    Randomness (init, shuffling, dropout) is fixed by ``config.seed``; the caller's global RNG is left as it was.
    The returned model is in eval mode and carries ``epoch_loss``, each epoch's mean training loss.
    In a launch of several workers it trains in DDP, each rank on its rows of every batch (:mod:`embeddings.ddp`).
    """
    sessions, candidates, base = _as_inputs(sessions, candidates, base)
    if len(candidates) == 0 or candidates.shape[1] == 0:
        raise DataError("no training cases: candidates is empty")
    positions = _target_positions(candidates, targets)
    if not torch.isfinite(base.gather(1, positions[:, None])).all():
        raise DataError("the base score of every target must be finite")
    if n_tokens is None:
        n_tokens = len(item_init) if item_init is not None else int(candidates.max()) + 1
    _check_tokens(candidates, n_tokens)
    device = resolve_device(config.device)
    ranks = ddp.ranks()
    progress = progress and ranks.main
    n = len(candidates)
    steps = math.ceil(n / config.batch_size)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        model = NeuMF(n_tokens, sessions.shape[1], config, item_init=item_init).to(device)
        net = ranks.wrap(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        order_gen = torch.Generator().manual_seed(config.seed)
        model.train()
        epoch_loss = []
        with tqdm(total=config.epochs * steps, unit="batch", disable=not progress, desc="neumf") as bar:
            for _ in range(config.epochs):
                order = torch.randperm(n, generator=order_gen)
                total, seen = torch.zeros((), dtype=torch.float64, device=device), 0
                for batch in ranks.parts(order.split(config.batch_size)):
                    logits = net(sessions[batch].to(device), candidates[batch].to(device), base[batch].to(device))
                    loss = F.cross_entropy(logits, positions[batch].to(device))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                    optimizer.step()
                    total += loss.detach() * len(batch)
                    seen += len(batch)
                    bar.update()
                total, seen = ranks.sum(float(total), seen)
                epoch_loss.append(total / seen)
                bar.set_postfix(loss=f"{epoch_loss[-1]:.4f}")
    model.epoch_loss = epoch_loss
    return model.eval()


@torch.no_grad()
def rerank(model: NeuMF, sessions: Tensor, candidates: Tensor, base: Tensor, batch_size: int = 4096) -> Tensor:
    """Re-ranking logits ``[N, C]`` (float32, CPU) for ``sessions`` ``[N, S]``, ``candidates`` and ``base`` ``[N, C]``.

    Runs in eval mode (no dropout) without gradients, ``batch_size`` rows at a time; PAD candidates get ``-inf``.
    """
    sessions, candidates, base = _as_inputs(sessions, candidates, base)
    if sessions.shape[1] != model.session_dim:
        raise DataError(f"sessions have width {sessions.shape[1]} but the re-ranker expects {model.session_dim}")
    _check_tokens(candidates, model.n_tokens)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [
        model(s.to(device), c.to(device), b.to(device)).cpu()
        for s, c, b in zip(sessions.split(batch_size), candidates.split(batch_size), base.split(batch_size))
    ]
    model.train(was_training)
    return torch.cat(out) if out else base.clone()

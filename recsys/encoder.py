"""GRU session encoder: a sequence of items -> one L2-normalised session vector per step.

For a padded batch of item tokens ``x[B, L]`` with lengths ``n[B]``:

    e_t = Dropout(E[x_t])                          item embeddings (E[0] = PAD = 0)
    h_t = GRU(e_1..e_t)                            packed, so padding costs nothing
    c_t = sum_{j<=t} softmax_j(q(h_t) . h_j / sqrt(H)) h_j     causal attention over the history
    s_t = normalize(W [h_t ; c_t])                 the session vector after step t

Items are scored by cosine with temperature: ``logit(i | s_t) = s_t . normalize(E_i) / tau``
(normalised item and session vectors with a temperature, as in NISER, keep popular items
from dominating by vector length). ``s_t`` depends only on steps ``<= t``, so one pass over a
sequence trains next-item prediction at every position.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from embeddings.errors import ConfigError
from recsys.config import EncoderConfig


class GRUSessionEncoder(nn.Module):
    """Item embeddings -> GRU -> causal attention -> normalised session vectors.

    ``n_tokens`` counts the PAD token 0, so items are tokens ``1 .. n_tokens - 1``.
    """

    def __init__(self, n_tokens: int, config: EncoderConfig = EncoderConfig()) -> None:
        super().__init__()
        self.config = config
        self.items = nn.Embedding(n_tokens, config.dim, padding_idx=0)
        nn.init.normal_(self.items.weight, std=1.0 / math.sqrt(config.dim))
        with torch.no_grad():
            self.items.weight[0].zero_()
        self.dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(
            config.dim,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.query = nn.Linear(config.hidden, config.hidden, bias=False)
        self.out = nn.Linear(2 * config.hidden, config.dim)

    @property
    def n_tokens(self) -> int:
        return self.items.num_embeddings

    def init_items(self, vectors: torch.Tensor) -> None:
        """Start item embeddings from given vectors ``[n_tokens, dim]`` (e.g. item2vec), rescaled."""
        if tuple(vectors.shape) != tuple(self.items.weight.shape):
            raise ConfigError(
                f"initial item vectors have shape {tuple(vectors.shape)}, need {tuple(self.items.weight.shape)}"
            )
        with torch.no_grad():
            scale = vectors[1:].norm(dim=1).mean().clamp_min(1e-8) * math.sqrt(self.config.dim)
            self.items.weight.copy_(vectors / scale)
            self.items.weight[0].zero_()

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Session vectors after every step: ``[B, L, dim]``, unit length (zero past a sequence's end)."""
        batch, width = tokens.shape
        embedded = self.dropout(self.items(tokens))
        packed = pack_padded_sequence(embedded, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
        hidden, _ = self.gru(packed)
        hidden, _ = pad_packed_sequence(hidden, batch_first=True, total_length=width)
        scores = self.query(hidden) @ hidden.transpose(1, 2) / math.sqrt(self.config.hidden)
        causal = torch.ones(width, width, dtype=torch.bool, device=tokens.device).tril()
        context = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1) @ hidden
        sessions = F.normalize(self.out(self.dropout(torch.cat([hidden, context], dim=-1))), dim=-1)
        valid = torch.arange(width, device=tokens.device)[None, :] < lengths[:, None].to(tokens.device)
        return sessions * valid.unsqueeze(-1)

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The session vector after each sequence's last step: ``[B, dim]`` (zero for empty ones)."""
        sessions = self.forward(tokens, lengths)
        last = (lengths.to(tokens.device) - 1).clamp_min(0)
        return sessions[torch.arange(len(tokens), device=tokens.device), last] * (lengths > 0).unsqueeze(-1).to(
            sessions.dtype
        )

    def item_vectors(self, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Unit-length vectors of ``tokens`` (``[..., dim]``), or of all items ``[n_tokens, dim]`` (PAD is zero)."""
        return F.normalize(self.items.weight if tokens is None else self.items(tokens), dim=-1)

    def logits(self, sessions: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """``sessions[..., dim] . items^T / tau`` over all item vectors, or the given ones."""
        items = self.item_vectors() if items is None else items
        return sessions @ items.T / self.config.temperature

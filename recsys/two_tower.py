"""DSSM two-tower retrieval: a session tower (the GRU encoder) and an item tower.

    u_t = normalize(W_u s_t)                                   session tower (s_t from the GRU encoder)
    v_i = normalize(W_v [id(i) ; cat_1(i) ; ... ; numbers(i)])  item tower
    score(i | t) = u_t . v_i / tau                             cosine with a temperature

The item tower sees the item's id embedding and its attributes (categorical embeddings and
standardised numbers). During training the id is dropped with probability ``id_dropout``
so the attribute path alone gives useful vectors; a cold-start item (attributes but no
training events) is encoded that way: id = PAD (zero), attributes as given. Item-tower
vectors go into a :class:`~embeddings.index.VectorIndex` for retrieval.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from recsys.attributes import ItemAttributes
from recsys.config import TowerConfig
from recsys.encoder import GRUSessionEncoder


class TwoTower(nn.Module):
    """Session tower over a :class:`GRUSessionEncoder` plus an id + attribute item tower.

    ``codes[n_catalogue, n_cat]`` and ``numbers[n_catalogue, n_num]`` are registered buffers,
    so catalogue rows ``>= n_tokens`` (cold-start items) are encoded from attributes alone.
    """

    def __init__(
        self,
        encoder: GRUSessionEncoder,
        config: TowerConfig = TowerConfig(),
        cardinalities: list[int] | None = None,
        n_numeric: int = 0,
        n_catalogue: int | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        cardinalities = cardinalities or []
        n_catalogue = n_catalogue or encoder.n_tokens
        self.session = nn.Linear(encoder.config.dim, config.dim)
        self.ids = nn.Embedding(encoder.n_tokens, encoder.config.dim, padding_idx=0)
        self.attributes = nn.ModuleList(nn.Embedding(n, config.attribute_dim, padding_idx=0) for n in cardinalities)
        width = encoder.config.dim + config.attribute_dim * len(cardinalities) + n_numeric
        self.item = nn.Linear(width, config.dim)
        self.register_buffer("codes", torch.zeros(n_catalogue, len(cardinalities), dtype=torch.long))
        self.register_buffer("numbers", torch.zeros(n_catalogue, n_numeric))
        with torch.no_grad():
            self.ids.weight.copy_(encoder.items.weight)
            # Start both towers as identity maps so training begins from the encoder's own scores.
            for linear in (self.session, self.item):
                linear.weight.zero_()
                linear.bias.zero_()
                linear.weight[:, : encoder.config.dim].copy_(torch.eye(config.dim, encoder.config.dim))

    @classmethod
    def build(cls, encoder: GRUSessionEncoder, config: TowerConfig, attributes: ItemAttributes | None) -> TwoTower:
        """A tower for ``encoder`` with the catalogue and attributes of ``attributes`` (or ids only)."""
        if attributes is None:
            return cls(encoder, config)
        model = cls(encoder, config, attributes.cardinalities, attributes.numbers.shape[1], len(attributes.keys))
        model.codes.copy_(torch.from_numpy(attributes.codes))
        model.numbers.copy_(torch.from_numpy(attributes.numbers))
        return model

    @property
    def n_tokens(self) -> int:
        return self.encoder.n_tokens

    @property
    def n_catalogue(self) -> int:
        return self.codes.shape[0]

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Session-tower vectors after every step: ``[B, L, dim]``, unit length."""
        return F.normalize(self.session(self.encoder(tokens, lengths)), dim=-1)

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Session-tower vector after each sequence's last step: ``[B, dim]``."""
        return F.normalize(self.session(self.encoder.encode(tokens, lengths)), dim=-1)

    def item_vectors(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Item-tower vectors of catalogue ``rows`` (``[..., dim]``), or of all trained tokens ``[n_tokens, dim]``."""
        if rows is None:
            rows = torch.arange(self.n_tokens, device=self.codes.device)
        ids = torch.where(rows < self.n_tokens, rows, torch.zeros_like(rows))
        if self.training and self.config.id_dropout > 0 and self.attributes:
            ids = ids.masked_fill(torch.rand(ids.shape, device=ids.device) < self.config.id_dropout, 0)
        parts = [self.ids(ids)]
        codes = self.codes[rows]
        parts += [table(codes[..., j]) for j, table in enumerate(self.attributes)]
        if self.numbers.shape[1]:
            parts.append(self.numbers[rows])
        vectors = F.normalize(self.item(torch.cat(parts, dim=-1)), dim=-1)
        return vectors * (rows != 0).unsqueeze(-1).to(vectors.dtype)

    def catalogue_vectors(self, batch_size: int = 65536) -> np.ndarray:
        """Item-tower vectors of every catalogue row, cold-start items included: ``[n_catalogue, dim]``."""
        with torch.no_grad():
            rows = torch.arange(self.n_catalogue, device=self.codes.device)
            return torch.cat([self.item_vectors(chunk) for chunk in rows.split(batch_size)]).cpu().numpy()

"""Training a :class:`~recsys.recommender.Recommender`, stage by stage.

1. :func:`train_encoder` — the GRU session encoder, next-item prediction at every position
   (item embeddings start from item2vec vectors when given).
2. :func:`train_towers` — the DSSM two-tower model on top of it (item tower: id + attributes).
3. :func:`train_reranker` — NeuMF over the two-tower model's top-N candidates for a sample
   of training positions (the target forced into the list, as the re-ranker must see it).
4. :func:`build_recommender` — the item-tower vectors into a ``VectorIndex``; everything into
   one :class:`Recommender`.

:func:`train_recommender` runs all four (stages 1-3 in :func:`train_models`, in DDP workers when
asked); benchmarks call the stages to time and score each.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import torch
from torch.nn import functional as F

from embeddings import ddp
from embeddings.device import resolve_device
from embeddings.errors import ConfigError
from embeddings.index import VectorIndex
from embeddings.launch import Launch
from embeddings.sequences import Sequences
from embeddings.vectors import Embeddings
from embeddings.vocab import Vocabulary
from recsys.attributes import ItemAttributes
from recsys.config import RecommenderConfig
from recsys.encoder import GRUSessionEncoder
from recsys.fit import FitResult, fit
from recsys.neumf import NeuMF, train_neumf
from recsys.padding import length_batches, pad_rows, windows
from recsys.recommender import Recommender
from recsys.two_tower import TwoTower

Validate = Callable[[torch.nn.Module], float]


def initial_vectors(vocab: Vocabulary, vectors: Embeddings, dim: int) -> torch.Tensor:
    """``[len(vocab), dim]`` rows of ``vectors`` for the vocabulary's items; random where missing."""
    if vectors.dim != dim:
        raise ConfigError(f"item vectors have dim {vectors.dim}, the encoder needs {dim}; set the encoder dim to match")
    rng = np.random.default_rng(0)
    scale = float(np.linalg.norm(vectors.vectors, axis=1).mean())
    out = rng.normal(0, scale / np.sqrt(dim), size=(len(vocab), dim)).astype(np.float32)
    keys = vocab.keys.to_list()
    found = [(i + 1, vectors.index_of(k)) for i, k in enumerate(keys) if k in vectors]
    if found:
        rows, source = np.array(found).T
        out[rows] = vectors.vectors[source]
    out[0] = 0.0
    return torch.from_numpy(out)


def train_encoder(
    sequences: Sequences,
    n_tokens: int,
    config: RecommenderConfig = RecommenderConfig(),
    *,
    init: torch.Tensor | None = None,
    validate: Validate | None = None,
    progress: bool = True,
) -> tuple[GRUSessionEncoder, FitResult]:
    """Stage 1: a GRU session encoder trained on ``sequences`` (tokens ``1..n_tokens-1``)."""
    torch.manual_seed(config.seed)
    encoder = GRUSessionEncoder(n_tokens, config.encoder)
    if init is not None:
        encoder.init_items(init)
    result = fit(
        encoder, sequences, config.fit, validate=validate, device=_device(config), progress=progress, label="gru"
    )
    return encoder, result


def train_towers(
    encoder: GRUSessionEncoder,
    sequences: Sequences,
    config: RecommenderConfig = RecommenderConfig(),
    *,
    attributes: ItemAttributes | None = None,
    validate: Validate | None = None,
    progress: bool = True,
) -> tuple[TwoTower, FitResult]:
    """Stage 2: the two-tower model, starting from ``encoder`` (which it goes on training)."""
    torch.manual_seed(config.seed)
    towers = TwoTower.build(encoder, config.tower, attributes)
    result = fit(
        towers, sequences, config.tower_fit, validate=validate, device=_device(config), progress=progress, label="dssm"
    )
    return towers, result


def training_positions(
    model: torch.nn.Module, sequences: Sequences, limit: int, max_length: int, seed: int = 0, batch_tokens: int = 16384
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Up to ``limit`` training positions: session vectors ``[P, dim]``, next-item targets ``[P]``
    and each position's history so far ``[P, max_length]`` (PAD-padded)."""
    seqs = windows(sequences, max_length)
    lengths = seqs.lengths
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.flatnonzero(lengths >= 2))
    take = order[: max(1, np.searchsorted(np.cumsum(lengths[order] - 1), limit))]
    seqs, lengths = seqs.select(take), lengths[take]
    device = next(model.parameters()).device
    sessions, targets, histories = [], [], []
    model.eval()
    with torch.no_grad():
        for rows in length_batches(lengths, batch_tokens):
            tokens, batch_lengths = pad_rows(seqs, rows)
            width = tokens.shape[1] - 1
            vectors = model(tokens[:, :-1].to(device), (batch_lengths - 1).to(device)).cpu()
            mask = torch.arange(width)[None, :] < (batch_lengths - 1)[:, None]
            sessions.append(vectors[mask])
            targets.append(tokens[:, 1:][mask])
            # History of position t: the tokens at 0..t (a causal band of the row).
            band = tokens[:, None, :-1] * torch.ones(width, width, dtype=torch.long).tril()
            histories.append(F.pad(band[mask], (0, max_length - width)))
    return torch.cat(sessions), torch.cat(targets), torch.cat(histories)


def retrieve(
    towers: TwoTower, sessions: torch.Tensor, n: int, exclude: torch.Tensor | None = None, batch_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``n`` trained items and their logits ``u . v / tau`` for each session vector;
    the tokens in ``exclude[P, L]`` (e.g. each position's history) are never retrieved."""
    items = towers.item_vectors().detach().cpu()
    out_rows, out_scores = [], []
    for start in range(0, len(sessions), batch_size):
        logits = sessions[start : start + batch_size] @ items.T / towers.config.temperature
        if exclude is not None:
            logits.scatter_(1, exclude[start : start + batch_size], float("-inf"))
        logits[:, 0] = float("-inf")
        top = torch.topk(logits, n, dim=1)
        out_rows.append(top.indices)
        out_scores.append(top.values)
    return torch.cat(out_rows), torch.cat(out_scores)


def train_reranker(
    towers: TwoTower, sequences: Sequences, config: RecommenderConfig = RecommenderConfig(), *, progress: bool = True
) -> NeuMF:
    """Stage 3: NeuMF trained listwise on the towers' top-N candidates of sampled training positions.

    With ``config.exclude_seen`` the candidates leave out each position's history, as they will
    when recommending with seen items excluded (else NeuMF learns to demote items like them).
    """
    if config.neumf is None:
        raise ConfigError("the re-ranker is switched off (neumf=None)")
    towers.eval()
    sessions, targets, histories = training_positions(
        towers, sequences, config.rerank_positions, config.fit.max_length, seed=config.seed
    )
    n = min(config.candidates, towers.n_tokens - 1)
    candidates, base = retrieve(towers, sessions, n, histories if config.exclude_seen else None)
    missing = ~(candidates == targets[:, None]).any(dim=1)
    # Put a missed target in the last slot. Every target gets its true two-tower logit: in a small
    # catalogue the top n reaches the excluded (history) items, so a target seen before can be
    # among the candidates with a score of -inf.
    candidates[missing, -1] = targets[missing]
    positions = (candidates == targets[:, None]).to(torch.uint8).argmax(dim=1)
    rows = torch.arange(len(targets))
    base[rows, positions] = (sessions * towers.item_vectors(targets).detach()).sum(-1) / towers.config.temperature
    return train_neumf(
        sessions,
        candidates,
        base,
        targets,
        config.neumf,
        item_init=towers.item_vectors().detach().cpu(),
        n_tokens=towers.n_tokens,
        progress=progress,
    )


def build_recommender(
    towers: TwoTower,
    neumf: NeuMF | None,
    vocab: Vocabulary,
    users: pl.Series,
    histories: Sequences,
    config: RecommenderConfig = RecommenderConfig(),
    *,
    attributes: ItemAttributes | None = None,
) -> Recommender:
    """Stage 4: index the catalogue's item-tower vectors and assemble the :class:`Recommender`."""
    towers.eval()
    catalogue = (
        attributes.keys
        if attributes is not None
        else pl.concat([pl.Series("key", [None], dtype=vocab.keys.dtype), vocab.keys.rename("key")])
    )
    vectors = towers.catalogue_vectors()
    index = VectorIndex.build(
        np.arange(1, len(catalogue)), vectors[1:], kind=config.index_kind, metric="ip", device="cpu"
    )
    popularity = np.zeros(len(catalogue), dtype=np.int64)
    popularity[: len(vocab)] = np.bincount(histories.tokens, minlength=len(vocab))[: len(vocab)]
    return Recommender(
        model=towers.cpu(),
        neumf=neumf.cpu() if neumf is not None else None,
        catalogue=catalogue,
        users=users,
        histories=histories,
        popularity=popularity,
        index=index,
        attributes=attributes,
        candidates=config.candidates,
        max_history=config.fit.max_length,
    )


def train_recommender(
    interactions,
    config: RecommenderConfig = RecommenderConfig(),
    *,
    item_vectors: Embeddings | None = None,
    item_attributes: pl.DataFrame | None = None,
    attribute_id: str = "item_id",
    progress: bool = True,
    launch: Launch = Launch(),
) -> Recommender | None:
    """All stages on ``interactions`` (a :class:`recsys.data.Interactions`); returns the recommender.

    ``item_vectors`` (e.g. an item2vec model's embeddings) initialise the item embeddings;
    ``item_attributes`` (one row per item, id column ``attribute_id``) feed the item tower
    and bring cold-start items (attributes but no events) into the catalogue. With several
    workers in ``launch`` stages 1-3 train in DDP (:mod:`embeddings.ddp`) and this process builds
    the recommender from rank 0's models; on a follower node it returns None.
    """
    vocab, sequences = interactions.vocab, interactions.sequences
    n_tokens = len(vocab)
    init = initial_vectors(vocab, item_vectors, config.encoder.dim) if item_vectors is not None else None
    attributes = (
        ItemAttributes.from_frame(item_attributes, attribute_id, vocab.keys) if item_attributes is not None else None
    )
    trained = ddp.launch(
        launch, train_models, sequences, n_tokens, config, init, attributes, progress, device=_device(config)
    )
    if trained is None:
        return None
    towers, neumf, metrics = trained
    recommender = build_recommender(towers, neumf, vocab, interactions.users, sequences, config, attributes=attributes)
    recommender.metrics = metrics
    return recommender


def train_models(
    sequences: Sequences,
    n_tokens: int,
    config: RecommenderConfig,
    init: torch.Tensor | None,
    attributes: ItemAttributes | None,
    progress: bool,
) -> tuple[TwoTower, NeuMF | None, dict]:
    """Stages 1-3: the towers, the re-ranker (None when switched off) and the training metrics."""
    encoder, encoder_fit = train_encoder(sequences, n_tokens, config, init=init, progress=progress)
    towers, towers_fit = train_towers(encoder, sequences, config, attributes=attributes, progress=progress)
    neumf = train_reranker(towers, sequences, config, progress=progress) if config.neumf is not None else None
    metrics = {
        "gru_loss": encoder_fit.history[-1]["loss"],
        "dssm_loss": towers_fit.history[-1]["loss"],
        "gru_seconds": sum(h["seconds"] for h in encoder_fit.history),
        "dssm_seconds": sum(h["seconds"] for h in towers_fit.history),
    }
    return towers, neumf, metrics


def _device(config: RecommenderConfig) -> torch.device:
    return torch.device(resolve_device(config.device))

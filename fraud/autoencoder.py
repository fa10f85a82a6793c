"""A GRU sequence autoencoder over each entity's per-step features; reconstruction error = anomaly score.

A *window* is ``L = window`` consecutive steps of one entity, ending at some step ``t``: rows
``t - L + 1 .. t`` of :class:`~fraud.features.Features` (fewer at the start of an entity's
history: the window is then left-padded and the padding masked). Each feature is standardised
with the mean and standard deviation of the training steps (stored in the model), giving
``x_1 .. x_L``; the encoder reads ``[x_i * m_i, m_i]`` (``m_i`` = 1 on real steps, 0 on padding).

Model::

    h   = GRU_enc([x_i * m_i, m_i]_{i=1..L})           final hidden state (both directions
                                                       concatenated when bidirectional)
    z   = W_b dropout(h) + b_b                         the bottleneck, ``bottleneck`` wide
    y_i = W_o GRU_dec(z, z, ..., z; h_0 = tanh(W_h z))_i   teacher-free decoder, L outputs

Objective (minimised with Adam and gradient-norm clipping at ``clip``; with ``denoise`` > 0
the encoder sees ``x_i + eps_i``, ``eps_i ~ N(0, denoise^2)``, and the target stays ``x_i``)::

    loss = sum_{windows} sum_i m_i * mean_c (y_{i,c} - x_{i,c})^2 / sum_{windows} sum_i m_i

an equal-weight mean over the ``C`` feature *columns* (each column of the counterparty vector
counts as one), so the decoder learns the vector itself.

Score: the error of step ``i`` is a weighted sum over the columns in which every *feature*
counts once (:func:`~fraud.features.column_weights`: a scalar feature's column weighs 1, the
``d`` columns of the counterparty vector ``1 / d`` each, all normalised to sum to 1)::

    e_i = sum_c w_c (y_{i,c} - x_{i,c})^2

Training uses genuine history only: windows ending at every ``stride``-th step of every
entity, minus the windows that contain a step labelled fraud when the features carry labels
(labels are used for nothing else). :func:`score_steps` gives step ``t`` the error ``e_L`` of
the window ending at ``t`` — a function of steps ``t - L + 1 .. t`` only, so scores are causal:
later transactions never change an earlier score.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embeddings import ddp
from embeddings.device import resolve_device
from embeddings.errors import ConfigError, DataError
from embeddings.files import atomic_directory, format_tag, read_manifest
from fraud.config import AutoencoderConfig
from fraud.features import Features, column_weights

CONFIG_FILE = "autoencoder.json"
WEIGHTS_FILE = "weights.pt"
FORMAT = format_tag("autoencoder", 1)


class SequenceAutoencoder(nn.Module):
    """GRU encoder -> linear bottleneck -> GRU decoder over standardised, masked windows.

    ``mean`` and ``std`` (buffers, saved with the weights) standardise feature rows;
    ``feature_names`` records which features the model was trained on, and ``weights`` (from
    the names, :func:`~fraud.features.column_weights`) how much each column counts in a step's
    error: ``e_i = sum_f w_f (y_if - x_if)^2`` with ``sum_f w_f = 1``, every feature once.
    """

    def __init__(self, feature_names: list[str], config: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or AutoencoderConfig()
        self.feature_names = list(feature_names)
        n = len(self.feature_names)
        if n < 1:
            raise ConfigError("the autoencoder needs at least one feature")
        directions = 2 if config.bidirectional else 1
        between = config.dropout if config.layers > 1 else 0.0
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))
        self.register_buffer("weights", torch.from_numpy(column_weights(self.feature_names)), persistent=False)
        self.encoder = nn.GRU(
            n + 1, config.hidden, config.layers, batch_first=True, bidirectional=config.bidirectional, dropout=between
        )
        self.drop = nn.Dropout(config.dropout)
        self.to_bottleneck = nn.Linear(directions * config.hidden, config.bottleneck)
        self.to_hidden = nn.Linear(config.bottleneck, config.layers * config.hidden)
        self.decoder = nn.GRU(config.bottleneck, config.hidden, config.layers, batch_first=True, dropout=between)
        self.output = nn.Linear(config.hidden, n)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Bottleneck vectors ``[B, bottleneck]`` of standardised windows ``x [B, L, F]`` with ``mask [B, L]``."""
        m = mask.unsqueeze(-1)
        _, h = self.encoder(torch.cat([x * m, m], dim=-1))
        if self.config.bidirectional:
            last = torch.cat([h[-2], h[-1]], dim=-1)
        else:
            last = h[-1]
        return self.to_bottleneck(self.drop(last))

    def decode(self, z: torch.Tensor, length: int) -> torch.Tensor:
        """Reconstructed standardised windows ``[B, length, F]`` from bottleneck vectors ``z``."""
        out, _ = self._run_decoder(z, length)
        return self.output(out)

    def _run_decoder(self, z: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder GRU's outputs ``[B, length, hidden]`` and final states ``[layers, B, hidden]``."""
        c = self.config
        h0 = torch.tanh(self.to_hidden(z)).view(z.shape[0], c.layers, c.hidden).transpose(0, 1).contiguous()
        return self.decoder(z.unsqueeze(1).expand(-1, length, -1), h0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x, mask), x.shape[1])

    def step_errors(self, x: torch.Tensor, mask: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Per-step errors ``e_i = sum_f w_f (y_if - x_if)^2``, ``[B, L]`` (0 on padding); ``z``:
        the windows' bottleneck vectors when already encoded."""
        y = self.decode(z, x.shape[1]) if z is not None else self(x, mask)
        return (((y - x) ** 2) * self.weights).sum(dim=-1) * mask

    def last_step_errors(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``step_errors(x, mask)[:, -1]``, ``[B]``, projecting only the decoder's last output.

        Both weigh by an elementwise product and a row sum, not a matrix-vector product, whose
        rounding can depend on the row's place in the batch: a step's score must not depend on
        which other windows share its batch (chunked and resumed runs store the same scores).
        """
        _, h = self._run_decoder(self.encode(x, mask), x.shape[1])
        return (((self.output(h[-1]) - x[:, -1]) ** 2) * self.weights).sum(dim=-1) * mask[:, -1]


# ---------------------------------------------------------------------------------------------
# Windows over CSR feature sequences


def _first_rows(offsets: np.ndarray) -> np.ndarray:
    """For every step, the row of its entity's first step."""
    return np.repeat(offsets[:-1], np.diff(offsets))


def _windows(
    standardised: torch.Tensor, first: np.ndarray, ends: np.ndarray, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-aligned windows ``[B, L, F]`` ending at rows ``ends`` and their masks ``[B, L]``.

    Position ``L - 1`` holds the end step; positions before the entity's first step are padding
    (zeros, mask 0).
    """
    rows = ends[:, None] - (length - 1) + np.arange(length)[None, :]
    valid = rows >= first[ends][:, None]
    rows = np.where(valid, rows, ends[:, None])
    index = torch.from_numpy(rows).to(standardised.device)
    mask = torch.from_numpy(valid.astype(np.float32)).to(standardised.device)
    return standardised[index] * mask.unsqueeze(-1), mask


def _check_features(model: SequenceAutoencoder, features: Features) -> None:
    if list(features.names) != model.feature_names:
        raise DataError(
            f"features do not match the autoencoder: it was trained on {model.feature_names}, got {list(features.names)}"
        )


def _standardised(model: SequenceAutoencoder, features: Features, device: torch.device) -> torch.Tensor:
    matrix = torch.from_numpy(np.ascontiguousarray(features.matrix, dtype=np.float32)).to(device)
    return (matrix - model.mean) / model.std


# ---------------------------------------------------------------------------------------------
# Training


def training_ends(features: Features, config: AutoencoderConfig, exclude_labelled: bool = True) -> np.ndarray:
    """Rows whose window trains the model: every ``stride``-th step of each entity (counted from
    its first), minus windows that contain a step labelled fraud (when labels are present)."""
    n = features.n_steps
    first = _first_rows(features.offsets)
    position = np.arange(n) - first
    keep = position % config.stride == 0
    if exclude_labelled and "label" in features.frame.columns:
        fraud = features.frame["label"].fill_null(0).to_numpy().astype(np.int64)
        before = np.concatenate([[0], np.cumsum(fraud)])
        start = np.maximum(first, np.arange(n) - (config.window - 1))
        keep &= (before[np.arange(n) + 1] - before[start]) == 0
    return np.flatnonzero(keep)


def train_autoencoder(
    features: Features, config: AutoencoderConfig | None = None, *, exclude_labelled: bool = True
) -> SequenceAutoencoder:
    """Fit a :class:`SequenceAutoencoder` on the genuine windows of ``features`` (see the module doc).

    Labels (``features.frame["label"]``) only remove windows with a known fraud from training,
    and only with ``exclude_labelled``. Seeded by ``config.seed`` (the global torch RNG is left
    as it was). Returns the model in eval mode, on ``config.device``. In a launch of several
    workers it trains in DDP, each rank on its rows of every batch (:mod:`embeddings.ddp`).
    """
    config = config or AutoencoderConfig()
    device = resolve_device(config.device)
    ends = training_ends(features, config, exclude_labelled)
    if ends.size == 0:
        raise DataError("no genuine windows to train the autoencoder on")
    first = _first_rows(features.offsets)
    # Standardise with the steps the training windows cover (all genuine when labels are known).
    covered = np.concatenate([e[e >= first[ends]] for e in (ends - k for k in range(config.window))])
    train_rows = np.unique(covered)

    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        model = SequenceAutoencoder(list(features.names), config)
        covered = features.matrix[train_rows].astype(np.float64)
        mean = covered.mean(axis=0)
        std = covered.std(axis=0)
        std = np.where(std > 1e-6, std, 1.0)  # a constant feature is compared on its raw scale
        model.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        model.std.copy_(torch.from_numpy(std.astype(np.float32)))
        model.to(device)
        standardised = _standardised(model, features, device)
        ranks = ddp.ranks()
        net = ranks.wrap(model)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
        generator = torch.Generator().manual_seed(config.seed)
        model.train()
        for _ in range(config.epochs):
            order = torch.randperm(ends.size, generator=generator).numpy()
            batches = (order[start : start + config.batch_size] for start in range(0, ends.size, config.batch_size))
            for batch in ranks.parts(batches):
                x, mask = _windows(standardised, first, ends[batch], config.window)
                noisy = x + config.denoise * torch.randn(x.shape, device=device) if config.denoise > 0 else x
                # Trained on every column equally: the decoder must learn the counterparty vector
                # itself to tell a habitual counterparty from a new one; the *score* weighs each
                # feature once (measured on the demo world: training with the score's weights
                # left the vector columns noisy and lowered takeover and ring ROC-AUC by ~0.05).
                errors = ((net(noisy, mask) - x) ** 2).mean(dim=-1) * mask
                loss = errors.sum() / mask.sum()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                optimiser.step()
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Scoring


@torch.no_grad()
def window_batches(model: SequenceAutoencoder, features: Features, rows: np.ndarray | None = None):
    """Yield ``(part, ends, x, mask)``: standardised windows ``x [B, L, F]`` ending at feature rows
    ``ends = rows[part]`` (every step when ``rows`` is None), with masks ``[B, L]``, in batches of
    ``config.score_batch_size``."""
    _check_features(model, features)
    model.eval()
    standardised = _standardised(model, features, model.mean.device)
    first = _first_rows(features.offsets)
    rows = np.arange(features.n_steps) if rows is None else rows
    size = model.config.score_batch_size
    for start in range(0, rows.size, size):
        part = slice(start, min(start + size, rows.size))
        yield part, rows[part], *_windows(standardised, first, rows[part], model.config.window)


def window_errors(model: SequenceAutoencoder, features: Features) -> np.ndarray:
    """Per-step errors of the window ending at every step, float32 ``[n_steps, L]``.

    Column ``L - 1`` is the step itself, column ``L - 1 - k`` the step ``k`` before it; NaN where
    the entity has fewer earlier steps. Batched (``config.score_batch_size`` windows at a time).
    """
    return window_errors_and_vectors(model, features)[0]


@torch.no_grad()
def window_errors_and_vectors(model: SequenceAutoencoder, features: Features) -> tuple[np.ndarray, np.ndarray]:
    """:func:`window_errors` ``[n_steps, L]`` and :func:`embed_windows` ``[n_steps, bottleneck]``
    in one pass: each window is built and encoded once."""
    errors = np.empty((features.n_steps, model.config.window), dtype=np.float32)
    vectors = np.empty((features.n_steps, model.config.bottleneck), dtype=np.float32)
    for _, ends, x, mask in window_batches(model, features):
        z = model.encode(x, mask)
        errors[ends] = torch.where(mask > 0, model.step_errors(x, mask, z), torch.nan).cpu().numpy()
        vectors[ends] = z.cpu().numpy()
    return errors, vectors


@torch.no_grad()
def score_steps(model: SequenceAutoencoder, features: Features) -> np.ndarray:
    """Anomaly score of every step, float32 ``[n_steps]``: the reconstruction error of the step
    as the last step of the window ending at it (causal: uses that step and earlier ones only).

    Equals ``window_errors(model, features)[:, -1]``; only the last decoder output is projected.
    """
    out = np.empty(features.n_steps, dtype=np.float32)
    for _, ends, x, mask in window_batches(model, features):
        out[ends] = model.last_step_errors(x, mask).cpu().numpy()
    return out


def score_windows(model: SequenceAutoencoder, features: Features, reduce: str = "mean") -> np.ndarray:
    """Score of the window ending at every step, ``[n_steps]``: mean or max of its step errors."""
    if reduce not in ("mean", "max"):
        raise ConfigError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    errors = window_errors(model, features)
    return np.nanmean(errors, axis=1) if reduce == "mean" else np.nanmax(errors, axis=1)


@torch.no_grad()
def embed_windows(model: SequenceAutoencoder, features: Features) -> np.ndarray:
    """Bottleneck vector of the window ending at every step, float32 ``[n_steps, bottleneck]``."""
    out = np.empty((features.n_steps, model.config.bottleneck), dtype=np.float32)
    for _, ends, x, mask in window_batches(model, features):
        out[ends] = model.encode(x, mask).cpu().numpy()
    return out


# ---------------------------------------------------------------------------------------------
# Save / load


def save_autoencoder(model: SequenceAutoencoder, directory: str | os.PathLike) -> Path:
    """Write ``directory`` (config JSON + state dict), all or nothing; return its path."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        meta = {"format": FORMAT, "config": asdict(model.config), "feature_names": model.feature_names}
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save(state, tmp / WEIGHTS_FILE)
    return directory


def load_autoencoder(directory: str | os.PathLike, device: str = "auto") -> SequenceAutoencoder:
    """Load a model written by :func:`save_autoencoder` (weights with ``weights_only=True``) onto
    ``device`` (``"auto"``: CUDA when visible, else CPU), whatever device it was trained on; its config
    keeps the training settings as saved."""
    directory = Path(directory)
    meta = read_manifest(directory, CONFIG_FILE, FORMAT, "an autoencoder")
    known = {f.name for f in fields(AutoencoderConfig)}
    values = {k: v for k, v in meta.get("config", {}).items() if k in known}
    config = AutoencoderConfig(**values)
    model = SequenceAutoencoder(list(meta["feature_names"]), config)
    state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(resolve_device(device)).eval()

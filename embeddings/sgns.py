"""Skip-gram and CBOW with negative sampling (word2vec, item2vec) over :class:`Sequences`.

Each position ``c`` of a sequence is a centre; its context is every position
within a dynamic window: a reduced window ``b ~ U[0, window)`` is drawn per
centre and the context spans ``window - b`` positions on each side. Skip-gram
maximises, for every (centre ``o``, context ``c``) pair,

    log σ(u_o · v_c) + Σ_{k=1..negative} log σ(-u_k · v_c),

and CBOW the same with ``v_c`` replaced by the mean of the context's input
vectors. ``v`` are the input vectors (``input_vectors``, the embeddings), ``u``
the output vectors (``output_vectors``, word2vec's ``syn1neg``) and the noise
tokens ``k`` are drawn with probability ∝ ``count**ns_exponent`` (0.75).

Before windows are formed, each occurrence of a token with frequency ``f``
(``count / total``) is kept with probability
``(sqrt(f / s) + 1) · s / f`` (capped at 1, ``s`` = ``sample``), the formula
word2vec and gensim use. The learning rate decays linearly from ``alpha`` to
``min_alpha`` over all epochs' tokens. As in gensim, a target whose score
``u·v`` lies beyond ±6 gets no update. Token 0 is reserved for unknown/padding:
it is never trained, never a context and never a negative, and neither is any
token whose count is 0.

Two backends share this objective: a compiled Hogwild kernel on CPU
(:mod:`embeddings.sgns_kernels`, like word2vec.c / gensim: threads update the
shared matrices without locks) and a batched torch path for CUDA
(:mod:`embeddings.sgns_torch`). With ``workers=1`` the CPU kernel is exactly
reproducible for a seed; with more workers the threads race on shared rows, so
results differ slightly from run to run, as in gensim.

:func:`item2vec` is this objective over vocabulary-encoded item sequences, returning the items'
input vectors as :class:`Embeddings` (:func:`embeddings.jobs.run_item2vec` is the job around it).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from tqdm.auto import tqdm

from embeddings.device import resolve_device
from embeddings.errors import ConfigError, DataError
from embeddings.memory import check_memory
from embeddings.sequences import Sequences
from embeddings.sgns_config import SGNSConfig
from embeddings.sgns_kernels import sigmoid_tables, train_chunk
from embeddings.sgns_torch import train_torch
from embeddings.vectors import Embeddings
from embeddings.vocab import Vocabulary


@dataclass
class SGNSResult:
    """Trained matrices and training statistics.

    ``input_vectors`` (float32, ``(V, dim)``) are the embeddings;
    ``output_vectors`` (float32, ``(V, dim)``) are the negative-sampling weights.
    ``epoch_loss[e]`` is the mean negative log-likelihood per example (a
    skip-gram pair or a CBOW centre) in epoch ``e``; ``items_per_s`` is raw
    tokens × epochs / ``seconds`` of training; ``kept_tokens[e]`` is how many
    tokens survived subsampling in epoch ``e``.
    """

    input_vectors: np.ndarray
    output_vectors: np.ndarray
    epoch_loss: list[float] = field(default_factory=list)
    kept_tokens: list[int] = field(default_factory=list)
    items_per_s: float = 0.0
    seconds: float = 0.0
    backend: str = "numba"


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Probability of keeping one occurrence of each token, float64 ``(V,)``.

    With ``t = sample · total`` (total = sum of counts), a token of count ``n``
    is kept with probability ``min(1, (sqrt(n / t) + 1) · t / n)``; ``sample=0``
    keeps everything. Token 0 and tokens of count 0 get 0 (never trained).
    """
    counts = np.asarray(counts, dtype=np.float64).copy()
    counts[:1] = 0.0
    keep = np.zeros_like(counts)
    present = counts > 0
    if sample == 0:
        keep[present] = 1.0
        return keep
    threshold = sample * counts.sum()
    n = counts[present]
    keep[present] = np.minimum((np.sqrt(n / threshold) + 1.0) * threshold / n, 1.0)
    return keep


def noise_distribution(counts: np.ndarray, ns_exponent: float) -> np.ndarray:
    """Negative-sampling probabilities ∝ ``count**ns_exponent``, float64 ``(V,)``; 0 for token 0 and unseen tokens."""
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.zeros_like(counts)
    present = counts > 0
    present[:1] = False
    weights[present] = counts[present] ** ns_exponent
    return weights / weights.sum()


def _noise_tables(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative distribution (ending at exactly 1) and its guide table for the kernel."""
    cum = np.cumsum(probs)
    cum /= cum[-1]
    n = probs.size
    guide = np.searchsorted(cum, np.arange(n, dtype=np.float64) / n, side="right").astype(np.int32)
    return cum, guide


def _check_inputs(sequences: Sequences, counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size < 2:
        raise DataError(f"counts must be a 1-D array with one entry per token (at least 2), got shape {counts.shape}")
    if not (np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)):
        raise DataError(f"counts must be numbers, got dtype {counts.dtype}")
    bad = np.flatnonzero(~np.isfinite(counts) | (counts < 0))
    if bad.size:
        raise DataError(f"counts must be finite and >= 0; token {bad[0]} has count {counts[bad[0]]}")
    if not np.any(counts[1:] > 0):
        raise DataError("counts: no token other than 0 has a positive count, nothing to train")
    tokens = sequences.tokens
    if tokens.size:
        bad = np.flatnonzero((tokens < 0) | (tokens >= counts.size))
        if bad.size:
            raise DataError(
                f"sequences: token {tokens[bad[0]]} at position {bad[0]} is outside the vocabulary [0, {counts.size})"
            )
    return counts


def _chunk_bounds(done: np.ndarray, chunk_tokens: int) -> np.ndarray:
    """Cut points that split visited sequences into runs of about ``chunk_tokens`` tokens.

    ``done[q]`` is the number of tokens before the ``q``-th visited sequence (``n + 1`` entries).
    """
    bounds = np.searchsorted(done, np.arange(0, done[-1], chunk_tokens), side="left")
    return np.unique(np.concatenate([[0], bounds, [done.size - 1]]))


def init_vectors(n_vocab: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """gensim's start: input vectors U(-1, 1) / dim, output vectors zero; row 0 zero in both."""
    rng = np.random.default_rng(seed)
    syn0 = (rng.random((n_vocab, dim), dtype=np.float32) * 2 - 1) / np.float32(dim)
    syn0[0] = 0.0
    return syn0, np.zeros((n_vocab, dim), dtype=np.float32)


def train_sgns(
    sequences: Sequences, counts: np.ndarray, config: SGNSConfig | None = None, progress: bool = True
) -> SGNSResult:
    """Train input/output vectors for ``V = len(counts)`` tokens on ``sequences``.

    ``counts[i]`` is the frequency of token ``i`` (it drives subsampling and the
    noise distribution); tokens are int32 in ``[0, V)``. Shows a tqdm bar with
    the running loss and items/s unless ``progress=False``.
    """
    config = config or SGNSConfig()
    counts = _check_inputs(sequences, counts)
    device = resolve_device(config.device)
    backend = config.backend
    if backend == "auto":
        backend = "numba" if device.type == "cpu" else "torch"
    if backend == "numba" and device.type != "cpu":
        raise ConfigError(f"backend 'numba' runs on CPU only, got device {config.device!r}; use backend torch")

    check_memory(
        "the SGNS matrices", 2 * counts.size * config.dim * 4, f"2 x {counts.size:,} x dim {config.dim} float32"
    )
    keep = keep_probabilities(counts, config.sample)
    noise = noise_distribution(counts, config.ns_exponent)
    syn0, syn1 = init_vectors(counts.size, config.dim, config.seed)
    total = config.epochs * sequences.n_tokens
    bar = tqdm(total=total, unit="item", unit_scale=True, disable=not progress, desc=f"{config.mode} ({backend})")
    start = time.perf_counter()
    with bar:
        if backend == "numba":
            epoch_loss, kept_tokens = _train_numba(sequences, keep, noise, syn0, syn1, config, bar)
        else:
            syn0, syn1, epoch_loss, kept_tokens = train_torch(sequences, keep, noise, syn0, syn1, config, device, bar)
    seconds = time.perf_counter() - start
    return SGNSResult(
        input_vectors=syn0,
        output_vectors=syn1,
        epoch_loss=epoch_loss,
        kept_tokens=kept_tokens,
        items_per_s=total / seconds if seconds > 0 else 0.0,
        seconds=seconds,
        backend=backend,
    )


def _train_numba(
    sequences: Sequences,
    keep: np.ndarray,
    noise: np.ndarray,
    syn0: np.ndarray,
    syn1: np.ndarray,
    config: SGNSConfig,
    bar: tqdm,
) -> tuple[list[float], list[int]]:
    offsets, tokens = sequences.offsets, sequences.tokens
    lengths = np.diff(offsets)
    keep32 = keep.astype(np.float32)
    noise_cum, noise_guide = _noise_tables(noise)
    sig_table, logsig_table = sigmoid_tables()
    n_tokens = max(int(offsets[-1]), 1)
    schedule_total = config.epochs * n_tokens
    cbow = config.mode == "cbow"
    rng = np.random.default_rng(config.seed)

    def alpha_at(position: int) -> float:
        return config.alpha - (config.alpha - config.min_alpha) * position / schedule_total

    def run(epoch: int, order: np.ndarray, done: np.ndarray, chunk: tuple[int, int]) -> tuple[float, int, int]:
        first, last = chunk
        base = epoch * n_tokens
        loss, examples, kept = train_chunk(
            syn0, syn1, tokens, offsets, order, first, last, keep32, noise_cum, noise_guide,
            sig_table, logsig_table, config.window, config.negative, cbow,
            alpha_at(base + int(done[first])), alpha_at(base + int(done[last])),
            _chunk_seed(config.seed, epoch, first),
        )  # fmt: skip
        return loss, examples, kept

    workers = config.workers or os.cpu_count() or 1
    epoch_loss, kept_tokens = [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for epoch in range(config.epochs):
            order = rng.permutation(lengths.size) if config.shuffle else np.arange(lengths.size)
            done = np.concatenate([[0], np.cumsum(lengths[order])])  # tokens before each visited sequence
            bounds = _chunk_bounds(done, config.chunk_tokens)
            chunks = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
            job = partial(run, epoch, order, done)
            results = map(job, chunks) if workers == 1 else pool.map(job, chunks)
            loss_sum, examples, kept = 0.0, 0, 0
            for (first, last), (loss, n_examples, n_kept) in zip(chunks, results):
                loss_sum, examples, kept = loss_sum + loss, examples + n_examples, kept + n_kept
                bar.update(int(done[last] - done[first]))
                bar.set_postfix(loss=f"{loss_sum / max(examples, 1):.4f}", refresh=False)
            epoch_loss.append(loss_sum / max(examples, 1))
            kept_tokens.append(kept)
    return epoch_loss, kept_tokens


def _chunk_seed(seed: int, epoch: int, first: int) -> int:
    """A 63-bit seed per (seed, epoch, chunk start), independent of which thread runs the chunk."""
    return int(np.random.SeedSequence([seed, epoch, first]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def item2vec(
    sequences: Sequences, vocab: Vocabulary, config: SGNSConfig | None = None, *, progress: bool = True
) -> tuple[Embeddings, SGNSResult]:
    """item2vec: train SGNS on ``sequences`` (tokens index ``vocab``) and return the items' vectors.

    The embeddings hold one float32 row of ``config.dim`` per real vocabulary key (the
    reserved padding index 0 is left out); the result carries the loss and throughput.
    """
    result = train_sgns(sequences, vocab.counts, config or SGNSConfig(), progress=progress)
    keys = vocab.decode(np.arange(1, len(vocab)))
    return Embeddings(keys, result.input_vectors[1:]), result

"""Padded minibatches from CSR :class:`~embeddings.sequences.Sequences` for the GRU.

Sequences are grouped by length before batching, so a batch pads to its own longest
sequence and the GRU (run on packed sequences) spends no work on padding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from embeddings.checks import check_int
from embeddings.sequences import Sequences


def pad_rows(
    sequences: Sequences, rows: np.ndarray, max_length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-aligned padded tokens ``[B, L]`` (PAD = 0) and lengths ``[B]`` for ``rows``.

    With ``max_length`` only the last ``max_length`` tokens of each sequence are kept (the
    most recent history). Empty sequences get length 0 and an all-PAD row.
    """
    starts = sequences.offsets[rows]
    ends = sequences.offsets[rows + 1]
    if max_length is not None:
        starts = np.maximum(starts, ends - max_length)
    lengths = (ends - starts).astype(np.int64)
    width = max(int(lengths.max(initial=0)), 1)
    padded = np.zeros((len(rows), width), dtype=np.int64)
    column = np.arange(width)
    inside = column[None, :] < lengths[:, None]
    padded[inside] = sequences.tokens[(starts[:, None] + column[None, :])[inside]]
    return torch.from_numpy(padded), torch.from_numpy(lengths)


def windows(sequences: Sequences, max_length: int) -> Sequences:
    """Cut sequences longer than ``max_length + 1`` into consecutive training windows.

    Consecutive windows overlap by one token, so every next-item transition of the original
    sequence is predicted exactly once; the first steps of a later window see a shorter
    history than they had in the full sequence (the price of bounded training cost).
    """
    check_int("max_length", max_length)
    lengths = sequences.lengths
    step = max_length
    # Number of windows per sequence: transitions (len - 1) split into chunks of `step`.
    pieces = np.maximum(1, -(-(np.maximum(lengths, 1) - 1) // step))
    owner = np.repeat(np.arange(len(sequences)), pieces)
    first = np.arange(len(owner)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    starts = sequences.offsets[owner] + first * step
    ends = np.minimum(starts + step + 1, sequences.offsets[owner + 1])
    window_lengths = ends - starts
    index = np.repeat(starts - np.cumsum(window_lengths) + window_lengths, window_lengths) + np.arange(
        int(window_lengths.sum())
    )
    return Sequences.from_lengths(window_lengths, sequences.tokens[index])


def length_batches(
    lengths: np.ndarray, tokens_per_batch: int, rng: np.random.Generator | None = None
) -> Iterator[np.ndarray]:
    """Yield row indices grouped by similar length, about ``tokens_per_batch`` tokens each.

    With ``rng`` rows are shuffled within equal lengths and the batch order is shuffled,
    so every epoch sees different batches; without it the order is deterministic.
    """
    check_int("tokens_per_batch", tokens_per_batch)
    jitter = rng.random(len(lengths)) if rng is not None else np.arange(len(lengths))
    order = np.lexsort((jitter, lengths))
    sorted_lengths = np.maximum(lengths[order], 1)
    # Close a batch when its padded size (rows x longest) would pass the budget.
    batches, start = [], 0
    while start < len(order):
        width = sorted_lengths[start]
        stop = start + max(1, tokens_per_batch // width)
        # Lengths ascend, so the last row in range is the widest: shrink until it fits.
        while stop - start > 1 and (stop - start) * sorted_lengths[min(stop, len(order)) - 1] > tokens_per_batch:
            stop = start + max(1, tokens_per_batch // sorted_lengths[min(stop, len(order)) - 1])
        batches.append(order[start:stop])
        start = stop
    if rng is not None:
        rng.shuffle(batches)
    yield from batches

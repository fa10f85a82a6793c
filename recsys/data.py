"""Interactions -> per-user item sequences -> evaluation splits.

An interaction is one row: a *user* touched an *item* at time *ts* (optionally with a
weight, which is checked but not used). :func:`read_interactions` reads any source of
:mod:`embeddings.sources` into :class:`Interactions`: one sequence of item tokens per user,
in time order (ties keep the order of the source).

Splits turn sequences into training sequences plus :class:`EvalCases` (a history and the
item that followed it):

- :func:`leave_one_out`: the last item of each user is the test target, the second-to-last
  the validation target (the protocol of the NCF, SASRec and BERT4Rec papers);
- :func:`time_split`: the first item at or after a cutoff time is the test target;
- :func:`prefix_cases`: every prefix of every sequence -> its next item (SR-GNN's
  augmentation of session data).

All of it is numpy over whole arrays: no Python loop over users or cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import polars as pl

from embeddings.data import BuildReport, EventSchema, ReadReport, build_sequences
from embeddings.errors import ConfigError, DataError
from embeddings.event_stream import read_event_table
from embeddings.sequences import Sequences
from embeddings.sources import Source
from embeddings.vocab import Vocabulary


@dataclass(frozen=True)
class InteractionsReport:
    """What :func:`read_interactions` read (rows, users, items) and kept (sequences, tokens)."""

    read: ReadReport
    build: BuildReport

    def __str__(self) -> str:
        return f"{self.read}; {self.build}"


@dataclass(frozen=True)
class Interactions:
    """One item sequence per user.

    ``users``: polars Series of user keys; ``users[i]`` owns ``sequences[i]``.
    ``sequences``: item tokens of :attr:`vocab` (``1 .. n_items``) in time order.
    ``times``: int64 µs since the epoch (naive UTC), one per token of ``sequences``, or
    ``None`` when the source had no timestamp column (then the source order is the time order).
    """

    users: pl.Series
    sequences: Sequences
    times: np.ndarray | None
    vocab: Vocabulary
    report: InteractionsReport

    def __post_init__(self) -> None:
        if len(self.users) != len(self.sequences):
            raise ValueError(f"{len(self.users)} users for {len(self.sequences)} sequences")
        if self.times is not None and self.times.shape != (self.sequences.n_tokens,):
            raise ValueError(f"times has shape {self.times.shape}; expected ({self.sequences.n_tokens},)")

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        """Number of real items; tokens run ``1 .. n_items`` (0 is PAD)."""
        return len(self.vocab) - 1


@dataclass(frozen=True)
class EvalCases:
    """``B`` evaluation cases: after ``histories[i]`` the user took item ``targets[i]``.

    ``targets``: int64 item tokens ``>= 1``, shape ``(B,)``. ``users``: int64 ``(B,)``, the row
    of the case's user (in :class:`Interactions` / the split's sequences) or ``-1`` when the
    case has no known user (an anonymous session).
    """

    histories: Sequences
    targets: np.ndarray
    users: np.ndarray

    def __post_init__(self) -> None:
        targets = np.asarray(self.targets, dtype=np.int64)
        users = np.asarray(self.users, dtype=np.int64)
        if targets.shape != (len(self.histories),) or users.shape != (len(self.histories),):
            raise DataError(
                f"eval cases: {len(self.histories)} histories but targets of shape {targets.shape} "
                f"and users of shape {users.shape}"
            )
        if targets.size and targets.min() < 1:
            raise DataError(f"eval cases: case {int(targets.argmin())} has target {targets.min()}; tokens start at 1")
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "users", users)

    def __len__(self) -> int:
        return int(self.targets.size)

    def select(self, index: np.ndarray) -> EvalCases:
        """The cases at ``index`` (int array or boolean mask), in that order."""
        return EvalCases(self.histories.select(index), self.targets[index], self.users[index])


class LeaveOneOut(NamedTuple):
    """``train`` (one row per user, aligned with the input), ``valid`` and ``test`` cases."""

    train: Sequences
    valid: EvalCases
    test: EvalCases


class TimeSplit(NamedTuple):
    """``train`` (one row per user, possibly empty, aligned with the input) and ``test`` cases."""

    train: Sequences
    test: EvalCases


def read_interactions(
    source: Source,
    schema: EventSchema,
    *,
    table: str | None = None,
    query: str | None = None,
    min_count: int = 1,
) -> Interactions:
    """Read interactions (``schema.entity`` is the user) into one time-ordered sequence per user.

    Items seen fewer than ``min_count`` times are dropped, and users left with no item with
    them. Bad input raises :class:`DataError` naming the source, column and first bad row.
    """
    event_table = read_event_table(source, schema, table=table, query=query)
    events = event_table.events
    built = build_sequences(events, min_count=min_count, session_gap=None, min_length=1)
    times = None
    if "ts" in events.columns:
        # read_events sorted the rows as build_sequences uses them; it kept exactly the known items.
        known = built.vocab.encode(events["item"]) != Vocabulary.PAD
        times = events["ts"].dt.epoch("us").to_numpy()[known]
    built = event_table.keyed(built)
    users = built.owners["entity"].rename("user")
    return Interactions(
        users, built.sequences, times, built.vocab, InteractionsReport(event_table.report, built.report)
    )


def _heads(sequences: Sequences, rows: np.ndarray, lengths: np.ndarray) -> Sequences:
    """Sequences whose ``i``-th is the first ``lengths[i]`` tokens of ``sequences[rows[i]]``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = sequences.offsets[rows]
    rel = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return Sequences.from_lengths(lengths, sequences.tokens[np.repeat(starts, lengths) + rel])


def _at(sequences: Sequences, rows: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """int64 token at ``positions[i]`` of ``sequences[rows[i]]``."""
    return sequences.tokens[sequences.offsets[rows] + positions].astype(np.int64)


def _cases(sequences: Sequences, rows: np.ndarray, positions: np.ndarray) -> EvalCases:
    """For each ``i``: history = ``sequences[rows[i]][:positions[i]]``, target = the token at ``positions[i]``."""
    return EvalCases(_heads(sequences, rows, positions), _at(sequences, rows, positions), rows)


def leave_one_out(sequences: Sequences) -> LeaveOneOut:
    """Hold out each user's last item (test) and second-to-last item (validation).

    For a sequence ``s`` of length ``>= 3``: test history ``s[:-1]`` -> target ``s[-1]``;
    validation history ``s[:-2]`` -> target ``s[-2]``; ``train`` keeps ``s[:-2]``. Shorter
    sequences stay whole in ``train`` and give no case. ``train`` row ``i`` and the cases'
    ``users`` are rows of ``sequences``; valid and test list the same users in the same order.
    """
    lengths = sequences.lengths
    rows = np.flatnonzero(lengths >= 3)
    n = lengths[rows]
    train = _heads(sequences, np.arange(len(sequences)), np.where(lengths >= 3, lengths - 2, lengths))
    return LeaveOneOut(train, _cases(sequences, rows, n - 2), _cases(sequences, rows, n - 1))


def _epoch_us(cutoff: datetime) -> int:
    """``cutoff`` as µs since the epoch; a naive datetime is taken as UTC, as :func:`read_interactions` stores."""
    if not isinstance(cutoff, datetime):
        raise ConfigError(f"cutoff must be a datetime, got {type(cutoff).__name__}")
    aware = cutoff.replace(tzinfo=UTC) if cutoff.tzinfo is None else cutoff
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def time_split(interactions: Interactions, cutoff: datetime) -> TimeSplit:
    """Train on everything before ``cutoff``; test each user's first item at or after it.

    ``train`` row ``i`` holds user ``i``'s items before the cutoff (empty when there are
    none). A test case is made for every user with at least one item before the cutoff and
    one at or after it: history = all the user's items before the cutoff, target = the first
    item at or after it. The user's later items are in neither part. A naive ``cutoff`` is UTC.
    """
    if interactions.times is None:
        raise ConfigError("a time split needs timestamps; these interactions were read without a timestamp column")
    sequences = interactions.sequences
    owner = np.repeat(np.arange(len(sequences)), sequences.lengths)
    before = np.bincount(owner[interactions.times < _epoch_us(cutoff)], minlength=len(sequences))
    rows = np.flatnonzero((before >= 1) & (before < sequences.lengths))
    train = _heads(sequences, np.arange(len(sequences)), before)
    return TimeSplit(train, _cases(sequences, rows, before[rows]))


def prefix_cases(sequences: Sequences) -> EvalCases:
    """Every prefix of length ``>= 1`` -> the next item: ``s[:j] -> s[j]`` for ``j = 1 .. len(s) - 1``.

    A sequence of length ``L`` gives ``L - 1`` cases, in order of ``j``; ``users`` is the row of
    the sequence the case comes from. This is SR-GNN's augmentation of session data.
    """
    per_sequence = np.maximum(sequences.lengths - 1, 0)
    rows = np.repeat(np.arange(len(sequences)), per_sequence)
    positions = np.arange(per_sequence.sum()) - np.repeat(np.cumsum(per_sequence) - per_sequence, per_sequence) + 1
    return _cases(sequences, rows, positions)

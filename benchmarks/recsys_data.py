"""Loaders for the recommender benchmarks, read in place from the shared data folder.

- Diginetica (CIKM Cup 2016) as preprocessed by SR-GNN (Wu et al., AAAI 2019): training
  sessions, one per line, and the 60,858 test cases ``prefix -> next item``. The file's item
  ids (``1 .. 43,097``, numbered by SR-GNN) are the tokens as they are: no vocabulary.
- MovieLens 100K (GroupLens): every rating is a positive; each user's items in time order,
  split leave-one-out (last item test, second-to-last validation).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from benchmarks._common import data_path
from embeddings.data import EventSchema
from embeddings.errors import DataError
from embeddings.sequences import Sequences
from recsys.data import EvalCases, Interactions, LeaveOneOut, leave_one_out, read_interactions


def _ragged(lines: pl.Series, name: str) -> Sequences:
    """Space-separated positive integers, one sequence per line."""
    split = lines.str.split(" ")
    tokens = split.explode().cast(pl.Int64, strict=False)
    lengths = split.list.len().to_numpy()
    bad = (tokens < 1).fill_null(True).to_numpy()
    if bad.any():
        line = int(np.repeat(np.arange(len(lengths)), lengths)[np.argmax(bad)])
        raise DataError(f"{name}: line {line + 1}: expected space-separated item ids >= 1, got {lines[line]!r}")
    return Sequences.from_lengths(lengths, tokens.to_numpy())


def diginetica() -> tuple[Sequences, EvalCases, int]:
    """SR-GNN's Diginetica: ``(train sessions, test cases, n_items)``.

    ``train``: 186,670 sessions (``train_sessions.txt.gz``). ``test``: the 60,858 cases of
    ``test_prefix_target.tsv`` (``prefix<TAB>target``), ``users = -1`` (anonymous sessions).
    ``n_items``: the largest item id in either file (43,097): every id is a token.
    """
    train_path = data_path("diginetica", "train_sessions.txt.gz")
    test_path = data_path("diginetica", "test_prefix_target.tsv")
    train_lines = pl.read_csv(train_path, has_header=False, separator="\t", schema={"items": pl.String})["items"]
    test = pl.read_csv(test_path, has_header=False, separator="\t", schema={"prefix": pl.String, "target": pl.Int64})
    train = _ragged(train_lines, str(train_path))
    histories = _ragged(test["prefix"], str(test_path))
    targets = test["target"].to_numpy()
    cases = EvalCases(histories, targets, np.full(len(targets), -1))
    n_items = int(max(train.tokens.max(), histories.tokens.max(), targets.max()))
    return train, cases, n_items


def ml100k(min_rating: int | None = None) -> tuple[Interactions, LeaveOneOut]:
    """MovieLens 100K ``u.data`` as implicit feedback, split leave-one-out.

    Every rating (or every rating ``>= min_rating``) is a positive. Each user's items are in
    time order; ratings with the same timestamp keep their order in the file. Tokens come
    from the interactions' vocabulary (most rated first), not the MovieLens item ids.
    """
    path = data_path("ml-100k", "u.data")
    columns = {"user": pl.Int64, "item": pl.Int64, "rating": pl.Int64, "ts": pl.Int64}
    ratings = pl.read_csv(path, has_header=False, separator="\t", schema=columns)
    if min_rating is not None:
        ratings = ratings.filter(pl.col("rating") >= min_rating)
    interactions = read_interactions(ratings, EventSchema(entity="user", item="item", timestamp="ts"))
    return interactions, leave_one_out(interactions.sequences)

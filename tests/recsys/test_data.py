from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from embeddings.data import EventSchema
from embeddings.errors import ConfigError, DataError
from embeddings.sequences import Sequences
from recsys.data import EvalCases, leave_one_out, prefix_cases, read_interactions, time_split

SCHEMA = EventSchema(entity="user", item="item", timestamp="ts")
US = 1_000_000


def _events() -> pl.DataFrame:
    """u1: a(t=3) then b, c tied at t=5 in that source order; u2: c(t=1), a(t=2), d(t=9); u3: e (rare)."""
    return pl.DataFrame(
        {
            "user": ["u2", "u1", "u1", "u2", "u1", "u2", "u3"],
            "item": ["a", "b", "c", "c", "a", "d", "e"],
            "ts": [2, 5, 5, 1, 3, 9, 4],
        }
    )


def _keys(interactions, row: int) -> list:
    return interactions.vocab.decode(interactions.sequences[row])


def test_read_interactions_orders_each_user_by_time_with_ties_in_source_order():
    got = read_interactions(_events(), SCHEMA)
    assert got.users.to_list() == ["u1", "u2", "u3"]
    assert [_keys(got, i) for i in range(3)] == [["a", "b", "c"], ["c", "a", "d"], ["e"]]
    assert got.times.tolist() == [3 * US, 5 * US, 5 * US, 1 * US, 2 * US, 9 * US, 4 * US]
    assert (got.n_users, got.n_items) == (3, 5)
    assert "7 events" in str(got.report)


def test_min_count_drops_rare_items_their_times_and_users_left_empty():
    got = read_interactions(_events(), SCHEMA, min_count=2)
    assert got.users.to_list() == ["u1", "u2"]
    assert [_keys(got, i) for i in range(2)] == [["a", "c"], ["c", "a"]]
    assert got.times.tolist() == [3 * US, 5 * US, 1 * US, 2 * US]


def test_without_timestamps_source_order_is_time_order():
    got = read_interactions(_events(), EventSchema(entity="user", item="item"))
    assert got.times is None
    assert _keys(got, 1) == ["a", "c", "d"]
    with pytest.raises(ConfigError, match="needs timestamps"):
        time_split(got, datetime(2024, 1, 1))


def test_bad_row_in_a_csv_names_file_column_and_row(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,ts\n1,10,2024-01-01\n1,11,yesterday\n")
    message = f"{path}: column 'ts' row 1 (0-based data row): cannot parse 'yesterday' as a timestamp"
    with pytest.raises(DataError, match="^" + re.escape(message) + "$"):
        read_interactions(path, SCHEMA)


def test_leave_one_out_on_a_hand_example():
    split = leave_one_out(Sequences.from_lists([[1, 2, 3, 4], [5, 6], [7, 8, 9]]))
    assert split.train.to_lists() == [[1, 2], [5, 6], [7]]
    assert split.valid.histories.to_lists() == [[1, 2], [7]]
    assert split.valid.targets.tolist() == [3, 8]
    assert split.test.histories.to_lists() == [[1, 2, 3], [7, 8]]
    assert split.test.targets.tolist() == [4, 9]
    assert split.valid.users.tolist() == split.test.users.tolist() == [0, 2]


def test_time_split_targets_first_item_at_or_after_cutoff():
    got = read_interactions(_events(), SCHEMA)  # u1: a@3 b@5 c@5; u2: c@1 a@2 d@9; u3: e@4
    cutoff = datetime(1970, 1, 1, 0, 0, 5)
    split = time_split(got, cutoff)
    assert [got.vocab.decode(s) for s in split.train] == [["a"], ["c", "a"], ["e"]]
    assert split.test.users.tolist() == [0, 1]  # u3 has nothing at or after the cutoff
    assert got.vocab.decode(split.test.targets) == ["b", "d"]  # c (also at t=5) comes after b: in neither part
    assert [got.vocab.decode(h) for h in split.test.histories] == [["a"], ["c", "a"]]
    # An aware cutoff is the same instant; one before every event leaves empty train rows and no cases.
    aware = time_split(got, cutoff.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=2))))
    assert aware.test.targets.tolist() == split.test.targets.tolist()
    early = time_split(got, datetime(1970, 1, 1))
    assert early.train.lengths.tolist() == [0, 0, 0] and len(early.test) == 0
    with pytest.raises(ConfigError, match="datetime"):
        time_split(got, 5)


def test_prefix_cases_hand_example_and_count():
    cases = prefix_cases(Sequences.from_lists([[1, 2, 3], [4], [5, 6]]))
    assert cases.histories.to_lists() == [[1], [1, 2], [5]]
    assert cases.targets.tolist() == [2, 3, 6]
    assert cases.users.tolist() == [0, 0, 2]

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, 300)
    sequences = Sequences.from_lengths(lengths, rng.integers(1, 50, lengths.sum()))
    cases = prefix_cases(sequences)
    assert len(cases) == int((lengths - 1).sum())
    for i in rng.choice(len(cases), 50, replace=False):
        full = sequences[cases.users[i]]
        j = len(cases.histories[i])
        assert full[:j].tolist() == cases.histories[i].tolist() and full[j] == cases.targets[i]


def test_eval_cases_refuse_misaligned_or_pad_targets():
    histories = Sequences.from_lists([[1], [2]])
    with pytest.raises(DataError, match="2 histories"):
        EvalCases(histories, np.array([3]), np.array([0, 1]))
    with pytest.raises(DataError, match="target 0"):
        EvalCases(histories, np.array([3, 0]), np.array([0, 1]))

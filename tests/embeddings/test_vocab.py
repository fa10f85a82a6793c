from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

from embeddings.errors import DataError, NotFoundError
from embeddings.vocab import Vocabulary


def test_build_orders_by_count_then_key_and_reserves_pad():
    vocab, report = Vocabulary.build(pl.Series("item", ["b", "a", "c", "a", "b", "d", "a", "c"]))
    assert vocab.keys.to_list() == ["a", "b", "c", "d"]  # a:3, then b and c tie at 2, then d
    assert vocab.counts.tolist() == [0, 3, 2, 2, 1]
    assert vocab.counts.dtype == np.int64
    assert len(vocab) == 5 and Vocabulary.PAD == 0
    np.testing.assert_allclose(vocab.frequencies, [0, 3 / 8, 2 / 8, 2 / 8, 1 / 8])
    assert (report.keys_seen, report.rows_seen, report.keys_kept) == (4, 8, 4)


def test_build_counts_what_min_count_and_max_size_drop():
    keys = pl.Series([7] * 5 + [3] * 4 + [9] * 4 + [1] * 2 + [2])
    vocab, report = Vocabulary.build(keys, min_count=3, max_size=2)
    assert vocab.keys.to_list() == [7, 3]
    assert report.dropped_keys == {"below_min_count": 2, "past_max_size": 1}
    assert report.dropped_rows == {"below_min_count": 3, "past_max_size": 4}
    assert str(report) == (
        "2 of 5 keys kept from 16 rows (dropped below_min_count: 2 keys / 3 rows, past_max_size: 1 keys / 4 rows)"
    )


def test_encode_maps_unknown_and_null_to_pad_and_decode_inverts():
    vocab, _ = Vocabulary.build(pl.Series(["x", "y", "y", "z"]))
    codes = vocab.encode(pl.Series(["y", "x", "nope", None, "z"]))
    assert codes.dtype == np.int32
    assert codes.tolist() == [1, 2, 0, 0, 3]
    assert vocab.decode(codes) == ["y", "x", None, None, "z"]
    assert vocab.encode(["z"]).tolist() == [3]
    assert vocab.encode(pl.Series([], dtype=pl.String)).tolist() == []
    with pytest.raises(IndexError, match=re.escape("index 4 out of range for a vocabulary of size 4")):
        vocab.decode([1, 4])


def test_int_keys_encode_from_any_integer_dtype():
    vocab, _ = Vocabulary.build(pl.Series([10, 20, 20, 30], dtype=pl.Int32))
    assert vocab.keys.dtype == pl.Int64
    assert vocab.keys.to_list() == [20, 10, 30]
    assert vocab.encode(np.array([30, 20, 11], dtype=np.int16)).tolist() == [3, 1, 0]
    assert vocab.encode(["20", "junk"]).tolist() == [1, 0]
    assert vocab.decode([1, 0]) == [20, None]


def test_index_and_contains():
    vocab, _ = Vocabulary.build(pl.Series([5, 5, 8]))
    assert vocab.index(5) == 1 and vocab.index(np.int64(8)) == 2
    assert 8 in vocab and 6 not in vocab and "5" not in vocab
    with pytest.raises(NotFoundError, match=re.escape("key '5' is not in the vocabulary (2 keys)")):
        vocab.index("5")


@pytest.mark.parametrize("keys", [[4, 4, 1, 2], ["b", "b", "a", "c"]])
def test_save_load_keeps_keys_dtype_and_counts(tmp_path, keys):
    vocab, _ = Vocabulary.build(pl.Series(keys))
    path = vocab.save(tmp_path / "model")
    assert path == tmp_path / "model" / "vocabulary.parquet"
    loaded = Vocabulary.load(tmp_path / "model")
    assert loaded.keys.dtype == vocab.keys.dtype
    assert loaded.keys.to_list() == vocab.keys.to_list()
    assert type(loaded.keys[0]) is type(keys[0])
    np.testing.assert_array_equal(loaded.counts, vocab.counts)
    assert loaded.encode(keys).tolist() == vocab.encode(keys).tolist()


def test_load_missing_and_corrupt(tmp_path):
    with pytest.raises(NotFoundError, match=re.escape(f"{tmp_path / 'vocabulary.parquet'}: no vocabulary file")):
        Vocabulary.load(tmp_path)
    (tmp_path / "vocabulary.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'vocabulary.parquet'}: cannot read vocabulary: ")):
        Vocabulary.load(tmp_path)


def test_bad_keys_are_refused():
    with pytest.raises(DataError, match=re.escape("item: row 2 (0-based) is null")):
        Vocabulary.build(pl.Series("item", ["a", "b", None]))
    with pytest.raises(DataError, match=re.escape("price: keys have type Float64; expected integers or strings")):
        Vocabulary.build(pl.Series("price", [1.5]))
    with pytest.raises(DataError, match=re.escape("vocabulary keys: key 'a' appears more than once")):
        Vocabulary(["a", "b", "a"])

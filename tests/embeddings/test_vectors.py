"""Embeddings: validation, similarity on planted clusters, gensim parity, file formats."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embeddings import word2vec_format
from embeddings.errors import ConfigError, DataError, NotFoundError
from embeddings.vectors import Embeddings


def clustered(n_clusters: int = 5, per_cluster: int = 20, dim: int = 16, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Keys ``c{cluster}_{i}`` around well-separated random directions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)) * 3
    vectors = np.repeat(centres, per_cluster, axis=0) + rng.normal(size=(n_clusters * per_cluster, dim))
    keys = [f"c{c}_{i}" for c in range(n_clusters) for i in range(per_cluster)]
    return keys, vectors.astype(np.float32)


@pytest.fixture
def emb() -> Embeddings:
    return Embeddings(*clustered())


# --- construction and access ---------------------------------------------------------
@pytest.mark.parametrize(
    ("keys", "vectors", "message"),
    [
        (["a", "b", "c"], np.zeros((2, 4)), "3 keys but 2 vectors; they must match one to one"),
        (["a", "b", "a"], np.zeros((3, 4)), "keys repeat 'a' (rows 0 and 2); keys must be unique"),
        (["a", 1], np.zeros((2, 4)), "keys must be all str or all int, found both"),
        (["a", 1.5], np.zeros((2, 4)), "keys must be str or int; row 1 is float 1.5"),
        (["a", "b", "c"], np.zeros(3), "vectors must be a 2-D matrix (n, d) with d >= 1, got shape (3,)"),
        (["a"], np.zeros((1, 0)), "vectors must be a 2-D matrix (n, d) with d >= 1, got shape (1, 0)"),
        (["a", "b"], np.array([[1.0, 2.0], [np.nan, 0.0]]), "vectors row 1 holds a NaN or infinite value"),
        (["a"], np.array([["x", "y"]]), "vectors must be numeric, got dtype <U1"),
    ],
)
def test_invalid_input_names_the_problem(keys: list, vectors: np.ndarray, message: str) -> None:
    with pytest.raises(DataError) as info:
        Embeddings(keys, vectors)
    assert str(info.value) == message


def test_access_and_numpy_keys() -> None:
    emb = Embeddings(np.array([10, 20, 30]), np.arange(6, dtype=np.float64).reshape(3, 2))
    assert emb.keys == [10, 20, 30] and all(type(key) is int for key in emb.keys)
    assert emb.vectors.dtype == np.float32 and emb.vectors.flags.c_contiguous
    assert len(emb) == 3 and emb.dim == 2 and 20 in emb and 40 not in emb
    np.testing.assert_array_equal(emb[30], [4.0, 5.0])
    assert emb.index_of(20) == 1
    with pytest.raises(NotFoundError) as info:
        emb.index_of(40)
    assert str(info.value) == "key 40 is not in the embeddings (3 keys)"
    with pytest.raises(ValueError):
        emb.vectors[0, 0] = 1.0  # read-only, so the cached unit vectors stay valid


def test_normalized_is_unit_length_and_cached() -> None:
    emb = Embeddings(["a", "b"], np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(emb.normalized(), [[0.6, 0.8], [0.0, 0.0]])
    assert emb.normalized() is emb.normalized()


# --- similarity ---------------------------------------------------------------------
def test_most_similar_finds_the_planted_cluster(emb: Embeddings) -> None:
    result = emb.most_similar("c2_0", k=19)
    assert len(result) == 19
    assert {key for key, _ in result} == {f"c2_{i}" for i in range(1, 20)}  # itself excluded
    scores = [score for _, score in result]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)

    excluded = emb.most_similar("c2_0", k=3, exclude=[result[0][0]])
    assert excluded[0] == result[1]

    by_vector = emb.most_similar(emb["c2_0"], k=1)
    assert by_vector[0][0] == "c2_0" and by_vector[0][1] == pytest.approx(1.0, abs=1e-6)


def test_most_similar_errors(emb: Embeddings) -> None:
    with pytest.raises(NotFoundError):
        emb.most_similar("nope")
    with pytest.raises(DataError) as info:
        emb.most_similar(np.zeros(3))
    assert str(info.value) == "query vector must have shape (16,), got (3,)"
    with pytest.raises(ConfigError) as info:
        emb.most_similar("c0_0", k=0)
    assert str(info.value) == "k must be an integer >= 1, got 0"
    assert len(emb.most_similar("c0_0", k=1000)) == len(emb) - 1


def test_analogy_solves_a_planted_offset() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(4, 32))
    gender = rng.normal(size=32)
    words = {"man": base[0], "woman": base[0] + gender, "king": base[1], "queen": base[1] + gender}
    noise = {f"w{i}": v for i, v in enumerate(rng.normal(size=(50, 32)))}
    emb = Embeddings([*words, *noise], np.array([*words.values(), *noise.values()]))
    best = emb.analogy(positive=["king", "woman"], negative=["man"], k=1)
    assert best[0][0] == "queen"
    assert {key for key, _ in emb.analogy(positive=["king", "woman"], negative=["man"], k=50)}.isdisjoint(
        {"king", "woman", "man"}
    )


def test_similarity_matches_gensim(emb: Embeddings) -> None:
    gensim_models = pytest.importorskip("gensim.models")
    kv = gensim_models.KeyedVectors(vector_size=emb.dim)
    kv.add_vectors(emb.keys, emb.vectors)
    for ours, theirs in [
        (emb.most_similar("c1_3", k=8), kv.most_similar("c1_3", topn=8)),
        (
            emb.analogy(positive=["c0_1", "c3_2"], negative=["c4_4"], k=8),
            kv.most_similar(positive=["c0_1", "c3_2"], negative=["c4_4"], topn=8),
        ),
    ]:
        assert [key for key, _ in ours] == [key for key, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)


def test_sequence_vector_skips_unknown_keys(emb: Embeddings) -> None:
    expected = (emb["c0_0"] + emb["c1_0"]) / 2
    np.testing.assert_allclose(emb.sequence_vector(["c0_0", "ghost", "c1_0"]), expected, rtol=1e-6)
    with pytest.raises(NotFoundError) as info:
        emb.sequence_vector(["ghost", "phantom"])
    assert str(info.value) == "none of the 2 keys are in the embeddings (first: 'ghost')"


# --- native format ------------------------------------------------------------------
@pytest.mark.parametrize("keys", [["a", "b", "c"], [7, 3, 11]])
def test_save_load_round_trip_keeps_key_types(tmp_path, keys: list) -> None:
    emb = Embeddings(keys, np.random.default_rng(0).normal(size=(3, 5)))
    loaded = Embeddings.load(emb.save(tmp_path / "emb"))
    assert loaded.keys == keys and [type(k) for k in loaded.keys] == [type(k) for k in keys]
    np.testing.assert_array_equal(loaded.vectors, emb.vectors)
    assert sorted(p.name for p in (tmp_path / "emb").iterdir()) == ["keys.json", "vectors.npy"]


def test_load_refuses_missing_and_pickled_files(tmp_path) -> None:
    with pytest.raises(NotFoundError) as info:
        Embeddings.load(tmp_path)
    assert str(info.value) == f"no embeddings at {tmp_path}: keys.json is missing"
    (tmp_path / "keys.json").write_text(json.dumps(["a"]))
    np.save(tmp_path / "vectors.npy", np.array([[object()]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"vectors.npy: not a plain .npy array"):
        Embeddings.load(tmp_path)
    np.save(tmp_path / "vectors.npy", np.zeros((2, 3)))
    with pytest.raises(DataError) as info:
        Embeddings.load(tmp_path)
    assert str(info.value) == f"{tmp_path}: 1 keys but 2 vectors; they must match one to one"


# --- word2vec format ----------------------------------------------------------------
@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_round_trip_is_exact(tmp_path, emb: Embeddings, binary: bool) -> None:
    path = emb.to_word2vec(tmp_path / "vectors.w2v", binary=binary)
    back = Embeddings.from_word2vec(path, binary=binary)
    assert back.keys == emb.keys
    np.testing.assert_array_equal(back.vectors, emb.vectors)


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_ours_and_we_read_gensims(tmp_path, binary: bool) -> None:
    gensim_models = pytest.importorskip("gensim.models")
    rng = np.random.default_rng(3)
    keys = ["ünïcode", "plain", "with-dash", "日本", "x" * 40]
    emb = Embeddings(keys, rng.normal(size=(5, 7)) * 10)

    ours = emb.to_word2vec(tmp_path / "ours", binary=binary)
    kv = gensim_models.KeyedVectors.load_word2vec_format(ours, binary=binary)
    assert kv.index_to_key == keys
    np.testing.assert_array_equal(kv.vectors, emb.vectors)

    theirs = gensim_models.KeyedVectors(vector_size=7)
    theirs.add_vectors(keys, rng.normal(size=(5, 7)).astype(np.float32))
    theirs.save_word2vec_format(str(tmp_path / "theirs"), binary=binary)
    back = Embeddings.from_word2vec(tmp_path / "theirs", binary=binary)
    assert back.keys == keys
    np.testing.assert_array_equal(back.vectors, theirs.vectors)


def test_word2vec_binary_accepts_the_c_tools_newlines(tmp_path) -> None:
    vectors = np.array([[1.5, -2.0], [0.25, 3.0]], dtype="<f4")
    (tmp_path / "c.bin").write_bytes(b"2 2\na " + vectors[0].tobytes() + b"\nb " + vectors[1].tobytes() + b"\n")
    back = Embeddings.from_word2vec(tmp_path / "c.bin", binary=True)
    assert back.keys == ["a", "b"]
    np.testing.assert_array_equal(back.vectors, vectors)


def test_int_keys_come_back_as_text(tmp_path) -> None:
    emb = Embeddings([5, 6], np.eye(2))
    assert Embeddings.from_word2vec(emb.to_word2vec(tmp_path / "v.txt")).keys == ["5", "6"]


@pytest.mark.parametrize(
    ("keys", "bad"), [(["ok", "two words"], "'two words' (row 1)"), (["a\tb", ""], "'a\\tb' (row 0)")]
)
def test_word2vec_rejects_keys_with_whitespace(tmp_path, keys: list[str], bad: str) -> None:
    emb = Embeddings(keys, np.eye(2))
    with pytest.raises(DataError) as info:
        emb.to_word2vec(tmp_path / "v.txt")
    assert str(info.value) == f"key {bad} is empty or holds whitespace; the word2vec format cannot store it"
    assert not (tmp_path / "v.txt").exists()


def test_word2vec_text_reads_windows_line_ends(tmp_path) -> None:
    (tmp_path / "crlf.txt").write_bytes(b"2 2\r\na 1 2\r\nb 3 4\r\n")
    back = Embeddings.from_word2vec(tmp_path / "crlf.txt")
    assert back.keys == ["a", "b"]
    np.testing.assert_array_equal(back.vectors, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("2 x\na 1 2\n", "line 1: expected the header '<count> <dim>', got '2 x'"),
        ("\u00b2 2\na 1 2\n", "line 1: expected the header '<count> <dim>', got '\u00b2 2'"),  # isdigit, not int
        ("2 2\na 1 2\nb 1 zz\n", "line 3: value 'zz' is not a number"),
        ("2 2\na 1 2 3\nb 1 2\n", "line 2: expected a key and 2 values separated by spaces, got 4 fields"),
        ("2 2\na 1 2\nb\n", "line 3: expected a key and 2 values separated by spaces, got 1 fields"),
        ("3 2\na 1 2\nb 1 2\n", "line 4: the header announces 3 vectors but the file holds 2"),
        ("1 2\na 1 2\nb 1 2\n", "line 3: more vectors than the header's count 1"),
        ("2 2\na 1 2\n 1 2\n", "line 3: expected a key and 2 values separated by spaces, got 2 fields"),
        ("2 2\na 1 2\na 3 4\n", "keys repeat 'a' (rows 0 and 1); keys must be unique"),
    ],
)
def test_malformed_text_names_file_and_line(tmp_path, content: str, problem: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        Embeddings.from_word2vec(path)
    assert str(info.value) == f"{path}: {problem}"


def test_malformed_binary_names_the_record(tmp_path) -> None:
    path = tmp_path / "bad.bin"
    good = np.ones(2, dtype="<f4").tobytes()
    path.write_bytes(b"3 2\nalpha " + good + b"beta " + good + b"gamma " + good[:5])
    with pytest.raises(DataError) as info:
        Embeddings.from_word2vec(path, binary=True)
    assert str(info.value) == f"{path}: record 3: truncated or missing key (expected 3 records of 2 float32)"
    path.write_bytes(b"1000000 2\na " + good)
    with pytest.raises(DataError) as info:
        Embeddings.from_word2vec(path, binary=True)
    assert str(info.value) == f"{path}: the header announces 1000000 vectors of dim 2 but only 10 bytes follow it"
    path.write_bytes(b"2 2\na " + good + b"b " + good + b"junk")
    with pytest.raises(DataError) as info:
        Embeddings.from_word2vec(path, binary=True)
    assert str(info.value) == f"{path}: record 3: more data than the header's count 2"


def test_a_failed_write_leaves_the_old_file(tmp_path, emb: Embeddings, monkeypatch) -> None:
    path = tmp_path / "v.txt"
    path.write_text("previous")

    def crash(f, keys, vectors):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(word2vec_format, "_write_text_records", crash)
    with pytest.raises(OSError):
        emb.to_word2vec(path)
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["v.txt"]

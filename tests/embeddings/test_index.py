"""VectorIndex: exact search against numpy, approximate recall on clusters, persistence, errors."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from embeddings.errors import ConfigError, DataError, NotFoundError
from embeddings.index import IndexConfig, VectorIndex
from embeddings.vectors import Embeddings

HAS_GPU = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def brute_force(base: np.ndarray, queries: np.ndarray, metric: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores (higher is better) of the k best matches, by numpy."""
    if metric == "cosine":
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    if metric == "l2":
        scores = -((queries[:, None, :] - base[None, :, :]) ** 2).sum(axis=2)
    else:
        scores = queries @ base.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return rows, np.take_along_axis(scores, rows, axis=1)


def clustered(n: int, dim: int = 32, n_clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Anisotropic clusters of power-law sizes around random directions: ``(n, dim)`` float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    sizes = np.arange(1, n_clusters + 1) ** -1.0
    labels = rng.choice(n_clusters, size=n, p=sizes / sizes.sum())
    spread = rng.normal(size=(n_clusters, dim, dim)) * 0.25
    noise = np.einsum("nd,nde->ne", rng.normal(size=(n, dim)), spread[labels])
    return (centres[labels] + noise).astype(np.float32)


# ivfpq without the OPQ rotation (whose training takes seconds) where a test is not about it.
QUICK = {"ivfpq": {"opq": False, "pq_m": 16}}


def recall(found_keys: np.ndarray, true_keys: np.ndarray) -> float:
    return float((found_keys[:, :, None] == true_keys[:, None, :]).any(axis=2).mean())


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    """4,000 base vectors and 200 held-out queries from the same clusters."""
    vectors = clustered(4200)
    return vectors[:4000], vectors[4000:]


# --- exact search -------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_exact_equals_numpy(metric: str) -> None:
    rng = np.random.default_rng(1)
    base, queries = rng.normal(size=(500, 12)), rng.normal(size=(30, 12))
    keys = [f"item{i}" for i in range(500)]
    index = VectorIndex.build(keys, base, kind="exact", metric=metric)
    found, scores = index.search(queries, 7)
    rows, expected = brute_force(base, queries, metric, 7)
    assert found.shape == (30, 7) and scores.dtype == np.float32
    np.testing.assert_array_equal(found, np.array(keys, dtype=object)[rows])
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["ivf", "hnsw", "ivfpq"])
@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_approximate_kinds_recall_clusters_with_defaults(data, kind: str, metric: str) -> None:
    base, queries = data
    keys = np.arange(4000) * 3
    true_rows, _ = brute_force(base, queries, metric, 10)
    index = VectorIndex.build(keys, base, kind=kind, metric=metric, **QUICK.get(kind, {}))
    found, _ = index.search(queries, 10)
    assert recall(found, keys[true_rows]) >= 0.9


def test_ivf_cells_follow_the_data_size(data) -> None:
    base, _ = data
    assert VectorIndex.build(range(4000), base, kind="ivf").config.nlist == 4000 // 39
    assert VectorIndex.build(range(4000), base, kind="ivf", nlist=20).config.nlist == 20


# --- keys, padding, search_keys -------------------------------------------------------
def test_int_keys_come_back_as_given_and_padding_is_none_and_minus_inf() -> None:
    index = VectorIndex.build([101, 202, 303], np.eye(3), metric="ip")
    found, scores = index.search(np.array([[0.0, 1.0, 0.0]]), 5)
    assert found[0, 0] == 202 and type(found[0, 0]) is int
    assert list(found[0, 3:]) == [None, None]
    assert np.isneginf(scores[0, 3:]).all() and scores[0, 0] == 1.0


@pytest.mark.parametrize("kind", ["exact", "ivf", "hnsw", "ivfpq"])
def test_search_keys_excludes_the_query_itself(data, kind: str) -> None:
    base, _ = data
    keys = [f"k{i}" for i in range(4000)]
    index = VectorIndex.build(keys, base, kind=kind, **QUICK.get(kind, {}))
    found, scores = index.search_keys(["k5", "k77"], 4)
    assert found.shape == (2, 4) and "k5" not in found[0] and "k77" not in found[1]
    if kind == "exact":
        full, full_scores = index.search(base[[5, 77]], 5)
        np.testing.assert_array_equal(found, full[:, 1:])
        np.testing.assert_allclose(scores, full_scores[:, 1:], rtol=1e-6)
    with pytest.raises(NotFoundError) as info:
        index.search_keys(["k5", "missing"], 3)
    assert str(info.value) == "key 'missing' is not in the index (4000 keys)"


# --- incremental add and persistence ------------------------------------------------
@pytest.mark.parametrize("kind", ["exact", "ivf", "hnsw", "ivfpq"])
def test_add_later_finds_new_vectors(data, kind: str) -> None:
    base, _ = data
    index = VectorIndex.build(range(3000), base[:3000], kind=kind, metric="l2", **QUICK.get(kind, {}))
    index.add(range(3000, 4000), base[3000:])
    assert len(index) == 4000
    found, scores = index.search(base[3000:3050], 1)
    np.testing.assert_array_equal(found[:, 0], np.arange(3000, 3050))
    np.testing.assert_array_equal(scores[:, 0], 0.0)
    if kind == "exact":
        whole = VectorIndex.build(range(4000), base, kind="exact", metric="l2")
        np.testing.assert_array_equal(index.search(base[:20], 5)[0], whole.search(base[:20], 5)[0])


def test_add_rejects_repeated_and_mistyped_keys() -> None:
    index = VectorIndex.build(["a", "b"], np.eye(2))
    with pytest.raises(DataError) as info:
        index.add(["c", "b"], np.eye(2))
    assert str(info.value) == "key 'b' is already in the index; keys must be unique"
    with pytest.raises(DataError) as info:
        index.add([3], np.eye(2)[:1])
    assert str(info.value) == "keys are int but the index holds str keys"
    with pytest.raises(DataError) as info:
        index.add(["c"], np.ones((1, 3)))
    assert str(info.value) == "vectors have dimension 3, expected 2"
    assert len(index) == 2


def test_building_empty_then_adding() -> None:
    index = VectorIndex.build([], np.zeros((0, 4)), kind="hnsw")
    with pytest.raises(DataError) as info:
        index.search(np.ones((1, 4)), 3)
    assert str(info.value) == "the index is empty; add vectors before searching"
    index.add(["x"], np.ones((1, 4)))
    assert index.search(np.ones((1, 4)), 1)[0][0, 0] == "x"


@pytest.mark.parametrize(
    ("kind", "metric", "mmap"),
    [("exact", "l2", False), ("ivf", "cosine", False), ("hnsw", "ip", False), ("exact", "ip", True)]
    + [("ivfpq", "l2", True)],  # with the OPQ rotation
)
def test_save_load_gives_identical_results(tmp_path, data, kind: str, metric: str, mmap: bool) -> None:
    base, queries = data
    index = VectorIndex.build([f"k{i}" for i in range(4000)], base, kind=kind, metric=metric, device="cpu")
    index.add(["extra"], queries[:1])
    loaded = VectorIndex.load(index.save(tmp_path / "idx"), device="cpu", mmap=mmap)
    assert (len(loaded), loaded.dim, loaded.kind, loaded.metric, loaded.config) == (
        4001,
        32,
        kind,
        metric,
        index.config,
    )
    for (keys_a, scores_a), (keys_b, scores_b) in [
        (index.search(queries, 10), loaded.search(queries, 10)),
        (index.search_keys(["k1", "extra"], 5), loaded.search_keys(["k1", "extra"], 5)),
    ]:
        np.testing.assert_array_equal(keys_a, keys_b)
        np.testing.assert_array_equal(scores_a, scores_b)
    if mmap:  # a mapped file is read only
        with pytest.raises(ConfigError, match="memory-mapped"):
            loaded.add(["more"], queries[1:2])


def test_ivfpq_codes_fit_the_memory_budget_and_re_ranking_restores_recall(data) -> None:
    base, queries = data
    keys = np.arange(4000)
    true_rows, _ = brute_force(base, queries, "cosine", 10)
    assert IndexConfig(kind="ivfpq").code_bytes(64) == 24  # 24 code bytes + the 8-byte id = 32
    assert IndexConfig(kind="ivfpq", opq=False).code_bytes(64) == 16  # a size that divides 64
    assert IndexConfig(kind="ivfpq", bytes_per_vector=16).code_bytes(64) == 8
    codes_only = VectorIndex.build(keys, base, kind="ivfpq", bytes_per_vector=16, opq=False, refine=0)
    refined = VectorIndex.build(keys, base, kind="ivfpq", bytes_per_vector=16, opq=False)
    assert refined.config.pq_m == 8
    coarse = recall(codes_only.search(queries, 10)[0], keys[true_rows])
    fine = recall(refined.search(queries, 10)[0], keys[true_rows])
    # Eight bytes cannot tell near neighbours apart; re-ranking 10 k candidates with the full vectors can.
    assert fine >= 0.9 and fine >= coarse + 0.15, (coarse, fine)
    refined.set_search_params(refine=1)  # the codes' own top 10, re-scored: no better than the codes
    assert recall(refined.search(queries, 10)[0], keys[true_rows]) < fine - 0.1
    with pytest.raises(ConfigError, match="refine"):
        codes_only.set_search_params(refine=5)


def test_load_errors(tmp_path) -> None:
    with pytest.raises(NotFoundError) as info:
        VectorIndex.load(tmp_path)
    assert str(info.value) == f"no vector index at {tmp_path}: config.json is missing"
    VectorIndex.build(["a", "b"], np.eye(2)).save(tmp_path)
    (tmp_path / "keys.json").write_text('["a", "b", "c"]')
    with pytest.raises(DataError) as info:
        VectorIndex.load(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: index.faiss holds 2 vectors of dim 2, keys.json 3 keys and config.json says 2 of dim 2"
    )
    (tmp_path / "config.json").write_text((tmp_path / "config.json").read_text().replace('"exact"', '"annoy"'))
    with pytest.raises(DataError) as info:
        VectorIndex.load(tmp_path)
    assert str(info.value) == f"{tmp_path / 'config.json'}: kind 'annoy' is not one of exact, ivf, hnsw, ivfpq"
    VectorIndex.build(["a", "b"], np.eye(2)).save(tmp_path)
    (tmp_path / "index.faiss").write_bytes(b"not an index")
    with pytest.raises(DataError, match=r"index.faiss: FAISS cannot read it"):
        VectorIndex.load(tmp_path)


def test_from_embeddings_and_tuning() -> None:
    emb = Embeddings([f"w{i}" for i in range(500)], clustered(500, dim=8, n_clusters=5))
    index = VectorIndex.from_embeddings(emb, kind="ivf", nlist=8, nprobe=8)
    assert index.keys == emb.keys and index.config.nprobe == 8
    index.set_search_params(nprobe=2)
    assert index.config.nprobe == 2
    with pytest.raises(ConfigError) as info:
        index.set_search_params(ef_search=10)
    assert str(info.value) == "search parameter 'ef_search' does not apply to kind 'ivf'"


# --- input validation ----------------------------------------------------------------
def test_queries_are_converted_and_validated() -> None:
    base = np.random.default_rng(2).normal(size=(50, 6))
    index = VectorIndex.build(range(50), base, metric="l2")
    reference = index.search(base[:3].astype(np.float32), 2)[0]
    np.testing.assert_array_equal(index.search(np.asfortranarray(base[:3]), 2)[0], reference)
    for queries, message in [
        (np.ones((2, 5)), "queries have dimension 5, expected 6"),
        (np.ones(6), "queries must be a 2-D matrix (n, d) with d >= 1, got shape (6,)"),
        (np.full((1, 6), np.inf), "queries row 0 holds a NaN or infinite value"),
    ]:
        with pytest.raises(DataError) as info:
            index.search(queries, 2)
        assert str(info.value) == message
    for k in (0, -1, 2.5):
        with pytest.raises(ConfigError) as info:
            index.search(base[:1], k)
        assert str(info.value) == f"k must be an integer >= 1, got {k!r}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "annoy"}, "kind 'annoy' is not one of exact, ivf, hnsw, ivfpq"),
        ({"metric": "manhattan"}, "metric 'manhattan' is not one of cosine, ip, l2"),
        ({"kind": "exact", "nprobe": 4}, "parameter 'nprobe' does not apply to kind 'exact' (it takes no parameters)"),
        (
            {"kind": "hnsw", "nlist": 4},
            "parameter 'nlist' does not apply to kind 'hnsw' (it takes m, ef_construction, ef_search)",
        ),
        ({"kind": "ivf", "nprobe": 0}, "nprobe must be an integer >= 1, got 0"),
        ({"kind": "ivf", "nlist": 50}, "kind 'ivf' with nlist=50 needs at least 50 vectors to train on, got 10"),
        (
            {"kind": "ivfpq", "bytes_per_vector": 8},
            "bytes_per_vector=8 leaves no room for a code: the smallest is 12 (4 code bytes and the 8-byte id)",
        ),
        ({"kind": "ivfpq", "nlist": 1}, "kind 'ivfpq' with nlist=1 needs at least 256 vectors to train on, got 10"),
        ({"kind": "ivfpq", "nlist": 1, "pq_m": 3, "opq": False}, "pq_m=3 must divide the dimension 10 without opq"),
        ({"device": "tpu"}, "device 'tpu' is not one of auto, cpu, cuda, cuda:N"),
        ({"device": "cuda:\u00b2"}, "device 'cuda:\u00b2' is not one of auto, cpu, cuda, cuda:N"),
        ({"device": "cuda:-1"}, "device 'cuda:-1' is not one of auto, cpu, cuda, cuda:N"),
    ],
)
def test_bad_build_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        VectorIndex.build(range(10), np.eye(10), **kwargs)
    assert str(info.value) == message


@pytest.mark.skipif(HAS_GPU, reason="FAISS sees a GPU here")
def test_cuda_without_faiss_gpu_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as info:
        VectorIndex.build(range(3), np.eye(3), device="cuda")
    assert str(info.value) == (
        "device 'cuda' needs FAISS with GPU support and GPU 0 visible; "
        "this FAISS sees 0 GPUs (install faiss-gpu or use device='cpu')"
    )
    assert VectorIndex.build(range(3), np.eye(3), device="auto").device == "cpu"


@pytest.mark.skipif(not HAS_GPU, reason="needs FAISS with GPU support and a GPU")
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_gpu_exact_matches_cpu(tmp_path, data, metric: str) -> None:
    base, queries = data
    gpu = VectorIndex.build(range(4000), base, metric=metric, device="cuda")
    cpu = VectorIndex.build(range(4000), base, metric=metric, device="cpu")
    assert gpu.device == "cuda:0"
    np.testing.assert_array_equal(gpu.search(queries, 10)[0], cpu.search(queries, 10)[0])
    np.testing.assert_allclose(gpu.search(queries, 10)[1], cpu.search(queries, 10)[1], rtol=1e-4, atol=1e-4)
    with pytest.warns(UserWarning, match="cannot serve this hnsw index"):
        assert VectorIndex.build(range(100), base[:100], kind="hnsw", device="cuda").device == "cpu"
    loaded = VectorIndex.load(gpu.save(tmp_path / "gpu"), device="cpu")
    np.testing.assert_array_equal(loaded.search(queries, 10)[0], cpu.search(queries, 10)[0])

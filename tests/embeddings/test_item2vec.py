"""item2vec on the synthetic world: planted taste clusters come out as nearest neighbours."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from embeddings.data import EventSchema, build_sequences, read_events
from embeddings.errors import DataError
from embeddings.evaluate import neighbour_agreement
from embeddings.index import VectorIndex
from embeddings.jobs import run_item2vec
from embeddings.model import EmbeddingModel, latest_model
from embeddings.sgns import item2vec
from embeddings.sgns_config import Item2VecJob, SGNSConfig
from embeddings.store import Store
from embeddings.synthetic import WorldConfig, make_world

WORLD = make_world(WorldConfig(seed=3).scaled(0.3))
CLUSTERS = dict(WORLD.items.select("item_id", "cluster").iter_rows())
SCHEMA = EventSchema(entity="user_id", item="item_id", timestamp="ts")


@pytest.fixture(scope="module")
def built():
    events, _ = read_events(WORLD.events, SCHEMA)
    return build_sequences(events, session_gap=timedelta(minutes=30))


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_planted_clusters_are_nearest_neighbours(built, mode: str) -> None:
    emb, result = item2vec(
        built.sequences, built.vocab, SGNSConfig(mode=mode, dim=32, epochs=10, negative=10), progress=False
    )
    assert len(emb) == WORLD.items.height
    agreement = neighbour_agreement(VectorIndex.from_embeddings(emb), CLUSTERS, k=10)
    assert agreement >= 0.9, f"{mode}: only {agreement:.2f} of neighbours share the planted cluster"
    assert result.epoch_loss[-1] < result.epoch_loss[0]


def test_random_vectors_do_not_pass_the_same_check(built) -> None:
    keys = built.vocab.decode(np.arange(1, len(built.vocab)))
    vectors = np.random.default_rng(0).normal(size=(len(keys), 32))
    assert neighbour_agreement(VectorIndex.build(keys, vectors), CLUSTERS, k=10) < 0.2


def test_run_saves_a_model_that_loads_in_one_call(tmp_path) -> None:
    store = Store()
    job = Item2VecJob(schema=SCHEMA, session_gap_minutes=30, sgns=SGNSConfig(dim=16, epochs=2), index_kind="exact")
    result = run_item2vec(WORLD.events, job, store=store, progress=False)
    model, run_id = result.model, result.run_id
    run = store.get_run(run_id)
    assert result.path is not None and str(result.path) == run["artifact_path"]
    assert result.metrics == run["metrics"]
    assert run["status"] == "succeeded"
    assert run["metrics"]["tokens"] == WORLD.events.height

    loaded = EmbeddingModel.load(run["artifact_path"])
    np.testing.assert_array_equal(loaded.embeddings.vectors, model.embeddings.vectors)
    assert loaded.similar("i0001", 5) == model.similar("i0001", 5)
    assert loaded.config == model.config

    stored = store.read("vectors", where={"run_id": run_id, "key": "i0001"})
    np.testing.assert_array_equal(np.frombuffer(stored["vector"][0], dtype="<f4"), model.embeddings["i0001"])
    assert latest_model(store, "i0001")[0].config == model.config


def test_failed_run_is_recorded_and_leaves_no_model(seqemb_home) -> None:
    store = Store()
    job = Item2VecJob(schema=EventSchema(entity="user_id", item="item_id", timestamp="ts"), min_count=10**9)
    with pytest.raises(DataError, match="no sequence is left to train on"):
        run_item2vec(WORLD.events, job, store=store, progress=False)
    assert [run["status"] for run in store.runs()] == ["failed"]
    assert list(seqemb_home.glob("models/*")) == []

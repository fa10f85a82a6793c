"""Analyst labels in the store and the semi-supervised model on top of the autoencoder."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.metrics import average_precision_score

from embeddings.errors import ConfigError, DataError, NotFoundError
from embeddings.store import Store
from fraud.autoencoder import score_steps
from fraud.config import SemiConfig
from fraud.labels import read_labels, record_label
from fraud.semi import (
    BOOSTED_FILE,
    FOREST_FILE,
    HISTORY_INPUT,
    load_semi,
    semi_inputs,
    step_labels,
    train_semi,
    window_max_earlier,
)
from fraud.trees import Boosted, Forest


@pytest.fixture(scope="module")
def split(features):
    """Analysts labelled every step of a random 30% of cards; the rest is held out."""
    entities = features.frame["entity"].to_numpy()
    cards = np.unique(entities)
    labelled_cards = np.random.default_rng(0).choice(cards, size=int(0.3 * cards.size), replace=False)
    labelled = np.isin(entities, labelled_cards)
    truth = features.frame["label"].fill_null(0).to_numpy().astype(np.int64)
    return labelled, truth


@pytest.fixture(scope="module", params=["forest", "boosted", "logistic"])
def semi(request, model, features, split):
    labelled, truth = split
    return train_semi(model, features, np.where(labelled, truth, -1), SemiConfig(classifier=request.param))


def test_semi_beats_the_unsupervised_score_on_held_out_cards(model, features, split, semi):
    labelled, truth = split
    held = ~labelled
    assert truth[held].sum() > 10
    ae_ap = average_precision_score(truth[held], score_steps(model, features)[held])
    semi_scores = semi.score(model, features)
    semi_ap = average_precision_score(truth[held], semi_scores[held])
    print(f"{semi.config.classifier} held-out AP: ae={ae_ap:.4f} semi={semi_ap:.4f}")
    assert semi_scores.dtype == np.float32 and ((semi_scores >= 0) & (semi_scores <= 1)).all()
    assert semi_ap > ae_ap
    assert semi.n_labelled == int(labelled.sum()) and semi.n_fraud == int(truth[labelled].sum())


def test_semi_save_load_round_trip_without_pickle(tmp_path, model, features, semi):
    path = semi.save(tmp_path / "semi")
    trees = {"forest": [FOREST_FILE], "boosted": [BOOSTED_FILE]}.get(semi.config.classifier, [])
    files = ["semi.json", *trees]
    assert sorted(p.name for p in path.iterdir()) == sorted(files)
    loaded = load_semi(path)
    assert loaded.config == semi.config
    np.testing.assert_allclose(loaded.score(model, features), semi.score(model, features), rtol=1e-6, atol=1e-7)
    with pytest.raises(NotFoundError):
        load_semi(tmp_path / "nothing")


def test_window_max_earlier_reads_only_the_windows_earlier_steps(model, features):
    window = model.config.window
    got = window_max_earlier(features, "amount_ratio", window)
    ratio = features.matrix[:, features.names.index("amount_ratio")]
    for e in range(0, features.n_entities, 7):
        lo, hi = features.offsets[e], features.offsets[e + 1]
        for t in range(lo, hi):
            earlier = ratio[max(lo, t - window + 1) : t]
            assert got[t] == (earlier.max() if earlier.size else 0.0)
    inputs, names = semi_inputs(model, features)
    np.testing.assert_array_equal(inputs[:, names.index(HISTORY_INPUT)], got)


def test_a_model_saved_without_the_history_input_still_loads(tmp_path, model, features, split):
    labelled, truth = split
    old = train_semi(model, features, np.where(labelled, truth, -1), SemiConfig(n_trees=5, use_history=False))
    path = old.save(tmp_path / "old")
    meta = json.loads((path / "semi.json").read_text())
    del meta["config"]["use_history"]  # as the models written before the flag existed
    (path / "semi.json").write_text(json.dumps(meta))
    loaded = load_semi(path)
    assert HISTORY_INPUT not in loaded.input_names
    np.testing.assert_array_equal(loaded.score(model, features), old.score(model, features))


def test_forest_arrays_predict_exactly_what_sklearn_does():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5))
    y = ((x[:, 0] > 0.5) & (x[:, 3] < 0)).astype(int)  # an interaction no single hyperplane draws
    forest = RandomForestClassifier(n_estimators=7, random_state=0).fit(x[:400], y[:400])
    arrays = Forest.from_sklearn(forest)
    np.testing.assert_allclose(arrays.predict(x[400:]), forest.predict_proba(x[400:])[:, 1], rtol=0, atol=1e-12)
    assert ((arrays.predict(x[400:]) > 0.5) == y[400:].astype(bool)).mean() > 0.95


def test_boosted_arrays_predict_exactly_what_sklearn_does():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 5))
    y = ((x[:, 0] > 0.5) & (x[:, 3] < 0)).astype(int)
    x[rng.random(x.shape) < 0.05] = np.nan  # missing inputs follow each node's learnt side
    boosted = HistGradientBoostingClassifier(max_iter=30, early_stopping=False, random_state=0)
    boosted.fit(x[:2000], y[:2000])
    arrays = Boosted.from_sklearn(boosted)
    assert arrays.roots.size == 30 and arrays.feature.size > 30
    np.testing.assert_allclose(arrays.predict(x[2000:]), boosted.predict_proba(x[2000:])[:, 1], rtol=0, atol=1e-12)
    assert ((arrays.predict(x[2000:]) > 0.5) == y[2000:].astype(bool)).mean() > 0.9


@pytest.mark.parametrize(
    ("classifier", "file", "kind"), [("forest", FOREST_FILE, "forest"), ("boosted", BOOSTED_FILE, "boosted trees")]
)
def test_malformed_tree_files_are_refused(tmp_path, model, features, split, classifier, file, kind):
    labelled, truth = split
    path = train_semi(model, features, np.where(labelled, truth, -1), SemiConfig(classifier=classifier))
    path = path.save(tmp_path / "semi")
    with np.load(path / file) as data:
        arrays = dict(data)
    bad = dict(arrays, left=np.where(arrays["left"] >= 0, 0, arrays["left"]))  # a cycle back to the root
    np.savez(path / file, **bad)
    with pytest.raises(DataError, match="children"):
        load_semi(path)
    bad = dict(arrays, feature=np.where(arrays["feature"] >= 0, 999, arrays["feature"]))  # no such input
    np.savez(path / file, **bad)
    with pytest.raises(DataError, match="do not exist"):
        load_semi(path)
    np.savez(path / file, **{k: v for k, v in arrays.items() if k != "threshold"})
    with pytest.raises(DataError, match=f"malformed {kind}"):
        load_semi(path)
    np.savez(path / file, **dict(arrays, roots=np.array([object()], dtype=object)))  # would need a pickle
    with pytest.raises(DataError, match=f"malformed {kind}"):
        load_semi(path)
    (path / file).write_bytes(b"not an npz")
    with pytest.raises(DataError, match=f"malformed {kind}"):
        load_semi(path)
    (path / file).unlink()
    with pytest.raises(DataError, match="missing"):
        load_semi(path)


def test_semi_input_checks(model, features):
    with pytest.raises(DataError, match="one value per step"):
        train_semi(model, features, np.zeros(3))
    with pytest.raises(DataError, match="-1"):
        train_semi(model, features, np.full(features.n_steps, 2))
    with pytest.raises(DataError, match="at least 1 labelled fraud"):
        train_semi(model, features, np.zeros(features.n_steps))
    with pytest.raises(ConfigError):
        SemiConfig(C=0)
    with pytest.raises(ConfigError, match="classifier"):
        SemiConfig(classifier="boosting")
    with pytest.raises(ConfigError, match="learning_rate"):
        SemiConfig(classifier="boosted", learning_rate=0)
    with pytest.raises(ConfigError):
        SemiConfig(n_trees=0)
    with pytest.raises(ConfigError, match="max_depth"):
        SemiConfig(max_depth=0)


def test_labels_round_trip_through_the_store(store_url):
    store = Store(store_url)
    record_label(
        store, txn_id=1, card_id="c1", label="confirmed fraud", analyst="ann", alert_id="a1", note="called the customer"
    )
    record_label(store, txn_id="2", card_id="c1", label="false positive", analyst="bob")
    record_label(store, txn_id="3", card_id="c2", label="fraud", analyst="ann")
    record_label(
        store, txn_id="3", card_id="c2", label="genuine", analyst="cat", note="customer confirmed"
    )  # latest wins
    assert store.count("labels") == 4
    labels = read_labels(store).sort("txn_id")
    assert labels["txn_id"].to_list() == ["1", "2", "3"]
    assert labels["label"].to_list() == ["fraud", "genuine", "genuine"]
    assert labels["is_fraud"].to_list() == [1, 0, 0]
    assert labels["analyst"].to_list() == ["ann", "bob", "cat"]
    assert labels["alert_id"].to_list() == ["a1", None, None]
    assert labels["note"].to_list()[0] == "called the customer"
    assert read_labels(store, history=True).height == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"label": "maybe"}, "label must be"),
        ({"txn_id": ""}, "txn_id must not be empty"),
        ({"card_id": "  "}, "card_id must not be empty"),
        ({"txn_id": "x" * 129}, "at most 128"),
        ({"analyst": "a" * 129}, "at most 128"),
        ({"analyst": ""}, "analyst must not be empty"),
        ({"alert_id": ""}, "alert_id must not be empty"),
        ({"note": "n" * 10_001}, "at most 10000"),
    ],
)
def test_bad_labels_are_refused_and_nothing_is_written(store_url, kwargs, match):
    store = Store(store_url)
    args = {"txn_id": "t", "card_id": "c", "label": "fraud", "analyst": "ann"} | kwargs
    with pytest.raises(ConfigError, match=match) as info:
        record_label(store, **args)
    assert "\n" not in str(info.value)
    assert store.count("labels") == 0


def test_store_labels_become_step_labels(store_url, features, source):
    store = Store(store_url)
    txn_ids = source["txn_id"]
    fraud_txn = source.filter(pl.col("is_fraud") == 1)["txn_id"][0]
    genuine_row = source.filter(pl.col("is_fraud") == 0).row(0, named=True)
    fraud_card = source.filter(pl.col("txn_id") == fraud_txn)["card_id"][0]
    record_label(store, txn_id=fraud_txn, card_id=fraud_card, label="confirmed fraud", analyst="ann")
    record_label(
        store, txn_id=genuine_row["txn_id"], card_id=genuine_row["card_id"], label="false positive", analyst="ann"
    )
    steps = step_labels(features, txn_ids, read_labels(store))
    assert steps.shape == (features.n_steps,)
    assert (steps == 1).sum() == 1 and (steps == 0).sum() == 1 and (steps == -1).sum() == features.n_steps - 2
    ids = txn_ids.cast(pl.String).gather(features.frame["row"].to_numpy())
    assert ids[int(np.flatnonzero(steps == 1)[0])] == str(fraud_txn)

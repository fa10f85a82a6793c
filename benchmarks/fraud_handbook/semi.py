"""The semi-supervised model on the Fraud Detection Handbook split, and the handbook's published figures.

:func:`run_semi` trains :mod:`fraud.semi` on the labels of the training week only (the handbook's
protocol: those labels are all known when the test week starts, after the one-week delay; later
labels reach the model only as the handbook's terminal risk windows reach the RandomForest, each
known 7 days after its transaction) and scores the test week; its inputs are the trained
autoencoder's step score, window score and bottleneck vector, the window's largest earlier amount
ratio, the terminal's label history (:mod:`fraud.counterparty_labels`) and the step features the
autoencoder reads (8 base step features and the handbook's 14 baseline features), see
:func:`fraud.semi.semi_inputs`.

:data:`PUBLISHED` quotes the handbook's own result tables (notebook outputs in
``Fraud-Detection-Handbook/fraud-detection-handbook``, read from the handbook's repository). Only
Chapter 3 evaluates on exactly our split; Chapters 5 and 7 report the mean (+/- std) over four
prequential test weeks (training weeks starting 2018-07-25, 08-01, 08-08, 08-15; test weeks
2018-08-08 .. 2018-09-04), with hyper-parameters chosen on validation weeks, so they are the same
data and protocol but not the same single week.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl

from benchmarks.fraud_handbook.data import metrics
from fraud.autoencoder import SequenceAutoencoder
from fraud.config import SemiConfig
from fraud.features import Features
from fraud.semi import fit_semi, input_names, semi_inputs

REPO = "Fraud-Detection-Handbook/fraud-detection-handbook"
PREQUENTIAL = "prequential, 4 folds: test weeks 2018-08-08 .. 2018-09-04, mean +/- std (includes our test week)"
# Test figures (AUC ROC, Average Precision, Card Precision@100) the handbook publishes for this data.
PUBLISHED: dict[str, dict[str, Any]] = {
    "chapter3_baseline": {
        "source": f"{REPO}: Chapter_3_GettingStarted/BaselineModeling.ipynb, output of cell [25] "
        "(performances on test set)",
        "protocol": "same split as ours: train 2018-07-25 .. 07-31, delay 08-01 .. 08-07, test 08-08 .. 08-14",
        "models": {
            "Logistic regression": [0.871, 0.606, 0.291],
            "Decision tree with depth of two": [0.763, 0.496, 0.241],
            "Decision tree - unlimited depth": [0.788, 0.309, 0.243],
            "Random forest": [0.867, 0.658, 0.287],
            "XGBoost": [0.862, 0.639, 0.273],
        },
    },
    "chapter5_model_selection": {
        "source": f"{REPO}: Chapter_5_ModelValidationAndSelection/ModelSelection.ipynb, outputs of cells [63] and "
        "[61] (summary_performances_xgboost, 'Test performance' row for the best validation parameters; the "
        "'Optimal test performance' row, chosen on the test weeks, gives AP 0.694)",
        "protocol": PREQUENTIAL,
        "models": {"XGBoost (best validation parameters)": [0.872, 0.692, 0.304]},
    },
    "chapter7_benchmark_summary": {
        "source": f"{REPO}: Chapter_7_DeepLearning/SequentialModeling.ipynb, output of cell [10] "
        "(summary_test_performances, section 'Benchmark summary')",
        "protocol": PREQUENTIAL,
        "models": {
            "Decision Tree": [0.797, 0.579, 0.284],
            "Logistic Regression": [0.868, 0.623, 0.297],
            "Random Forest": [0.870, 0.678, 0.299],
            "XGBoost": [0.869, 0.687, 0.303],
            "Neural Network": [0.876, 0.675, 0.303],
            "CNN": [0.872, 0.599, 0.288],
            "LSTM": [0.876, 0.665, 0.297],
            "LSTM with Attention": [0.874, 0.667, 0.295],
        },
    },
    "chapter7_autoencoder_semi_supervised": {
        "source": f"{REPO}: Chapter_7_DeepLearning/Autoencoders.ipynb, output of cell [41] (feed-forward network "
        "on the 15 features + the autoencoder's reconstruction error)",
        "protocol": "train 2018-07-11 .. 07-17, evaluated on 2018-07-25 .. 07-31 "
        "(our validation week, not the test week)",
        "models": {"FFNN + autoencoder reconstruction error": [0.861, 0.651, 0.276]},
    },
}
METRICS = ("auc", "ap", "cp100")


def published_best(tables: list[str] | None = None) -> dict[str, Any]:
    """The best published value of each metric over ``tables`` (default: all of :data:`PUBLISHED`),
    with its table and model."""
    best: dict[str, Any] = {}
    for i, metric in enumerate(METRICS):
        value, where = max(
            (figures[i], f"{table}: {model}")
            for table in tables or list(PUBLISHED)
            for model, figures in PUBLISHED[table]["models"].items()
        )
        best[metric] = {"value": value, "model": where}
    return best


# Candidates compared on the validation split (``--validate-semi``); the benchmark uses SEMI_VARIANT.
SEMI_VARIANTS: dict[str, SemiConfig] = {
    "forest": SemiConfig(),
    "forest_no_embedding": SemiConfig(use_embedding=False),
    "forest_balanced_leaf5": SemiConfig(class_weight="balanced", min_samples_leaf=5),
    "forest_leaf3": SemiConfig(min_samples_leaf=3),
    "forest_leaf3_t300": SemiConfig(min_samples_leaf=3, n_trees=300),
    "forest_leaf5_t300": SemiConfig(min_samples_leaf=5, n_trees=300),
    "forest_leaf5_t300_no_history": SemiConfig(min_samples_leaf=5, n_trees=300, use_history=False),
    "forest_leaf5_t300_counterparty": SemiConfig(min_samples_leaf=5, n_trees=300, use_counterparty_labels=True),
    "boosted": SemiConfig(classifier="boosted"),
    "boosted_lr05_leaf15_msl50": SemiConfig(
        classifier="boosted",
        learning_rate=0.05,
        n_trees=300,
        max_leaf_nodes=15,
        min_samples_leaf=50,
        early_stopping=False,
    ),
    "boosted_lr05_leaf63_msl50": SemiConfig(
        classifier="boosted",
        learning_rate=0.05,
        n_trees=150,
        max_leaf_nodes=63,
        min_samples_leaf=50,
        early_stopping=False,
    ),
    "boosted_lr02_leaf15_l2": SemiConfig(
        classifier="boosted", learning_rate=0.02, n_trees=600, max_leaf_nodes=15, l2=1.0, early_stopping=False
    ),
    "logistic": SemiConfig(classifier="logistic"),
    "logistic_balanced": SemiConfig(classifier="logistic", class_weight="balanced"),
}
SEMI_VARIANT = "forest_leaf5_t300_counterparty"


def run_semi(
    features: Features,
    model: SequenceAutoencoder,
    train: pl.DataFrame,
    test: pl.DataFrame,
    variants: list[str],
    counterparty_labels: np.ndarray,
) -> dict[str, dict[str, Any]]:
    """Fit each semi-supervised variant on the training week's labels and score the test week.

    ``features`` hold (at least) the steps of both weeks with their windows' history
    (:func:`benchmarks.fraud_handbook.scoring_rows`); steps outside the training week are
    unlabelled (-1) whatever their label. The inputs are computed once (every input group) and
    each variant takes its columns; ``counterparty_labels`` is the steps' counterparty label
    history (:func:`benchmarks.fraud_handbook.data.with_counterparty_labels`).
    Returns ``{variant: {"semi_auc": .., ...}}``.
    """
    started = time.perf_counter()
    every_input = SemiConfig(use_counterparty_labels=True)
    inputs, names = semi_inputs(model, features, every_input, counterparty_labels)
    inputs_s = time.perf_counter() - started
    ids = features.frame["row"].to_numpy()  # = TRANSACTION_ID
    order = np.argsort(ids)

    def positions(frame: pl.DataFrame) -> np.ndarray:
        return order[np.searchsorted(ids[order], frame["TRANSACTION_ID"].to_numpy())]

    labels = np.full(ids.size, -1, dtype=np.int64)
    labels[positions(train)] = train["TX_FRAUD"].to_numpy()
    test_rows = positions(test)
    results: dict[str, dict[str, Any]] = {}
    for variant in variants:
        started = time.perf_counter()
        config = SEMI_VARIANTS[variant]
        columns = [names.index(n) for n in input_names(model, features, config)]
        semi = fit_semi(inputs[:, columns], [names[i] for i in columns], labels, config)
        scores = semi.probability(inputs[test_rows][:, columns])
        out: dict[str, Any] = {
            "semi_inputs_s": inputs_s,
            "semi_s": time.perf_counter() - started,
            "semi_n_labelled": semi.n_labelled,
            "semi_n_fraud": semi.n_fraud,
            "semi_inputs": semi.input_names,
        }
        results[variant] = out | {f"semi_{k}": v for k, v in metrics(test, scores).items()}
    return results

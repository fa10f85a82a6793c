"""Semi-supervised fraud model: analysts' labels on top of the autoencoder's unsupervised signal.

For every step ``t`` the model reads (all causal: functions of steps ``<= t`` only)::

    u_t = [ log(eps + e_t),                 the AE step score (score_steps)
            log(eps + mean_i e_{t,i}),       the window score (mean error of the window ending at t)
            z_t,                             the window's bottleneck embedding (embed_windows)
            max_{0<k<L} r_{t-k},             the largest amount_ratio among the window's earlier steps
            h_t,                             the counterparty's known-label history (optional, below)
            x_t ]                            the step's features (Features.matrix row t)

The window's largest earlier ``amount_ratio`` (``window_max_amount_ratio``, 0 when the step is
the entity's first) carries what one step cannot: a card that already made an unusually large
payment in its last ``L - 1`` steps is likelier compromised now (on the Fraud Detection Handbook
data it raised validation Average Precision from 0.714 to 0.731, mean of four validation weeks,
higher on each, see ``benchmarks/fraud_handbook``).

With ``use_counterparty_labels``, ``h_t`` adds what analysts had confirmed about the step's
counterparty before the step (:mod:`fraud.counterparty_labels`: the latest known label, the
length and age of its fraud streak): the one sign of a compromised terminal, whose payments look
habitual to every card (on the Fraud Detection Handbook data, with labels known a week late, it
raised validation Average Precision from 0.731 to 0.748 and Card Precision@100 from 0.289 to 0.293,
mean of four validation weeks, higher on each). The caller computes it from the labelled
transactions and when each label became known
(:func:`fraud.counterparty_labels.counterparty_label_history`).

The classifier is fitted on the labelled steps only (``labels == 0`` genuine, ``1`` fraud,
``-1`` unlabelled, ignored). The score ``P(fraud | u_t)`` is a probability in [0, 1], reported next
to — never instead of — the unsupervised AE score. Three classifiers (``SemiConfig.classifier``):

- ``"forest"`` (default): a random forest (scikit-learn's ``RandomForestClassifier``: bootstrap
  samples, ``sqrt(d)`` candidate inputs per split, Gini impurity, fully grown trees unless
  ``max_depth``); ``P(fraud | u) = (1/T) sum_k p_k(leaf_k(u))``, the mean over the ``T`` trees of
  the fraud share in the leaf ``u`` falls into. Trees catch what one hyperplane cannot: a
  compromised terminal's risk window crossing a threshold, a spending burst relative to the
  card's own past (on the Fraud Detection Handbook data it beats logistic regression by far in
  Average Precision, chosen on a validation split, see ``benchmarks/fraud_handbook``).
- ``"boosted"``: gradient-boosted trees (scikit-learn's ``HistGradientBoostingClassifier``: inputs
  binned into at most 255 quantile bins, trees grown best-first up to ``max_leaf_nodes`` leaves):
  ``F(u) = b + sum_k eta f_k(u)``, ``P(fraud | u) = sigmoid(F(u))``, each tree ``f_k`` a Newton step
  on the log loss ``sum_t w_{y_t} log(1 + exp(-s_t F(u_t)))``, leaf value ``-G / (H + l2)`` (sums of
  the gradients and hessians of the leaf's steps), at most ``n_trees`` rounds, fewer with
  ``early_stopping`` (on a 10% hold-out of the labelled steps).
- ``"logistic"``: L2-regularised logistic regression on the standardised inputs
  (mean / std of the labelled steps)::

      minimise  sum_t w_{y_t} log(1 + exp(-s_t (b + w . u_t))) + ||w||^2 / (2 C),   s_t = 2 y_t - 1.

``class_weight="balanced"`` weighs the classes ``w_y = n / (2 n_y)`` (frauds are rare); None weighs
every labelled step alike.

Nothing is pickled: a model directory holds ``semi.json`` (config, input names, the logistic
standardiser and coefficients) and, for the trees, ``semi_forest.npz`` or ``semi_boosted.npz`` —
node arrays (split input, threshold, children, leaf fraud share or leaf value, see
:mod:`fraud.trees`) loaded with ``allow_pickle=False`` and evaluated with numpy (exactly
scikit-learn's ``predict_proba``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from embeddings.errors import ConfigError, DataError
from embeddings.files import atomic_directory, format_tag, read_manifest
from fraud.autoencoder import SequenceAutoencoder, window_errors_and_vectors
from fraud.config import SemiConfig
from fraud.counterparty_labels import COUNTERPARTY_LABEL_INPUTS
from fraud.features import Features
from fraud.trees import Boosted, Forest, Trees

CONFIG_FILE = "semi.json"
FOREST_FILE = "semi_forest.npz"
BOOSTED_FILE = "semi_boosted.npz"
TREE_MODELS: dict[str, tuple[type[Trees], str]] = {"forest": (Forest, FOREST_FILE), "boosted": (Boosted, BOOSTED_FILE)}
FORMAT = format_tag("semi_model", 2)
EPS = 1e-6
HISTORY_INPUT = "window_max_amount_ratio"


def semi_inputs(
    model: SequenceAutoencoder,
    features: Features,
    config: SemiConfig | None = None,
    counterparty_labels: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The classifier's raw inputs ``[n_steps, d]`` float64 and their names (see the module doc).

    ``counterparty_labels``: :func:`fraud.counterparty_labels.counterparty_label_history` of the
    steps, ``[n_steps, 4]``; required when ``config.use_counterparty_labels``, else unused.
    """
    config = config or SemiConfig()
    if config.use_counterparty_labels:
        expected = (features.n_steps, len(COUNTERPARTY_LABEL_INPUTS))
        if counterparty_labels is None:
            raise ConfigError(
                "use_counterparty_labels needs the steps' counterparty_labels "
                "(fraud.counterparty_labels.counterparty_label_history)"
            )
        if np.shape(counterparty_labels) != expected:
            raise DataError(f"counterparty_labels must have shape {expected}, got {np.shape(counterparty_labels)}")
    errors, vectors = window_errors_and_vectors(model, features)  # the vectors come with the errors
    parts = [np.log(EPS + errors[:, -1:]), np.log(EPS + np.nanmean(errors, axis=1, keepdims=True))]
    if config.use_embedding:
        parts.append(vectors)
    if config.use_history:
        parts.append(window_max_earlier(features, "amount_ratio", model.config.window)[:, None])
    if config.use_counterparty_labels:
        parts.append(np.asarray(counterparty_labels))
    if config.use_features:
        parts.append(features.matrix)
    inputs = np.nan_to_num(
        np.concatenate([p.astype(np.float64) for p in parts], axis=1), nan=0.0, posinf=0.0, neginf=0.0
    )
    return inputs, input_names(model, features, config)


def window_max_earlier(features: Features, column: str, window: int) -> np.ndarray:
    """For every step, the largest value of feature ``column`` over the entity's previous
    ``window - 1`` steps (the earlier steps of the window ending at it), float64 ``[n_steps]``;
    0 at an entity's first step. Causal: step ``t`` reads steps ``t-window+1 .. t-1`` only."""
    values = features.matrix[:, features.names.index(column)].astype(np.float64)
    before = features.steps_before()
    best = np.full(features.n_steps, -np.inf)
    for lag in range(1, window):
        has = np.flatnonzero(before >= lag)
        best[has] = np.maximum(best[has], values[has - lag])
    return np.where(np.isfinite(best), best, 0.0)


def input_names(model: SequenceAutoencoder, features: Features, config: SemiConfig) -> list[str]:
    """The names of :func:`semi_inputs`' columns under ``config`` (nothing computed)."""
    names = ["ae_step_score", "ae_window_score"]
    if config.use_embedding:
        names += [f"z{i}" for i in range(model.config.bottleneck)]
    if config.use_history:
        names.append(HISTORY_INPUT)
    if config.use_counterparty_labels:
        names += list(COUNTERPARTY_LABEL_INPUTS)
    if config.use_features:
        names += list(features.names)
    return names


@dataclass
class SemiModel:
    """A fitted semi-supervised model: the logistic regression (standardiser, coefficients) or the trees."""

    config: SemiConfig
    input_names: list[str]
    mean: np.ndarray | None = None  # logistic only
    scale: np.ndarray | None = None
    coef: np.ndarray | None = None
    intercept: float = 0.0
    trees: Trees | None = None  # forest and boosted: a Forest or Boosted
    n_labelled: int = 0
    n_fraud: int = 0

    def probability(self, inputs: np.ndarray) -> np.ndarray:
        """``P(fraud)`` float64 ``[n]`` from raw inputs ``[n, d]`` (as :func:`semi_inputs` makes them)."""
        if self.trees is not None:
            return self.trees.predict(inputs)
        z = ((inputs - self.mean) / self.scale) @ self.coef + self.intercept
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # the sigmoid, without overflow

    def score(
        self, model: SequenceAutoencoder, features: Features, counterparty_labels: np.ndarray | None = None
    ) -> np.ndarray:
        """``P(fraud)`` of every step, float32 ``[n_steps]`` (needs the autoencoder it was trained with;
        ``counterparty_labels`` as for :func:`semi_inputs`)."""
        inputs, names = semi_inputs(model, features, self.config, counterparty_labels)
        if names != self.input_names:
            raise DataError(
                f"inputs do not match the semi-supervised model: it was trained on {self.input_names}, got {names}"
            )
        return self.probability(inputs).astype(np.float32)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/semi.json`` (and the trees' ``semi_forest.npz`` / ``semi_boosted.npz``), all or nothing."""
        directory = Path(directory)
        meta = {
            "format": FORMAT,
            "config": asdict(self.config),
            "input_names": self.input_names,
            "n_labelled": int(self.n_labelled),
            "n_fraud": int(self.n_fraud),
        }
        if self.trees is None:
            meta |= {
                "mean": self.mean.tolist(),
                "scale": self.scale.tolist(),
                "coef": self.coef.tolist(),
                "intercept": float(self.intercept),
            }
        with atomic_directory(directory) as tmp:
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
            if self.trees is not None:
                self.trees.save(tmp / TREE_MODELS[self.config.classifier][1])
        return directory


def load_semi(directory: str | os.PathLike) -> SemiModel:
    """Load a model written by :meth:`SemiModel.save` (JSON and plain arrays; nothing is unpickled)."""
    directory = Path(directory)
    meta = read_manifest(directory, CONFIG_FILE, FORMAT, "a semi-supervised model")
    source = directory / CONFIG_FILE
    try:
        known = {f.name for f in fields(SemiConfig)}
        saved = {"use_history": False} | meta["config"]  # models saved before the history input lack the flag
        config = SemiConfig(**{k: v for k, v in saved.items() if k in known})
        names = [str(n) for n in meta["input_names"]]
        counts = int(meta.get("n_labelled", 0)), int(meta.get("n_fraud", 0))
        if config.classifier == "logistic":
            arrays = [np.asarray(meta[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
            intercept = float(meta["intercept"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{source}: malformed semi-supervised model ({exc})") from exc
    if config.classifier == "logistic":
        if any(a.shape != (len(names),) for a in arrays):
            raise DataError(f"{source}: mean, scale and coef must each have {len(names)} values")
        return SemiModel(config, names, *arrays, intercept, None, *counts)
    kind, file = TREE_MODELS[config.classifier]
    trees = kind.load(directory / file, len(names))
    return SemiModel(config, names, trees=trees, n_labelled=counts[0], n_fraud=counts[1])


def _check_labels(labels: object, n_steps: int, config: SemiConfig) -> np.ndarray:
    array = np.asarray(labels)
    if array.shape != (n_steps,):
        raise DataError(f"labels must have one value per step ({n_steps}), got shape {array.shape}")
    if not np.isin(array, (-1, 0, 1)).all():
        raise DataError("labels must be -1 (unlabelled), 0 (genuine) or 1 (fraud)")
    n_fraud, n_genuine = int((array == 1).sum()), int((array == 0).sum())
    if min(n_fraud, n_genuine) < config.min_per_class:
        raise DataError(
            f"need at least {config.min_per_class} labelled fraud and genuine step(s) to train; "
            f"got {n_fraud} fraud and {n_genuine} genuine"
        )
    return array.astype(np.int64)


def fit_semi(inputs: np.ndarray, names: list[str], labels: np.ndarray, config: SemiConfig) -> SemiModel:
    """Fit the classifier on raw inputs ``[n, d]`` (from :func:`semi_inputs`) and labels ``[n]`` (-1, 0, 1)."""
    labels = _check_labels(labels, inputs.shape[0], config)
    known = labels >= 0
    x, y = inputs[known], labels[known]
    counts = int(known.sum()), int((y == 1).sum())
    if config.classifier == "forest":
        forest = RandomForestClassifier(
            n_estimators=config.n_trees,
            max_depth=config.max_depth,
            min_samples_leaf=config.min_samples_leaf or 1,
            class_weight="balanced_subsample" if config.class_weight == "balanced" else None,
            random_state=config.seed,
            n_jobs=1,
        ).fit(x, y)
        return SemiModel(config, names, trees=Forest.from_sklearn(forest), n_labelled=counts[0], n_fraud=counts[1])
    if config.classifier == "boosted":
        boosted = HistGradientBoostingClassifier(
            learning_rate=config.learning_rate,
            max_iter=config.n_trees,
            max_leaf_nodes=config.max_leaf_nodes,
            max_depth=config.max_depth,
            min_samples_leaf=config.min_samples_leaf or 20,
            l2_regularization=config.l2,
            early_stopping=config.early_stopping,
            class_weight=config.class_weight,
            random_state=config.seed,
        ).fit(x, y)
        return SemiModel(config, names, trees=Boosted.from_sklearn(boosted), n_labelled=counts[0], n_fraud=counts[1])
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    classifier = LogisticRegression(C=config.C, class_weight=config.class_weight, max_iter=config.max_iter)
    classifier.fit((x - mean) / scale, y)
    coef = classifier.coef_[0].astype(np.float64)
    return SemiModel(config, names, mean, scale, coef, float(classifier.intercept_[0]), None, *counts)


def train_semi(
    model: SequenceAutoencoder,
    features: Features,
    labels: np.ndarray,
    config: SemiConfig | None = None,
    counterparty_labels: np.ndarray | None = None,
) -> SemiModel:
    """Fit the semi-supervised model on the labelled steps (``labels`` per step: -1, 0 or 1;
    ``counterparty_labels`` as for :func:`semi_inputs`)."""
    config = config or SemiConfig()
    labels = _check_labels(labels, features.n_steps, config)  # before the (costly) inputs
    inputs, names = semi_inputs(model, features, config, counterparty_labels)
    return fit_semi(inputs, names, labels, config)


def step_labels(features: Features, txn_ids: object, labels: pl.DataFrame) -> np.ndarray:
    """Per-step labels (-1 / 0 / 1) from :func:`fraud.labels.read_labels`'s frame.

    ``txn_ids`` are the transaction ids of the source table's rows, in its order (``features.frame["row"]``
    indexes them); steps without a label get -1.
    """
    ids = pl.Series("txn_id", txn_ids).cast(pl.String)
    rows = features.frame["row"].to_numpy()
    if rows.size and rows.max() >= ids.len():
        raise DataError(f"txn_ids has {ids.len()} values but the features cover source row {int(rows.max())}")
    step_ids = pl.DataFrame({"txn_id": ids.gather(rows)})
    joined = step_ids.join(labels.select("txn_id", "is_fraud"), on="txn_id", how="left", maintain_order="left")
    return joined["is_fraud"].fill_null(-1).cast(pl.Int64).to_numpy()

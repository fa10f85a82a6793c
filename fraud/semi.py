"""Semi-supervised fraud model: analysts' labels on top of the autoencoder's unsupervised signal.

For every step ``t`` the model reads (all causal: functions of steps ``<= t`` only)::

    u_t = [ log(eps + e_t),                 the AE step score (score_steps)
            log(eps + mean_i e_{t,i}),       the window score (mean error of the window ending at t)
            z_t,                             the window's bottleneck embedding (embed_windows)
            x_t ]                            the step's features (Features.matrix row t)

standardises it with the mean and standard deviation of the labelled steps, and fits an
L2-regularised, class-weighted logistic regression on the labelled steps only
(``labels == 0`` genuine, ``1`` fraud, ``-1`` unlabelled, ignored)::

    minimise  sum_t w_{y_t} log(1 + exp(-s_t (b + w . u_t))) + ||w||^2 / (2 C),   s_t = 2 y_t - 1,

with ``w_y = n / (2 n_y)`` ("balanced" weights: frauds are rare). The score is
``P(fraud | u_t) = sigmoid(b + w . u_t)``, a probability in [0, 1], reported next to — never
instead of — the unsupervised AE score.

Why logistic regression: it is small, deterministic, well kept in scikit-learn, and its whole
state (``coef_``, ``intercept_``, the standardiser) saves as JSON; gradient-boosted trees would
need pickle (skops is not installed), and a model directory must load without running code.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression

from embeddings.errors import ConfigError, DataError
from embeddings.files import atomic_directory, read_manifest
from fraud.autoencoder import SequenceAutoencoder, embed_windows, window_errors
from fraud.features import Features

CONFIG_FILE = "semi.json"
FORMAT = 1
EPS = 1e-6


@dataclass(frozen=True)
class SemiConfig:
    """Hyper-parameters of the semi-supervised model; defaults work."""

    C: float = 1.0  # inverse L2 strength
    class_weight: str | None = "balanced"  # "balanced" or None
    max_iter: int = 2000
    use_embedding: bool = True  # include the bottleneck vector z_t
    use_features: bool = True  # include the step's features x_t
    min_per_class: int = 1  # labelled steps needed of each class

    def __post_init__(self) -> None:
        if not (isinstance(self.C, (int, float)) and math.isfinite(self.C) and self.C > 0):
            raise ConfigError(f"C must be a positive number, got {self.C!r}")
        if self.class_weight not in ("balanced", None):
            raise ConfigError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}")
        if self.max_iter < 1 or self.min_per_class < 1:
            raise ConfigError("max_iter and min_per_class must be at least 1")


def semi_inputs(
    model: SequenceAutoencoder, features: Features, config: SemiConfig | None = None
) -> tuple[np.ndarray, list[str]]:
    """The classifier's raw inputs ``[n_steps, d]`` float64 and their names (see the module doc)."""
    config = config or SemiConfig()
    errors = window_errors(model, features)
    parts = [np.log(EPS + errors[:, -1:]), np.log(EPS + np.nanmean(errors, axis=1, keepdims=True))]
    names = ["ae_step_score", "ae_window_score"]
    if config.use_embedding:
        parts.append(embed_windows(model, features))
        names += [f"z{i}" for i in range(model.config.bottleneck)]
    if config.use_features:
        parts.append(features.matrix)
        names += list(features.names)
    inputs = np.nan_to_num(
        np.concatenate([p.astype(np.float64) for p in parts], axis=1), nan=0.0, posinf=0.0, neginf=0.0
    )
    return inputs, names


@dataclass
class SemiModel:
    """A fitted semi-supervised model: the standardiser and the logistic regression, as arrays."""

    config: SemiConfig
    input_names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    n_labelled: int = 0
    n_fraud: int = 0

    def decision(self, inputs: np.ndarray) -> np.ndarray:
        return ((inputs - self.mean) / self.scale) @ self.coef + self.intercept

    def score(self, model: SequenceAutoencoder, features: Features) -> np.ndarray:
        """``P(fraud)`` of every step, float32 ``[n_steps]`` (needs the autoencoder it was trained with)."""
        inputs, names = semi_inputs(model, features, self.config)
        if names != self.input_names:
            raise DataError(
                f"inputs do not match the semi-supervised model: it was trained on {self.input_names}, got {names}"
            )
        z = self.decision(inputs)
        return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)  # the sigmoid, without overflow

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/semi.json`` (config, input names, standardiser, coefficients), all or nothing."""
        directory = Path(directory)
        meta = {
            "format": FORMAT,
            "classifier": "sklearn.linear_model.LogisticRegression",
            "config": asdict(self.config),
            "input_names": self.input_names,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": float(self.intercept),
            "n_labelled": int(self.n_labelled),
            "n_fraud": int(self.n_fraud),
        }
        with atomic_directory(directory) as tmp:
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return directory


def load_semi(directory: str | os.PathLike) -> SemiModel:
    """Load a model written by :meth:`SemiModel.save` (plain JSON; nothing is unpickled)."""
    directory = Path(directory)
    meta = read_manifest(directory, CONFIG_FILE, FORMAT, "a semi-supervised model")
    try:
        known = {f.name for f in fields(SemiConfig)}
        config = SemiConfig(**{k: v for k, v in meta["config"].items() if k in known})
        names = [str(n) for n in meta["input_names"]]
        arrays = [np.asarray(meta[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
        intercept = float(meta["intercept"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{directory / CONFIG_FILE}: malformed semi-supervised model ({exc})") from exc
    if any(a.shape != (len(names),) for a in arrays):
        raise DataError(f"{directory / CONFIG_FILE}: mean, scale and coef must each have {len(names)} values")
    return SemiModel(config, names, *arrays, intercept, int(meta.get("n_labelled", 0)), int(meta.get("n_fraud", 0)))


def _check_labels(labels: object, n_steps: int) -> np.ndarray:
    array = np.asarray(labels)
    if array.shape != (n_steps,):
        raise DataError(f"labels must have one value per step ({n_steps}), got shape {array.shape}")
    if not np.isin(array, (-1, 0, 1)).all():
        raise DataError("labels must be -1 (unlabelled), 0 (genuine) or 1 (fraud)")
    return array.astype(np.int64)


def train_semi(
    model: SequenceAutoencoder, features: Features, labels: np.ndarray, config: SemiConfig | None = None
) -> SemiModel:
    """Fit the semi-supervised model on the labelled steps (``labels`` per step: -1, 0 or 1)."""
    config = config or SemiConfig()
    labels = _check_labels(labels, features.n_steps)
    known = labels >= 0
    n_fraud = int((labels == 1).sum())
    n_genuine = int((labels == 0).sum())
    if min(n_fraud, n_genuine) < config.min_per_class:
        raise DataError(
            f"need at least {config.min_per_class} labelled fraud and genuine step(s) to train; "
            f"got {n_fraud} fraud and {n_genuine} genuine"
        )
    inputs, names = semi_inputs(model, features, config)
    x = inputs[known]
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    classifier = LogisticRegression(C=config.C, class_weight=config.class_weight, max_iter=config.max_iter)
    classifier.fit((x - mean) / scale, labels[known])
    return SemiModel(
        config,
        names,
        mean,
        scale,
        classifier.coef_[0].astype(np.float64),
        float(classifier.intercept_[0]),
        int(known.sum()),
        n_fraud,
    )


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

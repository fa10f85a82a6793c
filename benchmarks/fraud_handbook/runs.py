"""The runs behind :mod:`benchmarks.fraud_handbook`: the peers, our autoencoder and semi-supervised
model on one split, the validation weeks the variants were chosen on, and the handbook's
prequential test protocol. The module doc of :mod:`benchmarks.fraud_handbook` says what each
model is and how its variant was chosen."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.preprocessing import StandardScaler

from benchmarks.fraud_handbook.data import INPUT_FEATURES, TRAIN_START, handbook_split, metrics, train_test
from benchmarks.fraud_handbook.report import METRICS, MODELS, show
from benchmarks.fraud_handbook.semi import published_best, run_semi
from benchmarks.fraud_handbook.steps import ae_features, scoring_rows, slice_rows
from fraud.autoencoder import SequenceAutoencoder, score_steps, train_autoencoder
from fraud.config import AutoencoderConfig
from fraud.counterparty_labels import COUNTERPARTY_LABEL_INPUTS
from fraud.features import Features


def run_peers(train: pl.DataFrame, test: pl.DataFrame, seed: int) -> dict[str, Any]:
    """IsolationForest and the handbook's RandomForest on its 15 features; and that RandomForest
    with the counterparty label history added (``rf_counterparty``: what those inputs give a peer)."""

    def standardised(columns: list[str]) -> tuple[np.ndarray, np.ndarray]:  # as the handbook does
        x_train, x_test = (frame.select(columns).to_numpy().astype(np.float64) for frame in (train, test))
        scaler = StandardScaler().fit(x_train)
        return scaler.transform(x_train), scaler.transform(x_test)

    out: dict[str, Any] = {}
    started = time.perf_counter()
    handbook = standardised(INPUT_FEATURES)
    forest = IsolationForest(n_estimators=100, random_state=seed, n_jobs=1).fit(handbook[0])
    m = metrics(test, -forest.score_samples(handbook[1]))
    out.update({f"iforest_{k}": v for k, v in m.items()}, iforest_s=time.perf_counter() - started)

    with_labels = standardised(INPUT_FEATURES + list(COUNTERPARTY_LABEL_INPUTS))
    for name, (x_train, x_test) in (("rf", handbook), ("rf_counterparty", with_labels)):
        started = time.perf_counter()
        rf = RandomForestClassifier(n_estimators=100, max_depth=None, random_state=seed, n_jobs=1)
        rf.fit(x_train, train["TX_FRAUD"].to_numpy())
        m = metrics(test, rf.predict_proba(x_test)[:, 1])
        out.update({f"{name}_{k}": v for k, v in m.items()}, **{f"{name}_s": time.perf_counter() - started})
    return out


# name -> (inputs: base | handbook | handbook_log, combine with the terminal score, training
# days (None: --ae-train-days), AutoencoderConfig overrides)
AE_VARIANTS: dict[str, tuple[str, bool, int | None, dict[str, Any]]] = {
    "base": ("base", False, None, {}),
    "handbook": ("handbook", False, None, {}),
    "handbook_log": ("handbook_log", False, None, {}),
    "handbook_log+terminal": ("handbook_log", True, None, {}),
    "handbook+terminal": ("handbook", True, None, {}),
    "handbook_28d": ("handbook", False, 28, {}),
    "handbook_denoise": ("handbook", False, None, {"denoise": 0.1}),
    "handbook_wide": ("handbook", False, None, {"hidden": 64, "bottleneck": 8}),
    "handbook_28d_denoise": ("handbook", False, 28, {"denoise": 0.1}),
    "handbook_28d_narrow": ("handbook", False, 28, {"bottleneck": 2}),
    "handbook_28d_w4": ("handbook", False, 28, {"window": 4}),
}
AE_VARIANT = "handbook_28d_denoise"  # chosen on the validation split, see the module doc


def ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x, kind="stable"), kind="stable") / max(x.size - 1, 1)


def run_ae(
    features: Features, test: pl.DataFrame, split, config: AutoencoderConfig, train_days: int, variant: str
) -> tuple[dict[str, Any], SequenceAutoencoder]:
    out: dict[str, Any] = {}
    ts = features.frame["ts"]
    train_end = dt.datetime.combine(split.train_end + dt.timedelta(days=1), dt.time())
    train_start = train_end - dt.timedelta(days=train_days)
    in_train = ((ts >= train_start) & (ts < train_end)).to_numpy()
    train = slice_rows(features, in_train)
    out["ae_train_windows"] = int(train.n_steps)

    started = time.perf_counter()
    model = train_autoencoder(train, config)
    out["ae_train_s"] = time.perf_counter() - started

    started = time.perf_counter()
    source_row = features.frame["row"].to_numpy()  # = TRANSACTION_ID
    target = np.zeros(features.n_steps, dtype=bool)
    test_ids = test["TRANSACTION_ID"].to_numpy()
    target[np.isin(source_row, test_ids)] = True
    sub = slice_rows(features, scoring_rows(features, target, config.window))
    step_scores = score_steps(model, sub)
    by_id = dict(zip(sub.frame["row"].to_numpy().tolist(), step_scores.tolist()))
    scores = np.array([by_id[i] for i in test_ids.tolist()], dtype=np.float64)
    if AE_VARIANTS[variant][1]:
        # AE step score combined with the terminal side: mean of the ranks of the AE score and of
        # the terminal's delayed 7-day fraud rate (no label of the scored period).
        out["ae_step_only"] = {k: v for k, v in metrics(test, scores).items()}
        scores = 0.5 * ranks(scores) + 0.5 * ranks(test["TERMINAL_ID_RISK_7DAY_WINDOW"].to_numpy().astype(np.float64))
    out["ae_score_s"] = time.perf_counter() - started
    out.update({f"ae_{k}": v for k, v in metrics(test, scores).items()})
    return out, model


def semi_results(
    features: Features,
    model: SequenceAutoencoder,
    tx: pl.DataFrame,
    train: pl.DataFrame,
    test: pl.DataFrame,
    variants: list[str],
) -> dict[str, dict[str, Any]]:
    """:func:`run_semi` on the steps of the training and test weeks (with their windows' history);
    ``tx`` (with :func:`with_counterparty_labels`) gives every step its counterparty label history."""
    rows = features.frame["row"].to_numpy()
    target = np.isin(rows, train["TRANSACTION_ID"].to_numpy()) | np.isin(rows, test["TRANSACTION_ID"].to_numpy())
    sub = slice_rows(features, scoring_rows(features, target, model.config.window))
    steps = pl.DataFrame({"TRANSACTION_ID": sub.frame["row"]})  # row = TRANSACTION_ID
    history = steps.join(
        tx.select("TRANSACTION_ID", *COUNTERPARTY_LABEL_INPUTS), on="TRANSACTION_ID", how="left", maintain_order="left"
    ).drop("TRANSACTION_ID")
    return run_semi(sub, model, train, test, variants, history.to_numpy())


def variant_setup(variant: str, config: AutoencoderConfig, train_days: int) -> tuple[str, AutoencoderConfig, int]:
    inputs, _, days, overrides = AE_VARIANTS[variant]
    return inputs, replace(config, **overrides), days or train_days


def validate(
    tx: pl.DataFrame,
    config: AutoencoderConfig,
    train_days: int,
    seed: int,
    variants: list[str],
    ae_variant: str,
    semi_variants: list[str],
    weeks: int = 1,
) -> dict[str, Any]:
    """AE variants, semi-supervised variants (on ``ae_variant``'s autoencoder) and the peers on
    ``weeks`` validation splits carved from before the test week: the handbook's protocol moved
    back two weeks (train 2018-07-11 .. 07-17, delay 07-18 .. 07-24, validation = the handbook's
    training week 07-25 .. 07-31, whose labels are all known by the first test day), then one
    more week back for each further split. Each model's figures are the means over the splits;
    ``folds`` holds each split's."""
    folds = []
    for back in range(weeks):
        split = handbook_split(TRAIN_START - dt.timedelta(days=14 + 7 * back))
        train, val = train_test(tx, split)
        week = split.describe()["test"]
        fold: dict[str, Any] = {
            "split": split.describe(),
            "n_val": val.height,
            "n_val_fraud": int(val["TX_FRAUD"].sum()),
        }
        peers = run_peers(train, val, seed)
        for peer in ("iforest", "rf", "rf_counterparty"):
            fold[peer] = {k: peers[f"{peer}_{k}"] for k in METRICS}
            show(f"validation {week} {peer}", fold[peer])
        cache: dict[str, Features] = {}
        for variant in variants + ([ae_variant] if semi_variants and ae_variant not in variants else []):
            key, vconfig, vdays = variant_setup(variant, config, train_days)
            if key not in cache:
                cache[key] = ae_features(tx, key)
            r, model = run_ae(cache[key], val, split, vconfig, vdays, variant)
            fold[variant] = {k: r[f"ae_{k}"] for k in METRICS}
            show(f"validation {week} {variant}", fold[variant])
            if variant == ae_variant:
                for name, r in semi_results(cache[key], model, tx, train, val, semi_variants).items():
                    fold[f"semi_{name}"] = {k: r[f"semi_{k}"] for k in METRICS}
                    show(f"validation {week} semi_{name}", fold[f"semi_{name}"])
        folds.append(fold)
    out: dict[str, Any] = {"folds": folds}
    for name, first in folds[0].items():
        if isinstance(first, dict) and "auc" in first:
            out[name] = {k: float(np.mean([f[name][k] for f in folds])) for k in METRICS}
            show(f"validation mean over {weeks} week(s) {name}", out[name])
    return out


def prequential(
    tx: pl.DataFrame,
    features: Features,
    config: AutoencoderConfig,
    train_days: int,
    variant: str,
    variant_semi: str,
    per_seed: list[dict[str, Any]],
) -> dict[str, Any]:
    """The handbook's Chapter 5/7 test protocol: 4 prequential folds, training weeks starting
    2018-07-25, 08-01, 08-08, 08-15 (each: 7 days, 7-day delay, 7-day test), for every seed of
    ``per_seed`` (the main split's results per seed, which are fold 0). Each fold's figure is the
    mean over the seeds; the result is the mean over the folds, ``*_std`` the standard deviation
    over the folds (the spread the handbook's tables show); ``per_seed`` each seed's fold mean."""
    keys = [f"{m}_{x}" for m in MODELS for x in METRICS]
    splits = [handbook_split(TRAIN_START + dt.timedelta(days=7 * k)) for k in range(4)]
    weeks = [train_test(tx, split) for split in splits[1:]]  # fold 0, the main split, is in per_seed
    runs = np.empty((len(per_seed), 4, len(keys)))  # [seed, fold, key]
    for i, first in enumerate(per_seed):
        runs[i, 0] = [first[key] for key in keys]
        seed_config = replace(config, seed=first["seed"])
        for k, (split, (train, test)) in enumerate(zip(splits[1:], weeks), start=1):
            r = run_peers(train, test, seed_config.seed)
            ae, model = run_ae(features, test, split, seed_config, train_days, variant)
            r |= ae | semi_results(features, model, tx, train, test, [variant_semi])[variant_semi]
            runs[i, k] = [r[key] for key in keys]
            for m in ("semi", "rf"):
                show(f"prequential seed {seed_config.seed} fold {k} {m}", {x: r[f"{m}_{x}"] for x in METRICS})
    folds = runs.mean(axis=0)
    out: dict[str, Any] = {
        "seeds": [r["seed"] for r in per_seed],
        "folds": [dict(zip(keys, fold.tolist())) | {"split": split.describe()} for fold, split in zip(folds, splits)],
        "per_seed": [
            {"seed": r["seed"]} | dict(zip(keys, run.mean(axis=0).tolist())) for r, run in zip(per_seed, runs)
        ],
    }
    for j, key in enumerate(keys):
        out[key], out[f"{key}_std"] = float(folds[:, j].mean()), float(folds[:, j].std())
    best = published_best(["chapter5_model_selection", "chapter7_benchmark_summary"])
    out["published_best"] = best
    out["bars"] = {
        f"semi_{k}_ge_{ref}": out[f"semi_{k}"] >= value
        for k in ("ap", "cp100")
        for ref, value in (("rf", out[f"rf_{k}"]), ("published_best", best[k]["value"]))
    }
    return out

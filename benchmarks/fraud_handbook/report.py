"""Reporting for :mod:`benchmarks.fraud_handbook`: the issue's bars and the printed summary."""

from __future__ import annotations

from typing import Any

from benchmarks.fraud_handbook.semi import PUBLISHED

METRICS = ("auc", "ap", "cp100")
MODELS = ("iforest", "rf", "rf_counterparty", "ae", "semi")


def show(label: str, m: dict[str, float]) -> None:
    print(f"{label:40} AUC {m['auc']:.4f} AP {m['ap']:.4f} CP@100 {m['cp100']:.4f}", flush=True)


def bars(r: dict[str, Any]) -> dict[str, bool]:
    """The issue's bars on the (seed-mean) figures: AE vs IsolationForest; semi vs RF and vs the
    best figures the handbook publishes (all tables) and publishes for this very split (Chapter 3)."""
    out: dict[str, bool] = {}
    if "ae_auc" in r:
        out["ae_auc_ap_ge_iforest"] = r["ae_auc"] >= r["iforest_auc"] and r["ae_ap"] >= r["iforest_ap"]
    if "semi_ap" in r:
        best, same = r["handbook_published"]["best"], r["handbook_published"]["best_same_split"]
        for metric in ("ap", "cp100"):
            out[f"semi_{metric}_ge_rf"] = r[f"semi_{metric}"] >= r[f"rf_{metric}"]
            out[f"semi_{metric}_ge_published_best"] = r[f"semi_{metric}"] >= best[metric]["value"]
            out[f"semi_{metric}_ge_published_same_split"] = r[f"semi_{metric}"] >= same[metric]["value"]
    return out


def report(results: dict[str, Any]) -> None:
    n = len(results["seeds"])
    print(f"\nmean over {n} seed(s) {results['seeds']}; +/- std where more than one")
    print(f"{'model':16}{'AUC ROC':>17}{'AP':>17}{'CP@100':>17}")
    for model in MODELS:
        if f"{model}_auc" in results:
            cells = [f"{results[f'{model}_{k}']:.4f}+/-{results[f'{model}_{k}_std']:.4f}" for k in METRICS]
            print(f"{model:16}" + "".join(f"{c:>17}" for c in cells))
    for table, entry in PUBLISHED.items():
        print(f"handbook published, {table} ({entry['protocol']}):")
        for model, figures in entry["models"].items():
            print(f"    {model:42} AUC {figures[0]:.3f} AP {figures[1]:.3f} CP@100 {figures[2]:.3f}")
    for name, met in results["bars"].items():
        print(f"bar {name}: {'met' if met else 'NOT met'}")
    if "prequential" in results:
        r = results["prequential"]
        print(f"prequential (4 folds, seeds {r['seeds']}), mean +/- std over the folds:")
        for model in MODELS:
            print(
                f"    {model:16}" + "".join(f"{r[f'{model}_{k}']:>9.4f}+/-{r[f'{model}_{k}_std']:.4f}" for k in METRICS)
            )
        for name, met in r["bars"].items():
            print(f"    bar {name}: {'met' if met else 'NOT met'}")
    print(f"wall {results['wall_s']:.0f} s")

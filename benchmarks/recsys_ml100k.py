"""MovieLens-100K, user-based: seqemb's recommenders against popularity and implicit's ALS and BPR.

Data: every rating is a positive; each user's items in time order (ties keep the file
order), split leave-one-out: the last item is the test target, the second-to-last the
validation target (:func:`benchmarks.recsys_data.ml100k`). HR@10 and NDCG@10 under two
protocols, by the same code for every model (:func:`benchmarks.recsys_peers.score`):
``full`` ranks all items but those already in the user's history; ``sampled`` ranks the
target against 100 items the user never had, the same fixed negatives for every model
(:func:`benchmarks.recsys_peers.protocol_inputs`, the NCF / SASRec papers' protocol).

Models (``<model>`` in the JSON keys):

- ``pop``, ``als``, ``bpr``: the peers, run by :func:`benchmarks.recsys_peers.run_peers`.
- ``item2vec``: SGNS item vectors of the training sequences, scored by item-kNN
  (:class:`recsys.item_knn.ItemKNN`: cosine to a recency-weighted mean of the last items).
- ``gru``: the GRU session encoder alone (full softmax over the 1,682 films), item
  embeddings initialised from the item2vec vectors when the grid point says so.
- ``dssm``: the two-tower model on top of the chosen encoder; the item tower sees the
  film's id and its 19 genre flags (``u.item``).
- ``dssm_neumf``: the two-tower top-100 re-scored by the NeuMF re-ranker.

Tuning, the same way as the peers': every choice is made on the validation cases only. A
grid point is trained on ``split.train`` (each user's items before the validation item)
and scored on the validation cases; the GRU and the towers stop early on validation
NDCG@10 (full) and keep their best epoch. The chosen setting is then trained again from
scratch, for the chosen number of epochs, on the training sequences plus each user's
validation item (everything before the test item), and that model scores the test cases,
as the peers are refit on the same sequences. One difference, in the peers' favour: the
peers pick a setting per protocol (each by its own validation NDCG@10); ours pick one
setting by validation NDCG@10 (full) for both protocols. The DSSM is tuned on top of the
chosen encoder, and the re-ranker on top of the chosen towers (no grid of its own).

``train_s_<model>`` is the seconds of that model's search plus refit: for ``dssm`` only
the towers' stage, for ``dssm_neumf`` only the re-ranker's (each builds on the stage
before). Seeds are fixed; SGNS runs on one worker so it is exactly reproducible; torch on
``--threads`` threads (2). On a machine shared with other busy processes pass ``--threads 1``:
there two torch threads wait on each other and a GRU epoch took 20-50 s instead of 4 s.

    python -m benchmarks.recsys_ml100k --out results/recsys_ml100k.json
"""

from __future__ import annotations

import argparse
import copy
import io
import time
from dataclasses import asdict, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from benchmarks._common import Run as BenchmarkRun
from benchmarks._common import data_path
from benchmarks.recsys_data import ml100k
from benchmarks.recsys_peers import append, protocol_inputs, run_peers, score
from embeddings.sequences import Sequences
from embeddings.sgns import train_sgns
from embeddings.sgns_config import SGNSConfig
from embeddings.vocab import Vocabulary
from recsys.attributes import ItemAttributes
from recsys.config import EncoderConfig, FitConfig, NeuMFConfig, RecommenderConfig, TowerConfig
from recsys.data import LeaveOneOut
from recsys.item_knn import ItemKNN
from recsys.metrics import PROTOCOLS, Scorer, evaluate
from recsys.scorers import reranking_scorer, session_scorer
from recsys.train import train_encoder, train_reranker, train_towers

OURS = ("item2vec", "gru", "dssm", "dssm_neumf")
PEERS = ("pop", "als", "bpr")
METRICS = ("hr10", "ndcg10")
GENRES = 19

# Item2vec as the item2vec-vs-gensim benchmark trains it on ML-100K (long windows over long histories).
SGNS = SGNSConfig(
    mode="skipgram", dim=64, window=40, negative=10, sample=1e-4, epochs=80, workers=1, device="cpu", seed=0
)
KNN_GRID = [{"window": w, "decay": d} for w, d in product((1, 3, 5, 10, 20), (1.0, 0.8, 0.5))]
ENCODER = EncoderConfig(dim=SGNS.dim, hidden=SGNS.dim, dropout=0.25, temperature=0.07)
FIT = FitConfig(epochs=40, lr=3e-3, max_length=50, loss="full", patience=4)
GRU_GRID = [{"init": init} for init in (False, True)]
TOWERS = TowerConfig(dim=ENCODER.dim, attribute_dim=16, id_dropout=0.1, temperature=ENCODER.temperature)
TOWER_FIT = replace(FIT, epochs=15, lr=1e-3, patience=3)
NEUMF = NeuMFConfig(dim=64, mlp=(128, 64), dropout=0.1, epochs=2, lr=1e-3, batch_size=1024, device="cpu")


def genre_frame() -> pl.DataFrame:
    """``u.item`` (latin-1, ``|``-separated): ``item_id`` and the 19 genre flags as floats (multi-hot)."""
    path = data_path("ml-100k", "u.item")
    text = path.read_bytes().decode("latin-1")
    columns = ["item_id", "title", "release", "video_release", "url"] + [f"genre_{g}" for g in range(GENRES)]
    frame = pl.read_csv(
        io.StringIO(text), has_header=False, separator="|", new_columns=columns, quote_char=None,
        schema_overrides={"item_id": pl.Int64},
    )  # fmt: skip
    return frame.select("item_id", *[pl.col(f"genre_{g}").cast(pl.Float32) for g in range(GENRES)])


def sgns_vectors(train: Sequences, n_tokens: int, config: SGNSConfig) -> np.ndarray:
    """Item2vec input vectors ``[n_tokens, dim]`` of ``train``; items absent from it get a zero row."""
    counts = np.bincount(train.tokens, minlength=n_tokens)
    vectors = train_sgns(train, counts, config, progress=False).input_vectors.copy()
    vectors[counts == 0] = 0.0
    return vectors


def valid_ndcg(split: LeaveOneOut, max_history: int):
    """Early-stopping callback: validation NDCG@10, full ranking without the user's history."""

    def validate(model: torch.nn.Module) -> float:
        scorer = session_scorer(model, max_history)
        cases = split.valid
        return evaluate(scorer, cases, protocol="full", ks=(10,), exclude=cases.histories)["ndcg@10"]

    return validate


class Trial:
    """One benchmark run: the split, the fixed negatives, and what each of our models scored."""

    def __init__(self, split: LeaveOneOut, vocab: Vocabulary, attributes: ItemAttributes, seed: int) -> None:
        self.split, self.vocab, self.attributes, self.seed = split, vocab, attributes, seed
        self.n_tokens = len(vocab)
        self.negatives = protocol_inputs(split, self.n_tokens - 1, seed)
        # The peers' refit sequences: each user's training items plus the validation item.
        self.train_valid = append(split.train, split.valid.users, split.valid.targets)
        self.results: dict[str, Any] = {}

    def valid(self, scorer: Scorer) -> dict[str, float]:
        return score(scorer, self.split.valid, self.negatives["valid"])

    def record(self, model: str, test: Scorer, valid: dict[str, float], params: dict, seconds: float) -> None:
        """Test metrics of the refit model, the validation metrics and setting it was chosen by."""
        tested = score(test, self.split.test, self.negatives["test"])
        self.results |= {f"{model}_{key}": value for key, value in tested.items()}
        self.results |= {f"{model}_valid_{key}": value for key, value in valid.items()}
        self.results[f"{model}_params"] = params
        self.results[f"train_s_{model}"] = seconds

    def config(self, fit: FitConfig, tower_fit: FitConfig | None = None) -> RecommenderConfig:
        return RecommenderConfig(
            encoder=ENCODER, fit=fit, tower=TOWERS, tower_fit=tower_fit or TOWER_FIT, neumf=NEUMF, device="cpu",
            seed=self.seed,
        )  # fmt: skip

    def item2vec(self) -> tuple[np.ndarray, np.ndarray]:
        """SGNS on the training sequences, the kNN query chosen on validation; refit on train + validation."""
        started = time.perf_counter()
        sgns = replace(SGNS, seed=self.seed)
        vectors = sgns_vectors(self.split.train, self.n_tokens, sgns)
        valid = [self.valid(ItemKNN(vectors, **params)) for params in KNN_GRID]
        best = max(range(len(KNN_GRID)), key=lambda i: valid[i]["full_ndcg10"])
        refit = sgns_vectors(self.train_valid, self.n_tokens, sgns)
        params = {**KNN_GRID[best], "sgns": asdict(sgns)}
        self.record("item2vec", ItemKNN(refit, **KNN_GRID[best]), valid[best], params, time.perf_counter() - started)
        return vectors, refit

    def gru(self, vectors: np.ndarray, refit_vectors: np.ndarray):
        """The encoder grid on validation (early stopping), then the chosen point refit for its best epoch count."""
        started = time.perf_counter()
        validate = valid_ndcg(self.split, FIT.max_length)
        best: tuple | None = None
        for params in GRU_GRID:
            init = torch.from_numpy(vectors) if params["init"] else None
            encoder, fit = train_encoder(
                self.split.train, self.n_tokens, self.config(FIT), init=init, validate=validate, progress=False
            )
            valid = self.valid(session_scorer(encoder, FIT.max_length))
            print(f"  gru {params}: best epoch {fit.best_epoch}, valid {valid}", flush=True)
            if best is None or valid["full_ndcg10"] > best[2]["full_ndcg10"]:
                best = (params, encoder, valid, fit.best_epoch)
        params, encoder, valid, epochs = best
        fit = replace(FIT, epochs=epochs)
        init = torch.from_numpy(refit_vectors) if params["init"] else None
        refit, _ = train_encoder(self.train_valid, self.n_tokens, self.config(fit), init=init, progress=False)
        self.record("gru", session_scorer(refit, FIT.max_length), valid, {**params, "epochs": epochs},
                    time.perf_counter() - started)  # fmt: skip
        return encoder, refit, fit

    def dssm(self, encoder, refit_encoder, fit: FitConfig):
        """Two towers over (copies of) the chosen encoders: early stopping on validation, refit for that many epochs."""
        started = time.perf_counter()
        config = self.config(fit)
        towers, tower_fit = train_towers(
            copy.deepcopy(encoder), self.split.train, config, attributes=self.attributes,
            validate=valid_ndcg(self.split, FIT.max_length), progress=False,
        )  # fmt: skip
        valid = self.valid(session_scorer(towers, FIT.max_length))
        refit_config = self.config(fit, replace(TOWER_FIT, epochs=tower_fit.best_epoch))
        refit, _ = train_towers(
            copy.deepcopy(refit_encoder), self.train_valid, refit_config, attributes=self.attributes, progress=False
        )
        self.record("dssm", session_scorer(refit, FIT.max_length), valid, {"epochs": tower_fit.best_epoch},
                    time.perf_counter() - started)  # fmt: skip
        return towers, refit, refit_config

    def dssm_neumf(self, towers, refit_towers, config: RecommenderConfig) -> None:
        """NeuMF over the towers' top candidates, trained on the training positions; refit on train + validation."""
        started = time.perf_counter()
        neumf = train_reranker(towers, self.split.train, config, progress=False)
        valid = self.valid(reranking_scorer(towers, neumf, config.candidates, FIT.max_length))
        refit = train_reranker(refit_towers, self.train_valid, config, progress=False)
        test = reranking_scorer(refit_towers, refit, config.candidates, FIT.max_length)
        self.record("dssm_neumf", test, valid, {"candidates": config.candidates}, time.perf_counter() - started)


def settings(split: LeaveOneOut, n_items: int, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "dataset": "ml-100k",
        "users": len(split.test),
        "items": n_items,
        "train_tokens": split.train.n_tokens,
        "split": "leave-one-out: last item test, second-to-last validation, time order",
        "protocols": {"full": "all items but the user's history", "sampled": "100 fixed negatives the user never had"},
        "selection": "validation cases only; ours: one setting by validation NDCG@10 (full); peers: one per protocol",
        "test_models": "each chosen setting refit from scratch on train + each user's validation item (ours and peers)",
        "seed": args.seed,
        "threads": args.threads,
        "sgns": asdict(SGNS),
        "knn_grid": KNN_GRID,
        "encoder": asdict(ENCODER),
        "fit": asdict(FIT),
        "gru_grid": GRU_GRID,
        "towers": asdict(TOWERS),
        "tower_fit": asdict(TOWER_FIT),
        "item_attributes": "19 genre flags of u.item (numeric, standardised)",
        "neumf": asdict(NEUMF),
    }


def bar(results: dict[str, Any]) -> dict[str, Any]:
    """Which of our models beat both ALS and BPR on HR@10 and NDCG@10 under both protocols."""
    keys = [f"{protocol}_{metric}" for protocol in PROTOCOLS for metric in METRICS]
    beats = {m: all(results[f"{m}_{k}"] > max(results[f"als_{k}"], results[f"bpr_{k}"]) for k in keys) for m in OURS}
    return {"bar_models": [m for m in OURS if beats[m]], "bar_met": any(beats.values())}


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'model':11}{'full HR@10':>11}{'NDCG@10':>9}{'sampled HR@10':>15}{'NDCG@10':>9}{'train s':>9}")
    for model in PEERS + OURS:
        row = [results[f"{model}_{protocol}_{metric}"] for protocol in PROTOCOLS for metric in METRICS]
        seconds = results[f"train_s_{model}"]
        print(f"{model:11}{row[0]:>11.4f}{row[1]:>9.4f}{row[2]:>15.4f}{row[3]:>9.4f}{seconds:>9.1f}")
    print(f"bar (beats ALS and BPR on all four): {results['bar_models'] or 'not met'}; wall {results['wall_s']:.0f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    bench = BenchmarkRun()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    interactions, split = ml100k()
    attributes = ItemAttributes.from_frame(genre_frame(), "item_id", interactions.vocab.keys, "u.item")
    print(f"ML-100K leave-one-out: {len(split.test)} users, {interactions.n_items} items", flush=True)
    results: dict[str, Any] = run_peers(split, interactions.n_items, args.seed)
    print(f"peers done: {time.perf_counter() - started:.0f} s", flush=True)
    trial = Trial(split, interactions.vocab, attributes, args.seed)
    vectors, refit_vectors = trial.item2vec()
    print(f"item2vec done: {time.perf_counter() - started:.0f} s", flush=True)
    encoder, refit_encoder, fit = trial.gru(vectors, refit_vectors)
    print(f"gru done: {time.perf_counter() - started:.0f} s", flush=True)
    towers, refit_towers, config = trial.dssm(encoder, refit_encoder, fit)
    print(f"dssm done: {time.perf_counter() - started:.0f} s", flush=True)
    trial.dssm_neumf(towers, refit_towers, config)
    results |= trial.results
    results["wall_s"] = time.perf_counter() - started
    results |= bar(results)
    results["settings"] = settings(split, interactions.n_items, args)
    print_table(results)
    if args.out is not None:
        bench.write(args.out, results)


if __name__ == "__main__":
    main()

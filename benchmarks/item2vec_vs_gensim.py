"""Item2vec: seqemb's SGNS trainer against gensim ``Word2Vec``, same data, same settings.

Both models train skip-gram (or CBOW) with negative sampling on the same item
sequences with the same dim, window, negative, epochs, sample, ns_exponent,
alpha schedule, min_count (1) and worker count (2), in the same run, seed by seed
back to back, and are scored by the same code. Settings are chosen per dataset
(``DEFAULTS``; flags override them for every dataset) and shared by both models.

- Diginetica (SR-GNN preprocessing): train on ``train_sessions.txt.gz``; for each
  case of ``test_prefix_target.tsv`` the query is the mean of the unit vectors of
  the prefix's last ``--query-items`` items; all items are ranked by cosine to it;
  HR@20 and MRR@20 of the target.
- MovieLens-100K: each user's ratings sorted by (timestamp, file order); the last
  one is held out and the rest is the training sequence. The query is the mean of
  the unit vectors of the user's last ``--query-items`` training items; every item
  the user rated in training is excluded; HR@10 and NDCG@10 of the held-out item.

Speed is training throughput measured the same way for both: raw training tokens
× epochs / wall seconds of the training call (our vocabulary counts and gensim's
``build_vocab`` are outside the timing; our kernel is compiled before timing).
``*_items_per_s`` pools every run (Σ tokens × epochs / Σ seconds); per-dataset
keys and the min/max over seeds give the spread. Quality keys are means over
seeds with ``*_std`` beside them.

    python -m benchmarks.item2vec_vs_gensim --out results/item2vec.json

MovieLens-100K scores only 943 held-out items, so its seed-to-seed spread is
several times Diginetica's; it is run over more seeds (``--ml100k-seeds``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from benchmarks._common import DATA, Run
from embeddings.sequences import Sequences
from embeddings.sgns import train_sgns
from embeddings.sgns_config import SGNSConfig


@dataclass
class Corpus:
    """Training sequences over indices ``1..V-1`` (0 reserved) and the evaluation queries.

    ``item_ids[i]`` is the dataset's id of index ``i``; ``sentences`` is the same
    training data as lists of id strings (gensim's input). Queries are CSR
    (``query_offsets``, ``query_items``) of indices; ``targets`` one index per
    query (0 when the item never occurs in training); ``exclude_*`` is CSR of
    indices removed from each query's ranking (empty rows when nothing is removed).
    """

    name: str
    sequences: Sequences
    counts: np.ndarray
    item_ids: np.ndarray
    sentences: list[list[str]]
    query_offsets: np.ndarray
    query_items: np.ndarray
    targets: np.ndarray
    exclude_offsets: np.ndarray
    exclude_items: np.ndarray
    k: int


@dataclass
class Settings:
    """Training settings shared by both models, and how many history items form a query."""

    mode: str
    dim: int
    window: int
    negative: int
    epochs: int
    sample: float
    ns_exponent: float
    alpha: float
    min_alpha: float
    min_count: int
    workers: int
    query_items: int


def _index(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense indices 1..V-1 for ids (sorted order) and the id of each index (index 0 -> -1)."""
    item_ids, inverse = np.unique(ids, return_inverse=True)
    return inverse.astype(np.int32) + 1, np.concatenate([[-1], item_ids])


def _lookup(item_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id, 0 when the id is not in ``item_ids``."""
    known = item_ids[1:]
    pos = np.clip(np.searchsorted(known, ids), 0, known.size - 1)
    return np.where(known[pos] == ids, pos + 1, 0).astype(np.int32)


def _tail_csr(offsets: np.ndarray, tokens: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``n`` tokens of every CSR row."""
    lengths = np.minimum(np.diff(offsets), n)
    out_offsets = np.concatenate([[0], np.cumsum(lengths)])
    starts = offsets[1:] - lengths
    rel = np.arange(out_offsets[-1]) - np.repeat(out_offsets[:-1], lengths)
    return out_offsets, tokens[np.repeat(starts, lengths) + rel]


def load_diginetica(root: Path, query_items: int) -> Corpus:
    train = pl.read_csv(
        root / "train_sessions.txt.gz", has_header=False, new_columns=["s"], separator="\t",
        schema_overrides={"s": pl.String},
    ).select(pl.col("s").str.split(" "))  # fmt: skip
    lengths = train.select(pl.col("s").list.len()).to_series().to_numpy().astype(np.int64)
    raw = train.select(pl.col("s").explode().cast(pl.Int64)).to_series().to_numpy()
    tokens, item_ids = _index(raw)
    test = pl.read_csv(
        root / "test_prefix_target.tsv", has_header=False, new_columns=["prefix", "target"], separator="\t",
        schema_overrides={"prefix": pl.String, "target": pl.Int64},
    ).with_columns(pl.col("prefix").str.split(" ").list.eval(pl.element().cast(pl.Int64)))  # fmt: skip
    prefix_lengths = test.select(pl.col("prefix").list.len()).to_series().to_numpy().astype(np.int64)
    prefix = _lookup(item_ids, test.select(pl.col("prefix").explode()).to_series().to_numpy())
    q_offsets, q_items = _tail_csr(np.concatenate([[0], np.cumsum(prefix_lengths)]), prefix, query_items)
    n_queries = prefix_lengths.size
    return Corpus(
        name="diginetica",
        sequences=Sequences.from_lengths(lengths, tokens),
        counts=np.bincount(tokens, minlength=item_ids.size),
        item_ids=item_ids,
        sentences=train.to_series().to_list(),
        query_offsets=q_offsets,
        query_items=q_items,
        targets=_lookup(item_ids, test.select("target").to_series().to_numpy()),
        exclude_offsets=np.zeros(n_queries + 1, dtype=np.int64),
        exclude_items=np.zeros(0, dtype=np.int32),
        k=20,
    )


def load_ml100k(root: Path, query_items: int) -> Corpus:
    ratings = pl.read_csv(
        root / "u.data", has_header=False, separator="\t", new_columns=["user", "item", "rating", "ts"],
    ).with_row_index("row")  # fmt: skip
    user, item, ts, row = (ratings[c].to_numpy() for c in ("user", "item", "ts", "row"))
    order = np.lexsort((row, ts, user))
    user, item = user[order], item[order]
    last = np.flatnonzero(np.r_[user[1:] != user[:-1], True])
    is_train = np.ones(user.size, dtype=bool)
    is_train[last] = False
    tokens, item_ids = _index(item[is_train])
    lengths = np.bincount(np.unique(user, return_inverse=True)[1][is_train]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    q_offsets, q_items = _tail_csr(offsets, tokens, query_items)
    sentences = (
        pl.DataFrame({"user": user[is_train], "item": item[is_train].astype(str)})
        .group_by("user", maintain_order=True)
        .agg("item")["item"]
        .to_list()
    )
    return Corpus(
        name="ml100k",
        sequences=Sequences(offsets, tokens),
        counts=np.bincount(tokens, minlength=item_ids.size),
        item_ids=item_ids,
        sentences=sentences,
        query_offsets=q_offsets,
        query_items=q_items,
        targets=_lookup(item_ids, item[last]),
        exclude_offsets=offsets,
        exclude_items=tokens,
        k=10,
    )


def target_ranks(vectors: np.ndarray, corpus: Corpus, batch: int = 2048) -> np.ndarray:
    """1-based rank of each query's target among all items by cosine: 1 + the number of items that score
    strictly higher (an item tied with the target does not count against it).

    Targets never seen in training get rank ``V`` (a miss). Index 0 and each
    query's excluded items are never ranked.
    """
    emb = torch.from_numpy(vectors).float()
    emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
    emb[0] = 0.0
    n_queries = corpus.targets.size
    q_lengths = torch.from_numpy(np.diff(corpus.query_offsets))
    q_rows = torch.repeat_interleave(torch.arange(n_queries), q_lengths)
    queries = torch.zeros(n_queries, emb.shape[1]).index_add_(0, q_rows, emb[torch.from_numpy(corpus.query_items)])
    queries /= queries.norm(dim=1, keepdim=True).clamp_min(1e-12)
    ex_rows = torch.repeat_interleave(torch.arange(n_queries), torch.from_numpy(np.diff(corpus.exclude_offsets)))
    ex_items = torch.from_numpy(corpus.exclude_items).long()
    targets = torch.from_numpy(corpus.targets).long()
    ranks = torch.empty(n_queries, dtype=torch.long)
    for lo in range(0, n_queries, batch):
        hi = min(lo + batch, n_queries)
        scores = queries[lo:hi] @ emb.T
        scores[:, 0] = -torch.inf
        sel = (ex_rows >= lo) & (ex_rows < hi)
        scores[ex_rows[sel] - lo, ex_items[sel]] = -torch.inf
        target_scores = scores.gather(1, targets[lo:hi, None])
        ranks[lo:hi] = 1 + (scores > target_scores).sum(1)
    ranks[targets == 0] = vectors.shape[0]
    return ranks.numpy()


def metrics(ranks: np.ndarray, k: int) -> dict[str, float]:
    hit = ranks <= k
    return {
        f"hr{k}": float(hit.mean()),
        f"mrr{k}": float(np.where(hit, 1.0 / ranks, 0.0).mean()),
        f"ndcg{k}": float(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean()),
    }


def train_ours(corpus: Corpus, s: Settings, seed: int) -> tuple[np.ndarray, float]:
    config = SGNSConfig(
        mode=s.mode, dim=s.dim, window=s.window, negative=s.negative, sample=s.sample, epochs=s.epochs,
        alpha=s.alpha, min_alpha=s.min_alpha, ns_exponent=s.ns_exponent, seed=seed, workers=s.workers,
        device="cpu",
    )  # fmt: skip
    start = time.perf_counter()
    result = train_sgns(corpus.sequences, corpus.counts, config, progress=False)
    return result.input_vectors, time.perf_counter() - start


def train_gensim(corpus: Corpus, s: Settings, seed: int) -> tuple[np.ndarray, float]:
    from gensim.models import Word2Vec

    model = Word2Vec(
        vector_size=s.dim, window=s.window, negative=s.negative, hs=0, sg=int(s.mode == "skipgram"),
        sample=s.sample, epochs=s.epochs, alpha=s.alpha, min_alpha=s.min_alpha, ns_exponent=s.ns_exponent,
        min_count=s.min_count, workers=s.workers, seed=seed,
    )  # fmt: skip
    model.build_vocab(corpus.sentences)
    start = time.perf_counter()
    model.train(corpus.sentences, total_examples=len(corpus.sentences), epochs=s.epochs)
    seconds = time.perf_counter() - start
    vectors = np.zeros((corpus.item_ids.size, s.dim), dtype=np.float32)
    vectors[1:] = model.wv[corpus.item_ids[1:].astype(str).tolist()]
    return vectors, seconds


def warm_up() -> None:
    """Load (or compile) the numba kernel so its one-off cost stays out of the timings."""
    seqs = Sequences.from_lists([[1, 2, 3, 1, 2, 3]])
    for mode in ("skipgram", "cbow"):
        train_sgns(seqs, np.array([0, 2, 2, 2]), SGNSConfig(mode=mode, dim=8, epochs=1, workers=1), progress=False)


def run(corpora: list[Corpus], settings: dict[str, Settings], seeds: dict[str, list[int]]) -> dict:
    """Train and score both models on every corpus and seed, ours then gensim back to back."""
    runs = []
    for corpus in corpora:
        s = settings[corpus.name]
        for seed in seeds[corpus.name]:
            for model, train in (("ours", train_ours), ("gensim", train_gensim)):
                vectors, seconds = train(corpus, s, seed)
                row = {
                    "dataset": corpus.name,
                    "model": model,
                    "seed": seed,
                    "seconds": seconds,
                    "items": corpus.sequences.n_tokens * s.epochs,
                    "items_per_s": corpus.sequences.n_tokens * s.epochs / seconds,
                    **metrics(target_ranks(vectors, corpus), corpus.k),
                }
                runs.append(row)
                print(
                    f"{corpus.name:>10} {model:>6} seed {seed}: {row['items_per_s']:>12,.0f} items/s  "
                    + "  ".join(f"{key} {row[key]:.4f}" for key in row if key[:2] in ("hr", "mr", "nd")),
                    flush=True,
                )
    return summarise(runs, {c.name: asdict(settings[c.name]) for c in corpora}, seeds)


QUALITY = {"diginetica": [("digi_hr20", "hr20"), ("digi_mrr20", "mrr20"), ("digi_ndcg20", "ndcg20")],
           "ml100k": [("ml100k_hr10", "hr10"), ("ml100k_mrr10", "mrr10"), ("ml100k_ndcg10", "ndcg10")]}  # fmt: skip
SHORT = {"diginetica": "digi", "ml100k": "ml100k"}


def summarise(runs: list[dict], settings: dict, seeds: dict[str, list[int]]) -> dict:
    """Per-model means (and std over seeds) of every metric; speed pooled as Σ items / Σ seconds."""
    frame = pl.DataFrame(runs)
    summary: dict = {"settings": settings, "seeds": seeds, "workers": next(iter(settings.values()))["workers"]}
    for model in ("ours", "gensim"):
        mine = frame.filter(pl.col("model") == model)
        summary[f"{model}_items_per_s"] = mine["items"].sum() / mine["seconds"].sum()
        for name in settings:
            part = mine.filter(pl.col("dataset") == name)
            summary[f"{model}_{SHORT[name]}_items_per_s"] = part["items"].sum() / part["seconds"].sum()
            summary[f"{model}_{SHORT[name]}_items_per_s_min"] = part["items_per_s"].min()
            summary[f"{model}_{SHORT[name]}_items_per_s_max"] = part["items_per_s"].max()
            for key, column in QUALITY[name]:
                summary[f"{model}_{key}"] = part[column].mean()
                summary[f"{model}_{key}_std"] = part[column].std() if part.height > 1 else 0.0
    for name in settings:
        paired = frame.filter(pl.col("dataset") == name).pivot(
            "model", index="seed", values=[c for _, c in QUALITY[name]]
        )
        for key, column in QUALITY[name]:
            diff = paired[f"{column}_ours"] - paired[f"{column}_gensim"]
            summary[f"diff_{key}"] = diff.mean()
            summary[f"diff_{key}_se"] = diff.std() / np.sqrt(diff.len()) if diff.len() > 1 else 0.0
    summary["runs"] = runs
    return summary


def print_table(summary: dict) -> None:
    keys = ["items_per_s"] + [f"{SHORT[n]}_items_per_s" for n in summary["settings"]]
    keys += [key for n in summary["settings"] for key, _ in QUALITY[n]]
    print(f"\n{'metric (mean over seeds)':<24}{'ours':>12}{'± std':>8}{'gensim':>12}{'± std':>8}{'ours/gensim':>13}"
          f"{'paired diff ± se':>22}")  # fmt: skip
    for key in keys:
        ours, theirs = summary[f"ours_{key}"], summary[f"gensim_{key}"]
        if "per_s" in key:
            print(f"{key:<24}{ours:>12,.0f}{'':>8}{theirs:>12,.0f}{'':>8}{ours / theirs:>13.3f}")
        else:
            spread = summary[f"ours_{key}_std"], summary[f"gensim_{key}_std"]
            diff = f"{summary[f'diff_{key}']:+.4f} ± {summary[f'diff_{key}_se']:.4f}"
            print(
                f"{key:<24}{ours:>12.4f}{spread[0]:>8.4f}{theirs:>12.4f}{spread[1]:>8.4f}{ours / theirs:>13.3f}{diff:>22}"
            )


# Item sequences favour far stronger subsampling of popular items than text does, and the two
# corpora differ (short sessions over 43k items vs long histories over 1.7k films), so each gets
# its own settings; both models always share them.
DEFAULTS = {
    "diginetica": Settings(mode="skipgram", dim=100, window=5, negative=10, epochs=10, sample=1e-5,
                           ns_exponent=-1.0, alpha=0.025, min_alpha=1e-4, min_count=1, workers=2, query_items=3),
    "ml100k": Settings(mode="skipgram", dim=100, window=40, negative=10, epochs=80, sample=1e-4,
                       ns_exponent=0.75, alpha=0.025, min_alpha=1e-4, min_count=1, workers=2, query_items=3),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding diginetica/ and ml-100k/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Diginetica seeds")
    parser.add_argument("--ml100k-seeds", type=int, nargs="+", default=list(range(10)), help="MovieLens seeds")
    parser.add_argument("--datasets", nargs="+", choices=list(DEFAULTS), default=list(DEFAULTS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=["skipgram", "cbow"], help="override for every dataset")
    for name, kind in (("dim", int), ("window", int), ("negative", int), ("epochs", int), ("sample", float),
                       ("ns-exponent", float), ("query-items", int)):  # fmt: skip
        parser.add_argument(f"--{name}", type=kind, help="override for every dataset")
    args = parser.parse_args()
    run = Run()

    torch.set_num_threads(args.workers)
    overrides = {"workers": args.workers}
    for field in ("mode", "dim", "window", "negative", "epochs", "sample", "ns_exponent", "query_items"):
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    settings = {name: replace(DEFAULTS[name], **overrides) for name in args.datasets}
    loaders = {"diginetica": (load_diginetica, "diginetica"), "ml100k": (load_ml100k, "ml-100k")}
    corpora = [loaders[n][0](args.data / loaders[n][1], settings[n].query_items) for n in args.datasets]
    warm_up()
    summary = run(corpora, settings, {"diginetica": args.seeds, "ml100k": args.ml100k_seeds})
    print_table(summary)
    run.write(args.out, summary)


if __name__ == "__main__":
    main()

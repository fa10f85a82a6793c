"""The metric and split code the benchmarks report with, on small hand-made cases with exact answers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmarks._common import Run
from benchmarks.fraud_handbook.data import START, card_precision_top_k, handbook_split, train_test
from benchmarks.item2vec_vs_gensim import Corpus, metrics, target_ranks
from embeddings.sequences import Sequences

# (day, customer, score, fraud): card 1 is compromised on days 10 and 11, card 6 ties card 7 on day 12.
CARD_DAYS = [
    (10, 1, 0.9, 1), (10, 1, 0.1, 0), (10, 2, 0.8, 0), (10, 3, 0.7, 1), (10, 4, 0.2, 1),
    (11, 1, 0.95, 1), (11, 3, 0.6, 1), (11, 4, 0.5, 0), (11, 5, 0.4, 1),
    (12, 6, 0.3, 0), (12, 7, 0.3, 1), (12, 8, 0.1, 1),
]  # fmt: skip


def _cards() -> tuple[pl.DataFrame, np.ndarray]:
    frame = pl.DataFrame(CARD_DAYS, schema=["TX_TIME_DAYS", "CUSTOMER_ID", "score", "TX_FRAUD"], orient="row")
    return frame, frame["score"].to_numpy()


def test_card_precision_at_k_scores_cards_per_day_and_drops_detected_cards():
    test, scores = _cards()
    # Day 10: top 2 = cards 1 (fraud, its max score 0.9), 2 -> 1/2. Day 11 without the detected card 1:
    # cards 3 (fraud), 4 -> 1/2. Day 12: 6 and 7 tie at 0.3, the smaller id first; both are top 2 -> 1/2.
    assert card_precision_top_k(test, scores, k=2) == pytest.approx(0.5, abs=0)
    # Without removal, day 11's top 2 are cards 1 and 3, both compromised.
    assert card_precision_top_k(test, scores, k=2, remove_detected=False) == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    # k larger than the cards of a day: the share is still of k.
    assert card_precision_top_k(test, scores, k=4, remove_detected=False) == pytest.approx((3 / 4 + 3 / 4 + 2 / 4) / 3)


def test_the_handbook_split_and_its_removal_of_known_compromised_cards():
    split = handbook_split(START + dt.timedelta(days=10))
    assert split.describe() == {"train": "2018-04-11 .. 2018-04-17", "delay": "2018-04-18 .. 2018-04-24",
                                "test": "2018-04-25 .. 2018-05-01"}  # fmt: skip
    rows = [  # (transaction, day, customer, fraud); training days 10..16, delay 17..23, test 24..30
        (0, 9, 4, 0),
        (1, 12, 1, 1),
        (2, 14, 4, 0),
        (3, 25, 1, 0),  # 1: compromised in training
        (4, 18, 2, 1),
        (5, 25, 2, 0),
        (6, 26, 2, 0),
        (7, 30, 2, 0),  # 2: fraud on delay day 18, known from 26
        (8, 24, 3, 1),
        (9, 28, 3, 0),  # 3: fraud on test day 24, known from 32: both kept
        (10, 27, 4, 0),
        (11, 31, 4, 0),  # 31 is after the test week
        (12, 5, 5, 1),
        (13, 25, 5, 0),  # a fraud before the training week is not counted as known
        (14, 17, 6, 1),
        (15, 24, 6, 0),
        (16, 25, 6, 0),  # first delay day: known from test day 25
    ]
    tx = pl.DataFrame(rows, schema=["TRANSACTION_ID", "TX_TIME_DAYS", "CUSTOMER_ID", "TX_FRAUD"], orient="row")
    train, test = train_test(tx, split)
    assert train["TRANSACTION_ID"].to_list() == [1, 2]
    assert test["TRANSACTION_ID"].to_list() == [5, 8, 9, 10, 13, 15]


def _corpus() -> Corpus:
    """Items 1..4 in 2-D: 1 = east, 2 = north, 3 = north-east, 4 = west; three queries."""
    return Corpus(
        name="hand-made",
        sequences=Sequences.from_lists([[1, 2]]),
        counts=np.array([0, 1, 1, 1, 1]),
        item_ids=np.array(["pad", "e", "n", "ne", "w"]),
        sentences=[["e", "n"]],
        query_offsets=np.array([0, 1, 2, 3]),
        query_items=np.array([1, 2, 3]),
        targets=np.array([3, 1, 0]),  # the third target never occurs in training
        exclude_offsets=np.array([0, 1, 1, 1]),
        exclude_items=np.array([1]),  # the first query's own item is not a candidate
        k=2,
    )


def test_target_ranks_exclude_history_count_ties_for_the_target_and_miss_unseen_targets():
    vectors = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32)
    ranks = target_ranks(vectors, _corpus())
    # Query 1 (east, east excluded): north-east is the best candidate. Query 2 (north): north and
    # north-east score higher than east; west ties with east (cosine 0) and does not count against it.
    assert ranks.tolist() == [1, 3, 5]
    assert metrics(ranks, 2) == pytest.approx({"hr2": 1 / 3, "mrr2": 1 / 3, "ndcg2": 1 / 3})
    assert metrics(ranks, 3) == pytest.approx({"hr3": 2 / 3, "mrr3": (1 + 1 / 3) / 3, "ndcg3": (1 + 1 / 2) / 3})


def test_every_result_carries_the_envelope(tmp_path):
    run = Run()
    with run.stage("work"):
        pass
    run.write(tmp_path / "out" / "result.json", {"metric": 1.0})
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["metric"] == 1.0
    envelope = written["envelope"]
    for key in ("git", "packages", "cpu", "threads", "load_average", "wall_seconds", "stages_seconds"):
        assert key in envelope
    assert set(envelope["load_average"]) == {"start", "end"} and len(envelope["load_average"]["start"]) == 3
    assert envelope["stages_seconds"]["work"] >= 0 and "numpy" in envelope["packages"]
    assert len(envelope["git"]["commit"]) == 40


def test_every_benchmark_writes_through_the_envelope():
    """A benchmark with a ``main`` writes its JSON with ``Run.write``, never by hand."""
    root = Path(__file__).resolve().parents[2] / "benchmarks"
    mains = [p for p in root.rglob("*.py") if "def main(" in p.read_text()]
    assert len(mains) >= 10
    for path in mains:
        text = path.read_text()
        assert "Run()" in text and ".write(args.out, " in text, path.name
        assert "write_text(json.dumps(" not in text and "json.dump(" not in text, path.name

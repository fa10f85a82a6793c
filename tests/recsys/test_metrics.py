from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from embeddings.data import EventSchema
from embeddings.errors import ConfigError, DataError
from embeddings.sequences import Sequences
from embeddings.synthetic import WorldConfig, make_world
from recsys.data import EvalCases, leave_one_out, read_interactions
from recsys.metrics import evaluate, sample_negatives
from recsys.popularity import Popularity

N_ITEMS = 50


def _cases(n: int = 40, seed: int = 0) -> EvalCases:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 6, n)
    histories = Sequences.from_lengths(lengths, rng.integers(1, N_ITEMS + 1, lengths.sum()))
    return EvalCases(histories, rng.integers(1, N_ITEMS + 1, n), np.arange(n))


def _planted(cases: EvalCases, above: int):
    """A scorer that puts exactly ``above`` items (the ones after the target, cyclically) over the target."""

    def scorer(histories: Sequences, users: np.ndarray) -> np.ndarray:
        targets = cases.targets[users]
        scores = np.zeros((len(users), N_ITEMS + 1), dtype=np.float32)
        rows = np.arange(len(users))
        scores[rows, targets] = 1.0
        for j in range(1, above + 1):
            scores[rows, (targets - 1 + j) % N_ITEMS + 1] = 2.0 + j
        return scores

    return scorer


def test_oracle_scores_perfectly_under_both_protocols():
    cases = _cases()
    negatives = sample_negatives(cases, N_ITEMS, cases.histories, n=20)
    oracle = _planted(cases, above=0)
    for result in (evaluate(oracle, cases), evaluate(oracle, cases, protocol="sampled", negatives=negatives)):
        assert {k: v for k, v in result.items() if k != "cases"} == dict.fromkeys(
            ["hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "mrr@20"], 1.0
        )
        assert result["cases"] == 40


def test_known_rank_gives_textbook_values_and_exclusion_lifts_it():
    cases = _cases()
    result = evaluate(_planted(cases, above=3), cases, ks=(3, 10), batch_size=7)
    assert result["hr@3"] == 0.0 and result["hr@10"] == 1.0
    assert result["ndcg@10"] == pytest.approx(1 / math.log2(5))
    assert result["mrr@10"] == pytest.approx(1 / 4)
    # Excluding the three items above the target (and the target itself, which stays) ranks it first.
    above = (cases.targets[:, None] - 1 + np.arange(4)) % N_ITEMS + 1
    exclude = Sequences.from_lengths(np.full(len(cases), 4), above.ravel())
    assert evaluate(_planted(cases, above=3), cases, ks=(1,), exclude=exclude)["hr@1"] == 1.0


def test_ties_are_broken_at_random_in_expectation_so_constant_scores_rank_nothing():
    cases = _cases()

    def constant(histories, users):
        return torch.zeros(len(users), N_ITEMS + 1)

    assert evaluate(constant, cases, ks=(10,))["hr@10"] == pytest.approx(10 / N_ITEMS)
    # Two items excluded per case (never the target): 10 of the 48 left.
    others = np.stack([cases.targets % N_ITEMS + 1, (cases.targets + 1) % N_ITEMS + 1], axis=1)
    exclude = Sequences.from_lengths(np.full(len(cases), 2), others.ravel())
    assert evaluate(constant, cases, ks=(10,), exclude=exclude)["hr@10"] == pytest.approx(10 / 48)
    negatives = sample_negatives(cases, N_ITEMS, cases.histories, n=19)
    sampled = evaluate(constant, cases, protocol="sampled", ks=(5,), negatives=negatives)
    assert sampled["hr@5"] == pytest.approx(5 / 20)
    assert sampled["mrr@5"] == pytest.approx(sum(1 / r for r in range(1, 6)) / 20)


def test_numpy_and_torch_scorers_and_batch_sizes_agree():
    cases = _cases()
    table = np.random.default_rng(1).normal(size=(len(cases), N_ITEMS + 1)).astype(np.float32)
    a = evaluate(lambda h, u: table[u], cases, exclude=cases.histories, batch_size=1024)
    b = evaluate(lambda h, u: torch.from_numpy(table[u]).double(), cases, exclude=cases.histories, batch_size=3)
    assert a == pytest.approx(b)


def test_sample_negatives_avoid_the_users_items_and_repeat_nothing():
    cases = _cases(200)
    negatives = sample_negatives(cases, N_ITEMS, cases.histories, n=40, seed=3)
    assert negatives.shape == (200, 40) and negatives.min() >= 1 and negatives.max() <= N_ITEMS
    for i in range(len(cases)):
        owned = set(cases.histories[i].tolist()) | {int(cases.targets[i])}
        assert not owned & set(negatives[i].tolist())
        assert len(set(negatives[i].tolist())) == 40
    np.testing.assert_array_equal(negatives, sample_negatives(cases, N_ITEMS, cases.histories, n=40, seed=3))
    with pytest.raises(ConfigError, match="items to sample from"):
        sample_negatives(cases, N_ITEMS, cases.histories, n=N_ITEMS)


def test_popularity_finds_the_dominant_item():
    train = Sequences.from_lists([[7, 1], [7, 2], [7, 3, 7], [2]])
    pop = Popularity(train, n_items=9)
    tokens, counts = pop.top(3)
    assert tokens.tolist() == [7, 2, 1] and counts.tolist() == [4, 2, 1]
    assert pop.top(2, exclude_tokens=np.array([7, 1]))[0].tolist() == [2, 3]
    cases = EvalCases(Sequences.from_lists([[1], [2]]), np.array([7, 7]), np.array([0, 1]))
    assert evaluate(pop, cases, ks=(1,))["hr@1"] == 1.0


def test_a_scorer_that_knows_the_planted_tastes_beats_popularity():
    world = make_world(WorldConfig(seed=2).scaled(0.2))
    interactions = read_interactions(world.events, EventSchema(entity="user_id", item="item_id", timestamp="ts"))
    split = leave_one_out(interactions.sequences)
    n = interactions.n_items
    cluster_of = np.zeros(n + 1, dtype=np.int64)
    cluster_of[interactions.vocab.encode(world.items["item_id"])] = world.items["cluster"].to_numpy()
    pop = Popularity(split.train, n)

    def taste(histories: Sequences, users: np.ndarray) -> np.ndarray:
        """Popularity within the clusters of the user's history."""
        seen = np.zeros((len(histories), cluster_of.max() + 1))
        np.add.at(seen, (np.repeat(np.arange(len(histories)), histories.lengths), cluster_of[histories.tokens]), 1)
        return (seen[:, cluster_of] * 1e6 + pop.scores).astype(np.float32)

    negatives = sample_negatives(split.test, n, split.test.histories, seed=0)
    for protocol, kwargs in (("full", {"exclude": split.test.histories}), ("sampled", {"negatives": negatives})):
        base = evaluate(pop, split.test, protocol=protocol, **kwargs)
        better = evaluate(taste, split.test, protocol=protocol, **kwargs)
        assert better["hr@10"] > 1.5 * base["hr@10"], protocol


def test_bad_calls_raise_one_line_errors():
    cases = _cases()
    scorer = _planted(cases, above=0)
    with pytest.raises(ConfigError, match="protocol must be"):
        evaluate(scorer, cases, protocol="topk")
    with pytest.raises(ConfigError, match="needs negatives"):
        evaluate(scorer, cases, protocol="sampled")
    with pytest.raises(ConfigError, match="k must be an integer >= 1, got 0"):
        evaluate(scorer, cases, ks=(0,))
    with pytest.raises(ConfigError, match="align"):
        evaluate(scorer, cases, exclude=Sequences.from_lists([[1]]))
    with pytest.raises(DataError, match="NaN"):
        evaluate(lambda h, u: np.full((len(u), N_ITEMS + 1), np.nan, dtype=np.float32), cases)
    with pytest.raises(DataError, match="beyond"):
        evaluate(lambda h, u: np.zeros((len(u), 10), dtype=np.float32), cases)

"""NeuMF re-ranker on planted clusters: 200 items in 4 clusters, sessions point at one cluster."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embeddings.errors import ConfigError, DataError
from recsys.config import NeuMFConfig
from recsys.neumf import NeuMF, rerank, train_neumf

N_ITEMS, N_CLUSTERS, SESSION_DIM, C = 200, 4, 16, 20
CONFIG = NeuMFConfig(dim=16, mlp=(32, 16), epochs=6, batch_size=128, lr=1e-2, device="cpu")


def planted(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sessions near their cluster's direction; candidates = the target (same cluster, random slot) + 19 others.

    Item token t (1..200) belongs to cluster (t - 1) % 4; the 19 other candidates come from the other clusters.
    Returns sessions [n, 16], candidates [n, 20], targets [n].
    """
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(99).normal(size=(N_CLUSTERS, SESSION_DIM))  # the same in every split
    cluster = rng.integers(0, N_CLUSTERS, n)
    sessions = directions[cluster] + 0.3 * rng.normal(size=(n, SESSION_DIM))
    targets = 1 + cluster + N_CLUSTERS * rng.integers(0, N_ITEMS // N_CLUSTERS, n)
    other = (cluster[:, None] + rng.integers(1, N_CLUSTERS, (n, C - 1))) % N_CLUSTERS
    negatives = 1 + other + N_CLUSTERS * rng.integers(0, N_ITEMS // N_CLUSTERS, (n, C - 1))
    candidates = np.concatenate([negatives, targets[:, None]], axis=1)
    candidates = np.take_along_axis(candidates, rng.permuted(np.tile(np.arange(C), (n, 1)), axis=1), axis=1)
    return torch.tensor(sessions, dtype=torch.float32), torch.tensor(candidates), torch.tensor(targets)


def hit_at_1(logits: torch.Tensor, candidates: torch.Tensor, targets: torch.Tensor) -> float:
    return float((candidates.gather(1, logits.argmax(1, keepdim=True)).squeeze(1) == targets).float().mean())


@pytest.fixture(scope="module")
def trained():
    sessions, candidates, targets = planted(1500, seed=0)
    model = train_neumf(sessions, candidates, torch.zeros(candidates.shape), targets, CONFIG, progress=False)
    return model, planted(500, seed=1)


def test_learns_planted_clusters(trained):
    model, (sessions, candidates, targets) = trained
    logits = rerank(model, sessions, candidates, torch.zeros(candidates.shape))
    assert hit_at_1(logits, candidates, targets) > 0.9  # chance: 1 / 20


def test_training_loss_goes_down(trained):
    model, (sessions, candidates, targets) = trained
    assert model.epoch_loss[-1] < 0.3 * model.epoch_loss[0]
    positions = (candidates == targets[:, None]).to(torch.uint8).argmax(1)
    held_out = F.cross_entropy(rerank(model, sessions, candidates, torch.zeros(candidates.shape)), positions)
    assert float(held_out) < 0.3 * np.log(C)  # log C: the loss of the untrained (zero-correction) re-ranker


def test_untrained_model_keeps_base_and_perfect_base_survives_training():
    """Sessions carry no signal here; the base ranks the target first. Training must not undo that."""
    sessions, candidates, targets = planted(1000, seed=2)
    sessions = torch.randn(sessions.shape, generator=torch.Generator().manual_seed(3))
    base = (candidates == targets[:, None]).float() * 4.0 + 0.5 * torch.randn(candidates.shape)
    untrained = NeuMF(N_ITEMS + 1, SESSION_DIM, CONFIG)
    assert torch.equal(rerank(untrained, sessions, candidates, base), base)
    model = train_neumf(sessions[:800], candidates[:800], base[:800], targets[:800], CONFIG, progress=False)
    assert hit_at_1(base[800:], candidates[800:], targets[800:]) > 0.95
    assert hit_at_1(rerank(model, sessions[800:], candidates[800:], base[800:]), candidates[800:], targets[800:]) > 0.9


def test_pad_candidates_never_rank_first(trained):
    model, (sessions, candidates, _) = trained
    candidates = candidates[:50].clone()
    candidates[:, ::3] = 0
    base = torch.zeros(candidates.shape)
    base[:, 0] = 1e9  # even a huge base score does not lift a PAD slot
    logits = rerank(model, sessions[:50], candidates, base)
    assert torch.isneginf(logits[candidates == 0]).all()
    assert torch.isfinite(logits[candidates != 0]).all()
    assert (candidates.gather(1, logits.argmax(1, keepdim=True)) != 0).all()


def test_state_dict_and_config_round_trip(trained, tmp_path):
    model, (sessions, candidates, _) = trained
    torch.save(model.state_dict(), tmp_path / "neumf.pt")
    (tmp_path / "config.json").write_text(json.dumps(dataclasses.asdict(model.config)))
    config = NeuMFConfig(**json.loads((tmp_path / "config.json").read_text()))
    assert config == model.config
    loaded = NeuMF(model.n_tokens, model.session_dim, config)
    loaded.load_state_dict(torch.load(tmp_path / "neumf.pt", weights_only=True))
    base = torch.randn(candidates.shape)
    assert torch.equal(rerank(loaded, sessions, candidates, base), rerank(model, sessions, candidates, base))


def test_seeded_training_is_reproducible():
    sessions, candidates, targets = planted(300, seed=4)
    base = torch.zeros(candidates.shape)
    config = dataclasses.replace(CONFIG, epochs=1)
    runs = [train_neumf(sessions, candidates, base, targets, config, progress=False) for _ in range(2)]
    assert torch.equal(rerank(runs[0], sessions, candidates, base), rerank(runs[1], sessions, candidates, base))


@pytest.mark.parametrize("width", [8, 16, 32])
def test_item_init_keeps_item_geometry(width):
    """Copied (width == dim) or projected onto principal axes, the item tables keep the init's inner products."""
    gen = torch.Generator().manual_seed(5)
    init = torch.randn(N_ITEMS + 1, 8, generator=gen) @ torch.randn(8, width, generator=gen)  # rank 8
    model = NeuMF(N_ITEMS + 1, SESSION_DIM, CONFIG, item_init=init)
    for table in (model.item_gmf.weight.detach(), model.item_mlp.weight.detach()):
        gram, expected = table @ table.T, init @ init.T
        scale = float(gram[1:].diagonal(offset=1).norm() / expected[1:].diagonal(offset=1).norm())
        torch.testing.assert_close(gram, scale * expected, rtol=1e-3, atol=1e-3 * float(gram.abs().max()))
        assert table[1:].norm(dim=1).mean() == pytest.approx(1.0, rel=1e-4)


def test_bad_input_raises_seqemb_errors(trained):
    model, (sessions, candidates, targets) = trained
    base = torch.zeros(candidates.shape)
    wrong = targets.clone()
    wrong[7] = 0
    with pytest.raises(DataError, match="row 7"):
        train_neumf(sessions, candidates, base, wrong, CONFIG, progress=False)
    with pytest.raises(DataError, match="outside"):
        rerank(model, sessions, candidates + N_ITEMS, base)
    with pytest.raises(DataError, match="width"):
        rerank(model, sessions[:, :4], candidates, base)
    with pytest.raises(ConfigError, match="mlp"):
        NeuMFConfig(mlp=())
    with pytest.raises(ConfigError, match="dropout"):
        NeuMFConfig(dropout=1.0)
    with pytest.raises(ConfigError, match="item_init"):
        NeuMF(N_ITEMS + 1, SESSION_DIM, CONFIG, item_init=torch.zeros(5, 16))

"""The DDP launch: each rank trains on its own rows of every batch, and a worker's error comes back as one line."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import torch

from embeddings import ddp
from embeddings.errors import ConfigError, DataError
from embeddings.launch import Launch


def test_the_ranks_split_every_batch_without_overlap():
    batches = [np.arange(start, start + size) for start, size in ((0, 7), (7, 2), (9, 5))]
    parts = [list(ddp.Ranks(rank, 3).parts(batches)) for rank in range(3)]
    # The batch of 2 rows is skipped by every rank, so all take the same number of steps.
    assert [len(p) for p in parts] == [2, 2, 2]
    for step, batch in enumerate(b for b in batches if len(b) >= 3):
        rows = np.concatenate([p[step] for p in parts])
        assert sorted(rows.tolist()) == batch.tolist()
    assert [b.tolist() for b in ddp.Ranks().parts(batches)] == [b.tolist() for b in batches]


def _world_and_weights(fail_on: int | None) -> tuple[int, list[float]]:
    """A DDP step in each worker; rank 0 returns the world size and its weights."""
    ranks = ddp.ranks()
    if ranks.rank == fail_on:
        raise DataError("events.csv: column 'item' row 7 (0-based data row): empty")
    torch.manual_seed(ranks.rank)  # different starting weights: DDP must broadcast rank 0's
    model = torch.nn.Linear(2, 1, bias=False)
    net = ranks.wrap(model)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])[ranks.rank :: ranks.world]
    net(x).sum().backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    weights = model.weight.detach().flatten().tolist()
    assert ranks.from_main(lambda: weights) == weights  # every rank holds rank 0's weights
    return ranks.world, weights


def test_two_workers_average_their_gradients_into_one_model():
    world, weights = ddp.launch(Launch(nproc=2), _world_and_weights, None, device=torch.device("cpu"))
    torch.manual_seed(0)
    start = torch.nn.Linear(2, 1, bias=False).weight.detach().flatten().tolist()
    # Each rank's gradient is one unit vector; DDP averages them to (0.5, 0.5).
    assert world == 2
    assert weights == pytest.approx([start[0] - 0.5, start[1] - 0.5], abs=1e-6)


def test_a_worker_error_is_raised_again_with_its_type_and_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the launcher's log folder goes
    with pytest.raises(DataError, match=r"^events.csv: column 'item' row 7 \(0-based data row\): empty$"):
        ddp.launch(Launch(nproc=2), _world_and_weights, 1, device=torch.device("cpu"))
    assert list(tmp_path.iterdir()) == []  # the error files went with the log folder


def test_several_hosts_need_the_address_of_node_0():
    with pytest.raises(ConfigError, match="rdzv_endpoint HOST:PORT"):
        Launch(nproc=1, nnodes=2)
    with pytest.raises(ConfigError, match="node_rank 2 must be below nnodes 2"):
        Launch(nnodes=2, node_rank=2, rdzv_endpoint="node0:29400")

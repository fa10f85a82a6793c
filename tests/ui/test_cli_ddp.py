"""``train-recommender --nproc`` and ``train-fraud --nproc / --nnodes``: DDP workers, one run, one model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from embeddings.store import Store
from embeddings.synthetic import WorldConfig, make_world
from fraud.model import FraudModel
from recsys.recommender import Recommender
from tests.ui.test_bad_input import invoke

SMALL_RECOMMENDER = ["--dim", "16", "--epochs", "1", "--tower-epochs", "1", "--no-rerank", "--device", "cpu"]
FRAUD_COLUMNS = ["--entity", "card_id", "--counterparty", "merchant_id", "--transaction-id", "txn_id"]


@pytest.fixture(scope="module")
def world():
    return make_world(WorldConfig(seed=0).scaled(0.1))


def test_train_recommender_on_two_workers_records_one_run(tmp_path: Path, seqemb_home: Path, world) -> None:
    events = tmp_path / "events.csv"
    world.events.write_csv(events)
    args = ["train-recommender", str(events), "--user", "user_id", "--item", "item_id", "--time", "ts"]
    code, output = invoke([*args, *SMALL_RECOMMENDER, "--nproc", "2", "--out", str(tmp_path / "model")])
    assert code == 0, output
    (run,) = Store().runs("recommender")
    assert run["status"] == "succeeded" and run["metrics"]["workers"] == 2
    assert run["config"]["launch"]["nproc"] == 2
    recommender = Recommender.load(tmp_path / "model")
    assert recommender.recommend_users(recommender.user_ids[:3], k=5).height == 15


def test_bad_input_with_two_workers_is_one_line(tmp_path: Path, seqemb_home: Path, world) -> None:
    events = tmp_path / "events.csv"
    world.events.head(50).with_columns(pl.lit(None, dtype=pl.String).alias("item_id")).write_csv(events)
    args = ["train-recommender", str(events), "--user", "user_id", "--item", "item_id", *SMALL_RECOMMENDER]
    code, output = invoke([*args, "--nproc", "2", "--out", str(tmp_path / "model")])
    assert code == 2
    assert output == f"error: {events}: column 'item_id' row 0 (0-based data row): missing value\n"
    assert not (tmp_path / "model").exists()
    assert [r["status"] for r in Store().runs()] == ["failed"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_train_fraud_across_two_nodes_saves_one_model(tmp_path: Path, seqemb_home: Path, world) -> None:
    """Two 'hosts' (two processes of this machine) meet at node 0's address; node 0 alone saves and records."""
    transactions = tmp_path / "transactions.parquet"
    world.transactions.write_parquet(transactions)
    endpoint = f"localhost:{_free_port()}"
    command = "from ui.cli import main; main()"
    args = ["train-fraud", str(transactions), *FRAUD_COLUMNS, "--epochs", "1", "--device", "cpu", "--nnodes", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                command,
                *args,
                "--node-rank",
                str(rank),
                "--rdzv-endpoint",
                endpoint,
                "--out",
                str(tmp_path / f"model-{rank}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=240)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert "node 1 trained its share" in outputs[1]
    assert not (tmp_path / "model-1").exists()
    (run,) = Store().runs("fraud_model")
    assert run["status"] == "succeeded" and run["metrics"]["workers"] == 2
    scored = FraudModel.load(tmp_path / "model-0").score(world.transactions.head(500))
    assert scored["score"].is_between(0.0, 1.0).all()

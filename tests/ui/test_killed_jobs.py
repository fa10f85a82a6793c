"""A training job killed with SIGKILL reads as interrupted, and the next job leaves no temporary model behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embeddings.store import Store
from embeddings.synthetic import WorldConfig, make_world
from ui.cli import app

# Every test here runs on each store back-end (tests/store_backends.py).
pytestmark = pytest.mark.usefixtures("db_backend")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    world = make_world(WorldConfig(seed=0).scaled(0.2))
    folder = tmp_path_factory.mktemp("tables")
    world.events.write_parquet(folder / "clicks.parquet")
    world.transactions.write_parquet(folder / "transactions.parquet")
    return {"clicks": folder / "clicks.parquet", "transactions": folder / "transactions.parquet"}


JOBS = {
    "item2vec": ["item2vec", "{clicks}", "--entity", "user_id", "--item", "item_id", "--time", "ts", "--epochs", "200"],
    "train-recommender": [
        "train-recommender",
        "{clicks}",
        "--entity",
        "user_id",
        "--item",
        "item_id",
        "--epochs",
        "200",
    ],
    "train-fraud": ["train-fraud", "{transactions}", "--epochs", "200"],
}


@pytest.mark.parametrize("command", JOBS)
def test_a_killed_training_job_is_interrupted_and_swept(
    command: str, tables: dict[str, Path], seqemb_home: Path
) -> None:
    args = [a.format(**tables) for a in JOBS[command]]
    child = subprocess.Popen(
        [sys.executable, "-c", "from ui.cli import main; main()", *args], cwd=ROOT, stderr=subprocess.DEVNULL
    )
    store = Store()
    deadline = time.monotonic() + 120
    while not store.runs(status="running") and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the training
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    (run,) = store.runs()
    assert run["status"] == "interrupted"
    listed = CliRunner().invoke(app, ["runs"])
    assert f"interrupted  {run['kind']:<10}  {run['run_id']}" in listed.output, listed.output

    with store.run("synthetic", {}):  # the next job to start sweeps
        pass
    assert store.get_run(run["run_id"])["status"] == "interrupted"
    models = seqemb_home / "models"
    assert not models.exists() or [p.name for p in models.iterdir() if p.name.startswith(".")] == []

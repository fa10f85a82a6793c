"""The recommender commands: train-recommender, recommend (one user, batch, resume) and serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from embeddings.errors import ConfigError, DataError, NotFoundError
from embeddings.store import Store
from embeddings.synthetic import WorldConfig, make_world
from recsys.jobs import recommend_batch
from recsys.recommender import Recommender
from tests.recsys.test_batch import Crashing
from ui.cli import app
from ui.service import SETTINGS_VARIABLE, app_from_environment

# Every test here runs on each store back-end (tests/store_backends.py).
pytestmark = pytest.mark.usefixtures("db_backend")

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
SMALL = ["--epochs", "1", "--tower-epochs", "1", "--no-rerank", "--device", "cpu"]


def _lines(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def _stored(store: Store, run_id: str) -> pl.DataFrame:
    return store.read("recommendations", where={"run_id": run_id}).drop("run_id").sort("user_id", "rank")


def _answer(recommender: Recommender, users: list, k: int) -> pl.DataFrame:
    frame = recommender.recommend_users(users, k=k)
    return frame.with_columns(pl.col("score").cast(pl.Float64)).sort("user_id", "rank")


def test_train_then_recommend_batch_resume_and_serve(tmp_path: Path, seqemb_home: Path, monkeypatch) -> None:
    world = make_world(WorldConfig(seed=0).scaled(0.1))
    events, items = tmp_path / "events.csv", tmp_path / "items.parquet"
    world.events.write_csv(events)
    world.items.select("item_id", "category", "price").write_parquet(items)
    vectors = runner.invoke(
        app, ["item2vec", str(events), "--entity", "user_id", "--item", "item_id", "--dim", "16", "--epochs", "1",
              "--min-count", "1", "--out", str(tmp_path / "item2vec")],
    )  # fmt: skip
    assert vectors.exit_code == 0, vectors.output

    args = ["train-recommender", str(events), "--user", "user_id", "--item", "item_id", "--time", "ts"]
    extras = ["--item-attributes", str(items), "--item-vectors", str(tmp_path / "item2vec")]
    trained = runner.invoke(app, [*args, *extras, *SMALL])
    assert trained.exit_code == 0, trained.output
    store = Store()
    run = store.runs("recommender")[0]
    assert run["status"] == "succeeded"
    path = Path(run["artifact_path"])
    assert path == seqemb_home / "models" / f"recommender-{run['run_id']}"
    assert f"model: {path}" in trained.output
    config = store.get_run(run["run_id"])["config"]
    assert config["config"]["encoder"]["dim"] == 16  # taken from the item2vec vectors
    assert config["config"]["neumf"] is None
    metrics = store.get_run(run["run_id"])["metrics"]
    n_users = world.events["user_id"].n_unique()
    assert (metrics["users"], metrics["interactions"]) == (n_users, world.events.height)
    recommender = Recommender.load(path)

    # One user, from the newest recommender run (no --model).
    one = runner.invoke(app, ["recommend", "--user", "u0001", "-k", "3"])
    assert one.exit_code == 0, one.output
    expected = recommender.recommend("u0001", k=3)
    assert [(int(rank), item) for rank, item, _ in _lines(one.stdout)] == list(enumerate(expected.items, start=1))
    stranger = runner.invoke(app, ["recommend", "--model", str(path), "--user", "nobody", "-k", "2"])
    assert stranger.exit_code == 0, stranger.output
    assert stranger.stderr == "user 'nobody' is unknown to the model: popularity fallback\n"
    assert len(_lines(stranger.stdout)) == 2

    # A batch of listed users (text file, one a line), then every user.
    listed = tmp_path / "users.txt"
    listed.write_text("u0002\n\nu0003\nnobody\nu0002\n")
    batch = runner.invoke(app, ["recommend", "--batch", "--users", str(listed), "-k", "4"])
    assert batch.exit_code == 0, batch.output
    (batch_run,) = [run["run_id"] for run in store.runs("recommend")]
    assert _stored(store, batch_run).equals(_answer(recommender, ["u0002", "u0003", "nobody"], 4))
    assert store.get_run(batch_run)["config"]["model_path"] == str(path.resolve())

    # A batch that died midway, finished by --resume: the run's model and k, every row once.
    with pytest.raises(RuntimeError):
        recommend_batch(store, Crashing(recommender, 2), k=6, chunk_size=50, model_path=path.resolve(), progress=False)
    failed = store.runs("recommend", status="failed")[0]["run_id"]
    assert 0 < store.count("recommendations", {"run_id": failed}) < n_users * 6
    resumed = runner.invoke(app, ["recommend", "--batch", "--resume", failed])
    assert resumed.exit_code == 0, resumed.output
    assert f"run {failed}" in resumed.output
    assert _stored(store, failed).equals(_answer(recommender, recommender.user_ids, 6))
    assert store.get_run(failed)["status"] == "succeeded"

    # serve: uvicorn's workers make the app from the newest model, with the settings in the environment.
    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **options: served.update(target=target, **options))
    monkeypatch.setenv(SETTINGS_VARIABLE, "")  # restored after the test
    serve = runner.invoke(app, ["serve", "--port", "8123", "--workers", "2", "--threads", "3"])
    assert serve.exit_code == 0, serve.output
    assert (served["target"], served["factory"]) == ("ui.service:app_from_environment", True)
    assert (served["host"], served["port"], served["workers"]) == ("127.0.0.1", 8123, 2)
    assert json.loads(os.environ[SETTINGS_VARIABLE]) == {"model_path": str(path), "threads": 3, "max_in_flight": None}
    health = TestClient(app_from_environment()).get("/health").json()
    assert (health["model_path"], health["n_users"]) == (str(path), n_users)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["recommend"], ConfigError, "give either --user ID"),
        (["recommend", "--user", "u1", "--batch"], ConfigError, "give either --user ID"),
        (["recommend", "--user", "u1", "--resume", "r"], ConfigError, "--users and --resume go with --batch"),
        (["recommend", "--user", "u1"], NotFoundError, "no trained recommender in {store}; train one"),
        (["recommend", "--batch", "--resume", "no-such-run"], NotFoundError, "run 'no-such-run' is not in the store"),
        (["recommend", "--user", "u1", "--model", "/no/such/dir"], NotFoundError, "not a recommender directory"),
        (["recommend", "--batch", "--users", "{tmp}/empty.txt"], DataError, "empty.txt: no ids in the file"),
        (["recommend", "--batch", "--users", "{tmp}/missing.txt"], DataError, "missing.txt: cannot read the id list"),
        (["serve"], NotFoundError, "no trained recommender in {store}; train one"),
    ],
)
def test_bad_recommend_and_serve_calls(args: list[str], error: type, message: str, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\n \n")
    result = runner.invoke(app, [arg.format(tmp=tmp_path) for arg in args])
    assert isinstance(result.exception, error), result.output
    assert message.format(store=Store().url) in str(result.exception)


def test_a_bad_column_is_one_line_and_a_failed_run(tmp_path: Path) -> None:
    events, model = tmp_path / "events.csv", tmp_path / "model"
    make_world(WorldConfig().scaled(0.1)).events.write_csv(events)
    bad = subprocess.run(
        [sys.executable, "-c", "from ui.cli import main; main()", "train-recommender", str(events),
         "--user", "customer", "--item", "item_id", "--out", str(model)],
        check=False, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2
    columns = "event_id, user_id, session_id, item_id, ts"
    assert bad.stderr == f"error: {events}: missing column 'customer' (columns: {columns})\n"
    assert [run["status"] for run in Store().runs("recommender")] == ["failed"]
    assert not model.exists()

"""Store run records: lifecycle, config and metrics as JSON, listing, unknown runs."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from embeddings.errors import ConfigError, NotFoundError


@dataclasses.dataclass
class _Config:
    dim: int = 8
    lr: np.float32 = dataclasses.field(default_factory=lambda: np.float32(0.5))
    out: Path = Path("/models/item2vec")
    bad: float = float("nan")


def test_run_success_records_config_metrics_and_artifact(store):
    with store.run("item2vec", _Config(), notes="nightly") as run:
        run.log_metrics({"loss": np.float64(2.5), "epochs": 1})
        run.log_metrics({"loss": 1.25})
        run.artifact_path = Path("/models/item2vec/1")
        assert store.get_run(run.id)["status"] == "running"
    stored = store.get_run(run.id)
    assert stored["status"] == "succeeded"
    assert stored["config"] == {"dim": 8, "lr": 0.5, "out": "/models/item2vec", "bad": None}
    assert stored["metrics"] == {"loss": 1.25, "epochs": 1}
    assert stored["artifact_path"] == "/models/item2vec/1"
    assert stored["notes"] == "nightly" and stored["error"] is None
    assert stored["started_at"].tzinfo is None
    assert stored["started_at"] <= stored["finished_at"]
    assert abs(stored["finished_at"] - datetime.now(timezone.utc).replace(tzinfo=None)) < timedelta(minutes=1)


def test_run_failure_records_error_and_reraises(store):
    with pytest.raises(ValueError, match="boom"):
        with store.run("fraud-score", {"threshold": 0.9}) as run:
            run.log_metrics({"scored": 10})
            raise ValueError("boom")
    stored = store.get_run(run.id)
    assert stored["status"] == "failed"
    assert stored["error"] == "ValueError: boom"
    assert stored["metrics"] == {"scored": 10}
    assert stored["finished_at"] is not None


def test_explicit_lifecycle_and_listing(store):
    first = store.start_run("item2vec", {"dim": 4})
    second = store.start_run("index", {"kind": "flat"}, parent_run_id=first)
    third = store.start_run("item2vec")
    store.finish_run(first, metrics={"loss": 0.1}, artifact_path="/m/1")
    store.fail_run(third, "out of memory")

    listed = store.runs()
    assert {run["run_id"] for run in listed} == {first, second, third}
    started = [run["started_at"] for run in listed]
    assert started == sorted(started, reverse=True)
    assert listed[-1] == store.get_run(first)  # decoded as get_run decodes: config and metrics are dicts
    assert listed[-1]["config"] == {"dim": 4}

    assert {run["run_id"] for run in store.runs("item2vec")} == {first, third}
    assert {run["run_id"] for run in store.runs(["item2vec", "index"])} == {first, second, third}
    assert [run["error"] for run in store.runs(status="failed")] == ["out of memory"]
    assert [run["parent_run_id"] for run in store.runs(status="running")] == [first]
    assert json.loads(store.read("runs", where={"run_id": first})["metrics"][0]) == {"loss": 0.1}


def test_unknown_runs_raise_not_found(store):
    message = f"run 'nope' is not in the store at {store.url}"
    for call in (
        lambda: store.finish_run("nope"),
        lambda: store.fail_run("nope", "x"),
        lambda: store.get_run("nope"),
        lambda: store.start_run("index", parent_run_id="nope"),
    ):
        with pytest.raises(NotFoundError) as caught:
            call()
        assert str(caught.value) == message


class _Model:
    """A model that saves itself as a directory holding one file."""

    def save(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True)
        (directory / "weights").write_text("w")
        return directory


def test_a_run_resumes_with_matching_settings_and_refuses_others(store):
    with pytest.raises(RuntimeError):
        with store.run("score", {"threshold": 0.9, "source": "a.csv"}) as first:
            raise RuntimeError("killed")
    assert store.get_run(first.id)["status"] == "failed"
    with pytest.raises(ConfigError, match="was started with threshold=0.9; resume it with the same threshold"):
        with store.run("score", {"threshold": 0.5}, resume=first.id, resume_keys=("threshold",)):
            pass
    with pytest.raises(ConfigError, match="is a 'score' run, not a 'recommend' run"):
        with store.run("recommend", {}, resume=first.id):
            pass
    with store.run("score", {"threshold": 0.9}, resume=first.id, resume_keys=("threshold",)) as again:
        assert again.id == first.id and store.get_run(first.id)["status"] == "running"
    resumed = store.get_run(first.id)
    assert (resumed["status"], resumed["error"]) == ("succeeded", None)
    assert len(store.runs()) == 1


def test_save_model_records_the_default_directory_and_the_newest_model_is_found(store, seqemb_home):
    with pytest.raises(NotFoundError, match="no trained fraud model in .*; train one with `seqemb train-fraud`"):
        store.newest_model_run("fraud_model", "seqemb train-fraud")
    with store.run("fraud_model") as older:
        older_path = older.save_model(_Model())
    with store.run("fraud_model") as newer:
        newer_path = newer.save_model(_Model())
    assert older_path == seqemb_home / "models" / f"fraud_model-{older.id}"
    assert store.get_run(newer.id)["artifact_path"] == str(newer_path)
    assert store.newest_model_run("fraud_model", "x")["run_id"] == newer.id
    shutil.rmtree(newer_path)  # a model directory deleted by hand is skipped
    assert [run["run_id"] for run in store.model_runs("fraud_model")] == [older.id]


def test_progress_is_recorded_in_the_run(store):
    with store.run("recommend") as run:
        with run.progress(10, done=4, unit="user", enabled=False) as bar:
            assert store.get_run(run.id)["metrics"]["progress"] == {"done": 4, "total": 10, "unit": "user"}
            bar.update(6)
    assert store.get_run(run.id)["metrics"]["progress"] == {"done": 10, "total": 10, "unit": "user"}

"""Store run records: lifecycle, config and metrics as JSON, listing, unknown runs."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from embeddings.errors import NotFoundError


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
    assert set(listed["run_id"]) == {first, second, third}
    assert listed["started_at"].is_sorted(descending=True)
    assert listed.schema["started_at"] == pl.Datetime("us") and listed.schema["config"] == pl.String

    item2vec = store.runs("item2vec")
    assert set(item2vec["run_id"]) == {first, third}
    assert store.runs(status="failed")["error"].to_list() == ["out of memory"]
    assert store.runs(status="running")["parent_run_id"].to_list() == [first]
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

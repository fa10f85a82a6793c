"""Batch scoring on a local Ray (``--engine ray``): the one-process job's rows, once each, through killed actors and drivers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import psutil
import pytest
from typer.testing import CliRunner

from embeddings.errors import ConfigError, DataError
from embeddings.settings import default_db_url
from embeddings.store import Store
from fraud.jobs import score_batch
from fraud.model import FraudModel
from tests.fraud import test_scoring
from tests.ui.test_bad_input import invoke
from ui.cli import app

# Workers on a cluster share a server store: every test here runs on PostgreSQL when the suite has
# one, else on SQLite (tests/conftest.py). The one-process job they compare with runs on both.
pytestmark = [pytest.mark.usefixtures("db_backend"), pytest.mark.cluster_store]

ROOT = Path(__file__).resolve().parents[2]
# The one-process scoring tests' world, model and Parquet source (module fixtures), and their check.
world, model_path, parquet = test_scoring.world, test_scoring.model_path, test_scoring.parquet
THRESHOLD, _check_complete = test_scoring.THRESHOLD, test_scoring._check_complete
CHUNK = 5  # entities per chunk: 80 chunks, so a job is still running when a test kills part of it


def _scores(store: Store, run_id: str) -> pl.DataFrame:
    return store.read("fraud_scores", where={"run_id": run_id}).drop("run_id").sort("txn_id")


def _alerts(store: Store, run_id: str) -> pl.DataFrame:
    return store.read("alerts", where={"run_id": run_id}).select("txn_id", "card_id", "score", "ts").sort("txn_id")


def test_ray_scores_and_alerts_equal_the_one_process_jobs(world, model_path: Path, parquet: Path, ray_address) -> None:
    store = Store(default_db_url())
    model = FraudModel.load(model_path)
    since = world.transactions["ts"].sort()[world.transactions.height // 2]
    for cut in (None, since):
        one = score_batch(
            store, model, str(parquet), chunk_entities=CHUNK, model_path=model_path, since=cut, progress=False
        )
        ray = score_batch(
            store,
            model,
            str(parquet),
            chunk_entities=CHUNK,
            model_path=model_path,
            since=cut,
            progress=False,
            engine="ray",
        )
        assert _scores(store, ray.run_id).equals(_scores(store, one.run_id))  # bit-identical scores
        assert _alerts(store, ray.run_id).equals(_alerts(store, one.run_id))
        for key in ("transactions", "history_transactions", "entities", "alerts", "scores_at_least"):
            assert ray.metrics[key] == one.metrics[key], key
        # The run record counts every worker's finished chunks.
        expected = world.transactions.height if cut is None else world.transactions.filter(pl.col("ts") >= cut).height
        assert ray.metrics["progress"] == {"done": expected, "total": expected, "unit": "txn"}


def test_an_actor_killed_mid_job_is_restarted_and_every_row_is_stored_once(
    world, model_path: Path, parquet: Path, ray_address
) -> None:
    store = Store(default_db_url())
    killed: list[int] = []

    def kill_one_scoring_actor() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            if store.count("fraud_scores") > 0:
                for process in psutil.process_iter(["pid", "cmdline"]):
                    if "_ScoreChunk" in " ".join(process.info["cmdline"] or ()):
                        os.kill(process.info["pid"], signal.SIGKILL)
                        killed.append(process.info["pid"])
                        return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_one_scoring_actor)
    killer.start()
    result = score_batch(
        store,
        FraudModel.load(model_path),
        str(parquet),
        chunk_entities=CHUNK,
        model_path=model_path,
        engine="ray",
        progress=False,
    )
    killer.join()
    assert killed, "no scoring actor was found to kill"
    assert store.count("fraud_scores") < world.transactions.height * 2  # nothing from elsewhere
    _check_complete(store, result.run_id, world)
    assert store.get_run(result.run_id)["status"] == "succeeded"


def test_the_driver_killed_mid_job_resumes_on_ray_and_stores_every_row_once(
    world, model_path: Path, parquet: Path, ray_address: str
) -> None:
    url = default_db_url()
    store = Store(url)
    command = [
        str(Path(sys.executable).with_name("seqemb")), "score", str(parquet), "--model", str(model_path), "--threshold",
        str(THRESHOLD), "--chunk-entities", str(CHUNK), "--engine", "ray", "--ray-address", ray_address, "--db", url,
    ]  # fmt: skip
    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while store.count("fraud_scores") == 0 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(driver.pid, signal.SIGKILL)
    assert driver.wait() == -signal.SIGKILL, driver.stderr.read().decode()
    time.sleep(1)  # the cluster stops the dead driver's actors; a write in flight commits whole or not at all
    written = store.count("fraud_scores")
    assert 0 < written < world.transactions.height
    (run,) = store.runs("score")
    assert run["status"] == "interrupted"
    per_card = store.read("fraud_scores").group_by("card_id").len()
    sizes = world.transactions.group_by("card_id").len()
    assert per_card.join(sizes, on="card_id").filter(pl.col("len") != pl.col("len_right")).height == 0

    resumed = CliRunner().invoke(
        app, ["score", str(parquet), "--resume", run["run_id"], "--engine", "ray", "--db", url]
    )
    assert resumed.exit_code == 0, resumed.output
    _check_complete(store, run["run_id"], world)
    assert store.get_run(run["run_id"])["metrics"]["entities_this_pass"] == world.cards.height - per_card.height


def test_bad_input_on_ray_names_the_file_column_and_row_and_records_nothing(
    world, model_path: Path, tmp_path: Path, ray_address
) -> None:
    store = Store(default_db_url())
    model = FraudModel.load(model_path)
    frame = world.transactions.drop("is_fraud", "fraud_kind").with_columns(pl.col("amount").cast(pl.String))
    bad = frame.with_columns(amount=pl.when(pl.int_range(pl.len()) == 1234).then(pl.lit("lots")).otherwise("amount"))
    path = tmp_path / "bad.csv"
    bad.write_csv(path)
    with pytest.raises(
        DataError, match=rf"^{path}: column 'amount' row 1234 \(0-based data row\): cannot parse 'lots'"
    ):
        score_batch(store, model, str(path), model_path=model_path, engine="ray", progress=False)
    repeated = tmp_path / "repeated.parquet"
    frame.with_columns(
        txn_id=pl.when(pl.int_range(pl.len()) == 777).then(pl.lit(frame["txn_id"][3])).otherwise("txn_id")
    ).write_parquet(repeated)
    with pytest.raises(DataError, match=r"column 'txn_id' row 3 .*is repeated"):
        score_batch(store, model, str(repeated), model_path=model_path, engine="ray", progress=False)
    with pytest.raises(ConfigError, match="dataframe"):
        score_batch(store, model, frame, model_path=model_path, engine="ray", progress=False)
    assert store.runs("score") == []


def test_a_store_table_scored_on_ray_reads_key_blocks_with_bound_parameters(
    world, model_path: Path, tmp_path: Path, ray_address
) -> None:
    url = default_db_url()
    store = Store(url)
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    world.transactions.drop("is_fraud", "fraud_kind").write_database("txns", source)
    model = FraudModel.load(model_path)
    one = score_batch(store, model, source, table="txns", chunk_entities=50, model_path=model_path, progress=False)
    ray = score_batch(
        store, model, source, table="txns", chunk_entities=50, model_path=model_path, progress=False, engine="ray"
    )
    assert (
        _scores(store, ray.run_id)
        .drop("row", strict=False)
        .equals(_scores(store, one.run_id).drop("row", strict=False))
    )
    assert ray.metrics["alerts"] == one.metrics["alerts"] > 0


def test_sources_ray_cannot_read_in_blocks_exit_2_with_one_line(model_path: Path, tmp_path: Path) -> None:
    url = default_db_url()
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    pl.DataFrame({"card_id": ["c1"]}).write_database("txns", source)
    query = ["score", source, "--query", "SELECT * FROM txns", "--model", str(model_path), "--engine", "ray"]
    status, output = invoke([*query, "--db", url])
    assert (status, output) == (2, f"error: {source} query: a query cannot be read in blocks of keys: give table=\n")
    status, output = invoke(["recommend", "--user", "u1", "--engine", "ray", "--db", url])
    assert (status, output) == (2, "error: --engine, --ray-address and --workers go with --batch\n")
    assert Store(url).runs("score") == []

"""Run owners, heartbeats and locks: a killed job reads as interrupted, its temporaries are swept,
and a second copy of a locked job (or a second resume of one run) stops at once."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from embeddings.errors import BusyError
from embeddings.settings import models_dir
from embeddings.store import Store
from embeddings.store.owner import STALE_AFTER
from embeddings.store.schema import runs as runs_table
from embeddings.store.schema import utcnow
from ui.cli import app

ROOT = Path(__file__).resolve().parents[2]

# A job killed while it saves its model: the run is recorded, the temporary model directory is
# half written, then the process sleeps until the test kills it.
KILLED_DURING_SAVE = """
import sys, time
from embeddings.files import atomic_directory
from embeddings.settings import models_dir
from embeddings.store import Store

store = Store(sys.argv[1])
with store.run("item2vec", {"dim": 8}, lock=sys.argv[2] or None) as run:
    with atomic_directory(models_dir() / f"item2vec-{run.id}") as tmp:
        (tmp / "vectors.npy").write_bytes(b"x" * 1000)
        print(run.id, flush=True)
        time.sleep(120)
"""


def _killed_during_save(url: str, lock: str = "") -> str:
    """Run :data:`KILLED_DURING_SAVE` in a child process, SIGKILL it mid-save, return its run id."""
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_DURING_SAVE, url, lock], cwd=ROOT, stdout=subprocess.PIPE, env=os.environ
    )
    run_id = child.stdout.readline().decode().strip()
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    return run_id


@pytest.fixture
def url(store_url: str) -> str:
    return store_url


def _temporaries() -> list[str]:
    return sorted(p.name for p in models_dir().iterdir() if p.name.startswith("."))


def test_a_job_killed_mid_save_reads_interrupted_and_the_next_job_sweeps_it(url: str) -> None:
    store = Store(url)
    run_id = _killed_during_save(url)
    assert len(_temporaries()) == 1  # the half-written model directory
    with store.engine.connect() as conn:  # closed here: an open one would keep a lock on runs on PostgreSQL
        stored = conn.execute(runs_table.select().where(runs_table.c.run_id == run_id)).one()
    assert stored.status == "running"  # nothing in the store changed yet...
    assert store.get_run(run_id)["status"] == "interrupted"  # ...but its process is gone
    listed = CliRunner().invoke(app, ["runs", "--db", url])
    assert listed.exit_code == 0 and f"interrupted  item2vec    {run_id}" in listed.output, listed.output

    live = models_dir() / f".item2vec-other.{os.getpid()}-0123abcd.tmp"  # a live process's temporary
    live.mkdir()
    with store.run("synthetic", {}):  # any job that starts sweeps
        pass
    assert _temporaries() == [live.name]
    after = store.get_run(run_id)
    assert (after["status"], after["error"]) == (
        "interrupted",
        f"interrupted: pid {stored.owner_pid} on {stored.owner_host} is gone",
    )
    assert after["finished_at"] is not None


def test_a_lock_admits_one_live_run_and_is_taken_over_from_a_dead_one(url: str, caplog) -> None:
    store = Store(url)
    with store.run("score", {}, lock="seqemb score of t.csv") as first:
        with pytest.raises(
            BusyError, match=rf"^seqemb score of t.csv is already running as run {first.id} \(pid {os.getpid()} on "
        ):
            with store.run("score", {}, lock="seqemb score of t.csv"):
                pass
        with store.run("score", {}, lock="seqemb score of u.csv"):  # another source: no conflict
            pass
    with store.run("score", {}, lock="seqemb score of t.csv"):  # the first finished: free again
        pass

    dead = _killed_during_save(url, lock="seqemb score of t.csv")
    # The sweep at job start marks the dead holder interrupted; then the lock is free.
    with store.run("score", {}, lock="seqemb score of t.csv") as taken:
        assert store.get_run(dead)["status"] == "interrupted"
    assert store.get_run(taken.id)["status"] == "succeeded"

    # A holder that dies between the sweep and the insert is taken over, with a warning.
    dead = _killed_during_save(url, lock="seqemb score of t.csv")
    with caplog.at_level(logging.WARNING, logger="embeddings.store.runs"):
        store.start_run("score", {}, lock="seqemb score of t.csv")
    assert f"run {dead} (seqemb score of t.csv) was interrupted" in caplog.text


def test_a_run_resumes_once_at_a_time(url: str) -> None:
    store = Store(url)
    with pytest.raises(RuntimeError):
        with store.run("recommend", {"k": 4}) as run:
            raise RuntimeError("crash")
    with store.run("recommend", {"k": 4}, resume=run.id):
        with pytest.raises(
            BusyError,
            match=rf"^run {run.id} is already running \(pid {os.getpid()} on .*\); it cannot be resumed twice at once$",
        ):
            with store.run("recommend", {"k": 4}, resume=run.id):
                pass
    dead = _killed_during_save(url)
    with store.run("item2vec", {"dim": 8}, resume=dead) as resumed:  # a dead process's run is taken over
        assert store.get_run(resumed.id)["owner_pid"] == os.getpid()
    assert store.get_run(dead)["status"] == "succeeded"


def test_another_hosts_run_is_alive_while_its_heartbeat_is_fresh(url: str) -> None:
    store = Store(url)
    run_id = store.start_run("score")

    def beat(host: str, age: timedelta) -> str:
        values = {"owner_host": host, "heartbeat_at": utcnow() - age}
        with store.engine.begin() as conn:
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(values))
        return store.get_run(run_id)["status"]

    assert beat("another-host", timedelta(seconds=5)) == "running"
    assert beat("another-host", STALE_AFTER + timedelta(seconds=1)) == "interrupted"


def test_the_heartbeat_thread_beats_while_a_job_runs(url: str, monkeypatch) -> None:
    monkeypatch.setattr("embeddings.store.run_owners.HEARTBEAT_SECONDS", 0.05)
    store = Store(url)
    with store.run("score", {}) as run:
        first = store.get_run(run.id)["heartbeat_at"]
        deadline = time.monotonic() + 30
        while store.get_run(run.id)["heartbeat_at"] == first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.get_run(run.id)["heartbeat_at"] > first

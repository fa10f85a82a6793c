"""Shared set-up: every test gets its own SEQEMB_HOME so nothing touches ~/.seqemb.

Tests that touch the store run once per back-end of :mod:`tests.store_backends` (SQLite, and
PostgreSQL when ``SEQEMB_TEST_DB_URL`` is set): a module marks them with
``pytestmark = pytest.mark.usefixtures("db_backend")``, or a test asks for ``store_url``.
Tests marked ``cluster_store`` (jobs whose workers may sit on several hosts, which only a server
store can serve) run once, on the server when the suite has one.
"""

from __future__ import annotations

import pytest
import torch

from tests.store_backends import BACKENDS, postgres_schema

# The suite's models are small: one intra-op thread is as fast and does not stall when the
# CI machine's two cores are shared with numba's worker threads.
torch.set_num_threads(1)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" in metafunc.fixturenames:
        cluster = metafunc.definition.get_closest_marker("cluster_store") is not None
        metafunc.parametrize("db_backend", BACKENDS[-1:] if cluster else BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def seqemb_home(tmp_path, monkeypatch):
    """Point SEQEMB_HOME at a fresh temp dir and clear SEQEMB_DB_URL for each test."""
    home = tmp_path / "seqemb-home"
    monkeypatch.setenv("SEQEMB_HOME", str(home))
    monkeypatch.delenv("SEQEMB_DB_URL", raising=False)
    return home


@pytest.fixture
def db_backend(request, seqemb_home, monkeypatch):
    """The test's store back-end: "sqlite" (the default store in SEQEMB_HOME) or "postgresql"
    (SEQEMB_DB_URL set to a fresh schema of the test server, for this process and its children)."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    with postgres_schema() as url:
        monkeypatch.setenv("SEQEMB_DB_URL", url)
        yield "postgresql"


@pytest.fixture
def store_url(db_backend) -> str:
    """The URL of the test's (empty) store on its back-end."""
    from embeddings.settings import default_db_url

    return default_db_url()


@pytest.fixture(scope="session")
def ray_address() -> str:
    """A local Ray cluster of two CPUs for the ``--engine ray`` tests (``ray.init(num_cpus=2)``),
    joined by this process; its address, for child processes to join too."""
    import ray

    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield context.address_info["address"]
    ray.shutdown()

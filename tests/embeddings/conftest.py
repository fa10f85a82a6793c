"""The store fixture shared by the store tests: a SQLite file, SQLite in memory, and (with
``SEQEMB_TEST_DB_URL``) a fresh PostgreSQL schema."""

from __future__ import annotations

from contextlib import nullcontext

import pytest

from embeddings.store import Store
from tests.store_backends import TEST_DB_URL, postgres_schema

KINDS = ["file", "memory"] + (["postgresql"] if TEST_DB_URL else [])


@pytest.fixture(params=KINDS)
def store(request, tmp_path) -> Store:
    (tmp_path / "db").mkdir()
    urls = {"file": f"sqlite:///{tmp_path / 'db' / 'seqemb.sqlite'}", "memory": "sqlite://"}
    with postgres_schema() if request.param == "postgresql" else nullcontext(urls[request.param]) as url:
        opened = Store(url)
        yield opened
        opened.close()

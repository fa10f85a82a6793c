"""The store fixture shared by the store tests."""

from __future__ import annotations

import pytest

from embeddings.store import Store


@pytest.fixture(params=["file", "memory"])
def store(request, tmp_path) -> Store:
    (tmp_path / "db").mkdir()
    url = f"sqlite:///{tmp_path / 'db' / 'seqemb.sqlite'}" if request.param == "file" else "sqlite://"
    opened = Store(url)
    yield opened
    opened.close()

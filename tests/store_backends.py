"""The store back-ends the suite runs on: SQLite always, PostgreSQL too when ``SEQEMB_TEST_DB_URL``
names a server (``.ci/run`` starts a throwaway one; the URL's database is only used to make
schemas in). Each PostgreSQL test gets a schema of its own (:func:`postgres_schema`), dropped
after the test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks._stores import postgres_schema as _schema_of

TEST_DB_URL = os.environ.get("SEQEMB_TEST_DB_URL") or None
BACKENDS = ("sqlite", "postgresql") if TEST_DB_URL else ("sqlite",)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL on a new, empty schema of the test server."""
    with _schema_of(TEST_DB_URL, prefix="test") as url:
        yield url

"""The store back-ends the suite runs on: SQLite always, PostgreSQL too when ``SEQEMB_TEST_DB_URL``
names a server (``.ci/run`` starts a throwaway one; the URL's database is only used to make
schemas in).

Each PostgreSQL test gets a schema of its own, first on the URL's ``search_path``, dropped after
the test; the store URL it hands out names that schema, so child processes see the same store.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine

TEST_DB_URL = os.environ.get("SEQEMB_TEST_DB_URL") or None
BACKENDS = ("sqlite", "postgresql") if TEST_DB_URL else ("sqlite",)


@cache
def _admin() -> Engine:
    return create_engine(TEST_DB_URL, isolation_level="AUTOCOMMIT", pool_size=1)


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL on a new, empty schema of the test server; the schema is dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with _admin().connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield (
            make_url(TEST_DB_URL)
            .update_query_dict({"options": f"-csearch_path={name}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with _admin().connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))

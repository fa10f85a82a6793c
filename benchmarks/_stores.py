"""Scratch stores for benchmarks (and the test suite): a SQLite file in a folder, or a fresh
schema of a PostgreSQL database, dropped afterwards.

``scratch_store(url, folder)`` yields a store URL: with ``url`` None, a new SQLite file in
``folder``; with a PostgreSQL ``url``, the same database with a new schema first on its
``search_path`` (so every table the store creates lands there, and child processes given the URL
see the same store). Nothing else in the database is touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, make_url, text


@contextmanager
def postgres_schema(url: str, prefix: str = "scratch") -> Iterator[str]:
    """A store URL on a new, empty schema of the PostgreSQL database at ``url``; dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        try:
            yield (
                make_url(url)
                .update_query_dict({"options": f"-csearch_path={name}"})
                .render_as_string(hide_password=False)
            )
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    finally:
        admin.dispose()


@contextmanager
def scratch_store(url: str | None, folder: Path, prefix: str = "scratch") -> Iterator[str]:
    """A fresh SQLite file under ``folder`` (``url`` None) or a fresh schema of ``url``'s database."""
    if url is None:
        yield f"sqlite:///{folder / f'{prefix}-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    with postgres_schema(url, prefix) as scratch:
        yield scratch


def backend_name(url: str | None) -> str:
    """``sqlite`` or ``postgres`` (the JSON keys' suffix) for a scratch store's ``url``."""
    return "sqlite" if url is None else {"postgresql": "postgres"}.get(make_url(url).get_backend_name(), "other")

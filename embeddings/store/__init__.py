"""The store: runs, input data and job outputs in one SQL database (SQLAlchemy 2 Core).

- :mod:`~embeddings.store.store` — :class:`Store`: checked, idempotent, chunked writes and typed reads;
- :mod:`~embeddings.store.schema` — the tables;
- :mod:`~embeddings.store.engine` — the engine for a URL (SQLite set up as the embedded default);
- :mod:`~embeddings.store.frames` — polars frames in and out of the tables' types;
- :mod:`~embeddings.store.insert` — how a checked chunk reaches each dialect (COPY on PostgreSQL);
- :mod:`~embeddings.store.migrate` — the schema revision and its Alembic migrations (``migrations/``);
- :mod:`~embeddings.store.runs` — the run records every job writes (owners and locks in
  :mod:`~embeddings.store.run_owners` and :mod:`~embeddings.store.owner`).
"""

from embeddings.store.runs import RunHandle, RunRecords
from embeddings.store.store import Store

__all__ = ["RunHandle", "RunRecords", "Store"]

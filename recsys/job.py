"""The recommender training job: read interactions, train every stage, save, record the run.

Shared by ``seqemb train-recommender`` and ``seqemb demo``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter

from embeddings.data import EventSchema
from embeddings.errors import DataError
from embeddings.model import EmbeddingModel
from embeddings.settings import models_dir
from embeddings.sources import Source, describe_source, read_table
from embeddings.store import Store
from recsys.data import read_interactions
from recsys.recommender import Recommender
from recsys.train import RecommenderConfig, train_recommender

RECOMMENDER_KIND = "recommender"


@dataclass
class RecommenderJob:
    """What to read and how to train.

    ``attributes``: a file (or SQL URL with ``attributes_table``) of item attributes whose id
    column is ``attribute_id`` (default: the events' item column), of which ``attribute_columns``
    are used (default: all); ``item_vectors``: an item2vec model directory whose vectors
    initialise the item embeddings.
    """

    schema: EventSchema = field(default_factory=EventSchema)
    attributes: str | None = None
    attributes_table: str | None = None
    attribute_id: str | None = None
    attribute_columns: list[str] | None = None
    item_vectors: str | None = None
    config: RecommenderConfig = field(default_factory=RecommenderConfig)


def run_recommender(
    source: Source,
    job: RecommenderJob,
    *,
    store: Store,
    table: str | None = None,
    query: str | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[Recommender, str, Path]:
    """Train on ``source`` and save to ``out`` (default ``$SEQEMB_HOME/models/recommender-<run id>``).

    Returns ``(recommender, run id, model path)``. The run records what was read and the
    training time; a failure marks it failed and leaves no model directory behind.
    """
    vectors = EmbeddingModel.load(job.item_vectors).embeddings if job.item_vectors is not None else None
    with store.run(RECOMMENDER_KIND, asdict(job)) as run:
        interactions = read_interactions(source, job.schema, table=table, query=query)
        attribute_id = job.attribute_id or job.schema.item
        attributes = None
        if job.attributes is not None:
            attributes = read_table(job.attributes, table=job.attributes_table)
            if job.attribute_columns is not None:
                missing = [c for c in job.attribute_columns if c not in attributes.columns]
                if missing:
                    name = describe_source(job.attributes, table=job.attributes_table)
                    raise DataError(f"{name}: missing column {missing[0]!r} (columns: {', '.join(attributes.columns)})")
                attributes = attributes.select(attribute_id, *job.attribute_columns)
        started = perf_counter()
        recommender = train_recommender(
            interactions,
            job.config,
            item_vectors=vectors,
            item_attributes=attributes,
            attribute_id=attribute_id,
            progress=progress,
        )
        seconds = perf_counter() - started
        path = recommender.save(out if out is not None else models_dir() / f"{RECOMMENDER_KIND}-{run.id}")
        run.log_metrics(
            {
                **recommender.metrics,
                "users": interactions.n_users,
                "items": recommender.n_items,
                "interactions": interactions.sequences.n_tokens,
                "train_seconds": round(seconds, 3),
            }
        )
        run.artifact_path = str(path)
    return recommender, run.id, path

"""item2vec: word2vec over item sequences, saved as a model directory and recorded in the store.

:func:`item2vec` trains skip-gram or CBOW with negative sampling (:mod:`embeddings.sgns`)
on vocabulary-encoded sequences and returns the items' input vectors as
:class:`Embeddings`. The trained model is an :class:`~embeddings.model.EmbeddingModel`
(vectors, index, vocabulary with counts, config) saved as one directory.

:func:`run_item2vec` is the batch job behind ``seqemb item2vec`` and the demo: read events,
build sequences, train, index, save, and record the run (config, metrics, artifact path and
the vectors themselves) in the :class:`Store`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import numpy as np

from embeddings.data import EventSchema, build_sequences, read_events
from embeddings.errors import DataError
from embeddings.index import VectorIndex
from embeddings.model import EmbeddingModel, save_run_model
from embeddings.sequences import Sequences
from embeddings.sgns import SGNSConfig, SGNSResult, train_sgns
from embeddings.sources import Source
from embeddings.store import Store
from embeddings.vectors import Embeddings
from embeddings.vocab import Vocabulary

MODEL_KIND = "item2vec"


def item2vec(
    sequences: Sequences, vocab: Vocabulary, config: SGNSConfig | None = None, *, progress: bool = True
) -> tuple[Embeddings, SGNSResult]:
    """Train SGNS on ``sequences`` (tokens index ``vocab``) and return the items' vectors.

    The embeddings hold one float32 row of ``config.dim`` per real vocabulary key (the
    reserved padding index 0 is left out); the result carries the loss and throughput.
    """
    result = train_sgns(sequences, vocab.counts, config or SGNSConfig(), progress=progress)
    keys = vocab.decode(np.arange(1, len(vocab)))
    return Embeddings(keys, result.input_vectors[1:]), result


@dataclass
class Item2VecJob:
    """What ``seqemb item2vec`` does: which columns to read, how to cut sessions, how to train."""

    schema: EventSchema = field(default_factory=EventSchema)
    session_gap_minutes: float | None = None
    min_count: int = 1
    min_length: int = 2
    sgns: SGNSConfig = field(default_factory=SGNSConfig)
    index_kind: str = "hnsw"
    name: str = "items"


def run_item2vec(
    source: Source,
    job: Item2VecJob,
    *,
    store: Store,
    table: str | None = None,
    query: str | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[EmbeddingModel, str]:
    """Read events, train item2vec, index, save the model and record the run; returns (model, run id).

    The model goes to ``out`` (default ``$SEQEMB_HOME/models/item2vec-<run id>``). The run's
    metrics count what was read and dropped, the training time and throughput; its vectors
    are written to the store's ``vectors`` table. A failure marks the run failed and leaves
    no model directory behind.
    """
    gap = None if job.session_gap_minutes is None else timedelta(minutes=job.session_gap_minutes)
    with store.run(MODEL_KIND, asdict(job)) as run:
        events, read_report = read_events(source, job.schema, table=table, query=query)
        built = build_sequences(events, min_count=job.min_count, session_gap=gap, min_length=job.min_length)
        if built.report.tokens == 0:
            raise DataError(f"{read_report.source}: no sequence is left to train on ({built.report})")
        embeddings, result = item2vec(built.sequences, built.vocab, job.sgns, progress=progress)
        index = VectorIndex.from_embeddings(embeddings, kind=job.index_kind)
        metrics = {
            "events": read_report.rows,
            "sequences": built.report.sequences,
            "tokens": built.report.tokens,
            "keys": len(embeddings),
            "rows_dropped": built.report.rows_dropped,
            "train_seconds": round(result.seconds, 3),
            "items_per_s": round(result.items_per_s),
            "final_loss": result.epoch_loss[-1] if result.epoch_loss else None,
            "backend": result.backend,
        }
        model = EmbeddingModel(MODEL_KIND, embeddings, index, asdict(job), metrics, built.vocab)
        save_run_model(store, run, model, out)
    return model, run.id

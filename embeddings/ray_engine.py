"""Batch jobs on a Ray cluster (``--engine ray``): Ray Data over blocks of keys, an actor pool that holds the model.

A job that runs on Ray cuts its work into *blocks*: each block names a set of keys (cards, users)
whose whole history it owns, so blocks are independent. :func:`map_blocks` turns the blocks into
a Ray dataset (one row per block) and runs ``map_batches`` over it, one block per call, on a pool
of ``workers`` actors: each actor builds its worker once (loads the model, opens the store), then
reads its blocks' rows itself, scores them and writes them to the store in one transaction per
block. The driver only plans the blocks and gathers what the workers return, so progress in the
run record counts every worker's finished blocks.

Failures: an actor that dies (its process killed, its node lost) is restarted by Ray and its
block retried (Ray Data's defaults for actor pools: ``max_restarts=-1``, ``max_task_retries=-1``);
the block's write is idempotent, so a retried block leaves each row once. An error raised by the
worker's own code (bad data) is not retried; it reaches the caller as the seqemb error it was.

Ray is the extra ``seqemb[ray]``; this module imports it only when a job asks for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import polars as pl

from embeddings.errors import BusyError, ConfigError, DataError, NotFoundError, SeqembError, first_line

ENGINES = ("local", "ray")


def check_engine(engine: str) -> None:
    """Raise :class:`ConfigError` unless ``engine`` is one of :data:`ENGINES`."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the one ``ray start`` runs here; None: the
    one this process already joined, else ``RAY_ADDRESS``, else a new local one)."""
    try:
        import ray
    except ImportError as e:
        raise ConfigError(f"--engine ray needs Ray ({first_line(e)}); pip install 'seqemb[ray]'") from None
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(
            f"cannot join the Ray cluster at {address or 'a new local cluster'}: {first_line(e)}"
        ) from None


def cluster_cpus() -> int:
    """The CPUs of the Ray cluster this process joined (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def map_blocks(
    blocks: Sequence[Mapping[str, Any]],
    worker: type,
    worker_args: Mapping[str, Any],
    *,
    workers: int,
) -> Iterator[pl.DataFrame]:
    """Run ``worker(**worker_args)(block)`` on every block, on ``workers`` actors of one CPU each;
    yield each call's result (a batch: a dict of equal-length columns) as a frame, as calls finish.

    ``blocks`` are dicts of plain values (lists of keys included). ``worker`` is a class whose
    ``__call__(batch)`` gets one block as a batch of one row (``batch["keys"][0]``: the block's
    keys) and returns its result batch. A seqemb error raised in a worker is raised here with its
    type and message (a :class:`~embeddings.errors.RowError` as a :class:`DataError`).
    """
    import ray

    if not blocks:
        return
    context = ray.data.DataContext.get_current()
    # The job's own bar and run record show progress; Ray Data's would interleave with them.
    context.enable_progress_bars = context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    dataset = ray.data.from_items(list(blocks), override_num_blocks=len(blocks))
    # Named for the worker, so Ray's process titles and logs say which job's actors they are.
    named = type(worker.__name__, (_Reporting,), {"__module__": __name__})
    results = dataset.map_batches(
        named,
        fn_constructor_kwargs={"worker": worker, "args": dict(worker_args)},
        batch_size=1,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=max(1, min(workers, len(blocks)))),
        num_cpus=1,
    )
    for batch in results.iter_batches(batch_size=None, batch_format="pyarrow"):
        if _ERROR in batch.column_names:
            kind, message = batch[_ERROR][0].as_py(), batch[_MESSAGE][0].as_py()
            raise _ERRORS[kind](message)
        yield pl.from_arrow(batch)


# A worker's seqemb error travels back as a one-row batch of these columns: Ray Data hands the
# driver a user error as text only, and the CLI needs its type (exit code) and its one line.
_ERROR, _MESSAGE = "__seqemb_error", "__seqemb_message"
_ERRORS = {cls.__name__: cls for cls in (DataError, ConfigError, NotFoundError, BusyError, SeqembError)}


class _Reporting:
    """Runs a block worker; a seqemb error it raises, building or working, becomes an error batch."""

    def __init__(self, worker: type, args: Mapping[str, Any]) -> None:
        self.worker, self.error = None, None
        try:
            self.worker = worker(**args)
        except SeqembError as e:  # e.g. a store the workers cannot open: reported with the first block
            self.error = e

    def __call__(self, batch: Any) -> Any:
        try:
            if self.error is not None:
                raise self.error
            return self.worker(batch)
        except SeqembError as e:
            kind = next(cls.__name__ for cls in type(e).__mro__ if cls.__name__ in _ERRORS)
            return {_ERROR: [kind], _MESSAGE: [str(e)]}

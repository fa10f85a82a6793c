"""Data-parallel training with torch DDP, its workers started by torch's elastic launcher
(``torch.distributed.launcher``, the machinery behind ``torchrun``).

:func:`launch` runs a training function in every worker of a :class:`~embeddings.launch.Launch`
(in this process when there is one worker). Each worker joins the process group, gloo on the
CPU and NCCL when it trains on its own GPU (``cuda:<local rank>``), and the training loops ask
:func:`ranks` who they are. They then do three things:

- they wrap the model with :meth:`Ranks.wrap`, so the gradients are averaged after every
  backward pass and every rank keeps the same weights;
- every rank draws the same batches (same seed) and trains on its own rows of each
  (:meth:`Ranks.parts`: rows ``rank::world``, no overlap), so one step over the world sees the
  batch one process would see;
- they total what they measure with :meth:`Ranks.sum`, and compute a decision on rank 0 only,
  handed to all with :meth:`Ranks.from_main`.

Rank 0's return value comes back to the caller, which alone saves the model and records the
run. A worker that fails stops all of them; its one-line error is raised again in the caller,
with its type when it is a :class:`~embeddings.errors.SeqembError`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from embeddings import errors
from embeddings.launch import Launch

T = TypeVar("T")

# The launcher's loggers print every worker failure with its traceback; the caller raises it once.
_QUIET = ("torch.distributed.elastic", "torch.multiprocessing")


@dataclass(frozen=True)
class Ranks:
    """This process's ``rank`` in a ``world`` of training processes (0 of 1 outside a launch)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this is rank 0, whose results are kept."""
        return self.rank == 0

    def parts(self, batches: Iterable[T]) -> Iterator[T]:
        """This rank's rows ``batch[rank::world]`` of each batch (NumPy arrays or tensors of row
        indices). A batch with fewer rows than ranks is skipped by every rank, so all ranks take
        the same number of steps (DDP's collectives need that)."""
        for batch in batches:
            if len(batch) >= self.world:
                yield batch[self.rank :: self.world]

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DDP when there are several ranks (gradients averaged over them), else itself."""
        if self.world == 1:
            return model
        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks (float64)."""
        if self.world == 1:
            return [float(v) for v in values]
        tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def from_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` run on rank 0 only; every rank gets its (picklable) result."""
        if self.world == 1:
            return compute()
        box = [compute() if self.main else None]
        dist.broadcast_object_list(box, src=0, device=_collective_device())
        return box[0]


def ranks() -> Ranks:
    """Who this process is in the current process group (rank 0 of 1 when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def launch(plan: Launch, train: Callable[..., T], *args: Any, device: torch.device) -> T | None:
    """``train(*args)`` in every worker of ``plan``, training on ``device`` (``cuda``: each worker
    its own GPU); rank 0's result, or None on a follower node (whose workers hold no rank 0)."""
    if plan.workers == 1:
        return train(*args)
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    several_hosts = plan.nnodes > 1
    # The launcher's log folder, and (see _temporary_files_in) torch's per-worker error files: one
    # folder of ours, removed when the launch ends, so a failed launch leaves nothing in /tmp.
    logs = tempfile.TemporaryDirectory(prefix="seqemb-ddp-")
    config = LaunchConfig(
        logs_specs=DefaultLogsSpecs(log_dir=logs.name),
        min_nodes=plan.nnodes,
        max_nodes=plan.nnodes,
        nproc_per_node=plan.nproc,
        # Every node must name the same run (its rendezvous keys are prefixed with it).
        run_id="seqemb" if several_hosts else f"seqemb-{uuid.uuid4().hex}",
        # Across hosts the static rendezvous gives node 0 the global rank 0, as Launch promises.
        rdzv_backend="static" if several_hosts else "c10d",
        rdzv_endpoint=plan.rdzv_endpoint if several_hosts else "localhost:0",
        rdzv_configs={"rank": plan.node_rank} if several_hosts else {},
        max_restarts=0,
        start_method="spawn",
    )
    threads = max(1, torch.get_num_threads() // plan.nproc)
    try:
        with logs, _temporary_files_in(logs.name), _quiet_launcher():
            results = elastic_launch(config, _worker)(train, args, device.type, threads)
    except ChildFailedError as exc:
        raise _worker_error(exc) from None  # the error files were read when the failure was made
    return results.get(0)  # keyed by global rank


def _worker(train: Callable[..., T], args: tuple, device_type: str, threads: int) -> T | None:
    """One worker: join the process group, train, leave; rank 0 returns what ``train`` returned."""
    torch.set_num_threads(threads)
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    try:
        result = train(*args)
        return result if dist.get_rank() == 0 else None
    finally:
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    """Where the process group's collectives take their tensors (NCCL: the current GPU)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _worker_error(exc) -> Exception:
    """The first failed worker's error, as one line, with its seqemb type when it had one."""
    rank, failure = exc.get_first_failure()
    message = failure.message.get("message", "") if isinstance(failure.message, dict) else str(failure.message)
    name, _, text = str(message).partition(": ")
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, errors.SeqembError):
        return (errors.DataError if kind is errors.RowError else kind)(text)
    reason = errors.first_line(message) if message else f"exit code {failure.exitcode}"
    return RuntimeError(f"training worker {rank} failed: {reason}")


@contextmanager
def _temporary_files_in(folder: str) -> Iterator[None]:
    """Make ``tempfile`` create its files in ``folder`` for a while: torch's process spawner makes
    an error file there for each worker and leaves the file of a worker that failed."""
    previous = tempfile.tempdir
    tempfile.tempdir = folder
    try:
        yield
    finally:
        tempfile.tempdir = previous


@contextmanager
def _quiet_launcher() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _QUIET]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)

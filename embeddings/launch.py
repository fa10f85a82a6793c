"""Where a training job's workers run: ``nproc`` processes on each of ``nnodes`` hosts.

A frozen dataclass without torch, so the command line reads it fast; :mod:`embeddings.ddp`
starts the workers. One host needs no address (the workers meet on a free local port). Across
hosts every node runs the same command with its own ``node_rank`` and the address of node 0
(``rdzv_endpoint``, ``HOST:PORT``): node 0 holds the global rank 0, whose model is saved and whose
run is recorded; the other nodes (followers) read the same input, train their share and write
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from embeddings.checks import check_int
from embeddings.errors import ConfigError


@dataclass(frozen=True)
class Launch:
    """``nproc`` workers on each of ``nnodes`` hosts; this host is ``node_rank``."""

    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None

    def __post_init__(self) -> None:
        check_int("nproc", self.nproc)
        check_int("nnodes", self.nnodes)
        check_int("node_rank", self.node_rank, minimum=0)
        if self.node_rank >= self.nnodes:
            raise ConfigError(f"node_rank {self.node_rank} must be below nnodes {self.nnodes}")
        if self.nnodes > 1:
            host, _, port = (self.rdzv_endpoint or "").rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(
                    f"nnodes {self.nnodes} needs rdzv_endpoint HOST:PORT of node 0, got {self.rdzv_endpoint!r}"
                )

    @property
    def workers(self) -> int:
        """The world size: every worker on every node."""
        return self.nproc * self.nnodes

    @property
    def follower(self) -> bool:
        """Whether this host trains without saving or recording (every node but node 0)."""
        return self.node_rank > 0

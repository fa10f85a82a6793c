"""The options several ``seqemb`` commands share, declared once, and the model lookup they share.

Only light modules are imported here (typer, the config dataclasses): ``seqemb --help`` must not
load torch, gradio, scikit-learn or faiss.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from embeddings.store import Store

DbOption = Annotated[
    Optional[str],
    typer.Option("--db", help="SQLAlchemy URL of the store (default: $SEQEMB_DB_URL or $SEQEMB_HOME/seqemb.sqlite)"),
]
SourceArgument = Annotated[str, typer.Argument(help="CSV / Parquet file, or a SQLAlchemy URL with --table or --query.")]
TableOption = Annotated[Optional[str], typer.Option(help="Table to read when SOURCE is a URL.")]
QueryOption = Annotated[Optional[str], typer.Option(help="SQL query to read when SOURCE is a URL.")]
SeedOption = Annotated[int, typer.Option(min=0, help="Random seed.")]
DeviceOption = Annotated[
    str, typer.Option(metavar="[auto|cpu|cuda|cuda:N]", help="Where to train: auto is CUDA when visible, else cpu.")
]
IntegerIdsOption = Annotated[
    bool,
    typer.Option(help="The id columns hold integers (default: CSV ids are read as text, so 0081 and 81 differ)."),
]
WorkersOption = Annotated[int, typer.Option(min=0, help="Threads (0 = every core).")]


class Engine(str, Enum):
    local = "local"
    ray = "ray"


EngineOption = Annotated[
    Engine, typer.Option(help="Where the chunks run: this process, or actors of a Ray cluster (seqemb[ray]).")
]
RayAddressOption = Annotated[
    Optional[str],
    typer.Option(
        help="With --engine ray: the cluster to join (auto: the one `ray start` runs here; "
        "default: $RAY_ADDRESS, else a local one on this machine)."
    ),
]
RayWorkersOption = Annotated[
    Optional[int], typer.Option(min=1, help="With --engine ray: actors in the pool (default: one per cluster CPU).")
]

NprocOption = Annotated[
    int, typer.Option(min=1, help="Training workers on this host (several: torch DDP, gloo on CPU, NCCL on GPUs).")
]
NnodesOption = Annotated[int, typer.Option(min=1, help="Hosts that train together (each runs this command).")]
NodeRankOption = Annotated[
    int, typer.Option(min=0, help="This host's place among --nnodes (0 saves the model and records the run).")
]
RdzvEndpointOption = Annotated[
    Optional[str], typer.Option(help="With --nnodes > 1: HOST:PORT of node 0, where the workers meet.")
]


def launch_plan(nproc: int, nnodes: int, node_rank: int, rdzv_endpoint: str | None):
    """The :class:`~embeddings.launch.Launch` of the training options."""
    from embeddings.launch import Launch

    return Launch(nproc=nproc, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint)


def out_option(kind: str) -> object:
    """The ``--out`` option of a command that trains a ``kind`` model."""
    return typer.Option(help=f"Model directory (default: $SEQEMB_HOME/models/{kind}-<run id>).")


class Mode(str, Enum):
    skipgram = "skipgram"
    cbow = "cbow"


class IndexKind(str, Enum):
    exact = "exact"
    ivf = "ivf"
    hnsw = "hnsw"
    ivfpq = "ivfpq"


def model_path(store: Store, model: str | Path | None, kind: str, train_command: str) -> Path:
    """``model`` when given, else the directory of the newest ``kind`` model in ``store``."""
    if model is not None:
        return Path(model)
    return Path(store.newest_model_run(kind, train_command)["artifact_path"])


def artifact(store: Store, run_id: str) -> str:
    """The model directory a run recorded."""
    return store.get_run(run_id)["artifact_path"]

"""``seqemb train-recommender``, ``seqemb recommend`` and ``seqemb serve``: train, recommend, serve over HTTP.

Flag defaults are read from :class:`~recsys.config.RecommenderConfig`; torch loads when a command runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from embeddings.errors import ConfigError, DataError, first_line
from recsys.config import DEFAULT_K, MAX_K, RECOMMENDER_KIND, RecommenderConfig
from ui.cli.options import (
    DbOption,
    DeviceOption,
    Engine,
    EngineOption,
    IntegerIdsOption,
    NnodesOption,
    NodeRankOption,
    NprocOption,
    QueryOption,
    RayAddressOption,
    RayWorkersOption,
    RdzvEndpointOption,
    SeedOption,
    SourceArgument,
    TableOption,
    launch_plan,
    model_path,
    out_option,
)

_RECSYS = RecommenderConfig()


def train_recommender(
    source: SourceArgument,
    user: Annotated[str, typer.Option("--entity", "--user", help="Column of the user id.")],
    item: Annotated[str, typer.Option(help="Column of the item id.")],
    time_column: Annotated[
        Optional[str], typer.Option("--time", help="Column of the interaction time (default: file order).")
    ] = None,
    table: TableOption = None,
    query: QueryOption = None,
    integer_ids: IntegerIdsOption = False,
    item_attributes: Annotated[
        Optional[Path],
        typer.Option(help="CSV / Parquet of item attributes: the --item column, then e.g. category, price."),
    ] = None,
    item_vectors: Annotated[
        Optional[Path], typer.Option(help="item2vec model directory whose vectors initialise the item embeddings.")
    ] = None,
    dim: Annotated[
        Optional[int],
        typer.Option(
            min=1, help=f"Item and session vector width (default: the item vectors', else {_RECSYS.encoder.dim})."
        ),
    ] = None,
    epochs: Annotated[
        Optional[int], typer.Option(min=1, help=f"Passes of the GRU encoder stage (default: {_RECSYS.fit.epochs}).")
    ] = None,
    tower_epochs: Annotated[
        Optional[int], typer.Option(min=1, help=f"Passes of the two-tower stage (default: {_RECSYS.tower_fit.epochs}).")
    ] = None,
    rerank: Annotated[bool, typer.Option(help="Train the NeuMF re-ranker.")] = True,
    seed: SeedOption = _RECSYS.seed,
    device: DeviceOption = _RECSYS.device,
    out: Annotated[Optional[Path], out_option(RECOMMENDER_KIND)] = None,
    db: DbOption = None,
    nproc: NprocOption = 1,
    nnodes: NnodesOption = 1,
    node_rank: NodeRankOption = 0,
    rdzv_endpoint: RdzvEndpointOption = None,
) -> None:
    """Train the recommender (GRU session encoder, DSSM two-tower retrieval, NeuMF re-ranker) on interactions."""
    from embeddings.data import EventSchema
    from embeddings.model import EmbeddingModel
    from embeddings.store import Store
    from recsys.config import RecommenderJob
    from recsys.jobs import run_recommender

    vectors = EmbeddingModel.load(item_vectors).embeddings if item_vectors is not None else None
    config = dataclasses.replace(_RECSYS, device=device, seed=seed)
    dim = dim or (vectors.dim if vectors is not None else None)
    config = dataclasses.replace(
        config,
        encoder=dataclasses.replace(config.encoder, dim=dim, hidden=dim) if dim else config.encoder,
        tower=dataclasses.replace(config.tower, dim=dim) if dim else config.tower,
        fit=dataclasses.replace(config.fit, epochs=epochs or config.fit.epochs),
        tower_fit=dataclasses.replace(config.tower_fit, epochs=tower_epochs or config.tower_fit.epochs),
        neumf=config.neumf if rerank else None,
    )
    job = RecommenderJob(
        schema=EventSchema(entity=user, item=item, timestamp=time_column, integer_ids=integer_ids),
        attributes=str(item_attributes) if item_attributes is not None else None,
        item_vectors=str(item_vectors) if item_vectors is not None else None,
        config=config,
        launch=launch_plan(nproc, nnodes, node_rank, rdzv_endpoint),
    )
    store = Store(db)
    result = run_recommender(source, job, store=store, table=table, query=query, out=out)
    if result is None:
        typer.echo(f"node {node_rank} trained its share; node 0 saves the model and records the run")
        return
    metrics = result.metrics
    typer.echo(
        f"trained on {metrics['users']:,} users, {metrics['items']:,} items and "
        f"{metrics['interactions']:,} interactions in {metrics['train_seconds']:.1f}s"
    )
    typer.echo(f"run {result.run_id} in {store.url}")
    typer.echo(f"model: {result.path}")


def recommend(
    model: Annotated[
        Optional[Path],
        typer.Option(help="Recommender model directory (default: the newest `train-recommender` run's model)."),
    ] = None,
    user: Annotated[Optional[str], typer.Option(help="Print the top k for this user.")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Write the top k of many users to the store.")] = False,
    users: Annotated[
        Optional[Path], typer.Option(help="With --batch: text file of user ids, one a line (default: every user).")
    ] = None,
    resume: Annotated[
        Optional[str], typer.Option(help="With --batch: finish this run, skipping users it has written already.")
    ] = None,
    k: Annotated[
        Optional[int],
        typer.Option(
            "--k", "-k", min=1, max=MAX_K, help=f"Items per user (default: {DEFAULT_K}, or the resumed run's)."
        ),
    ] = None,
    exclude_seen: Annotated[bool, typer.Option(help="Leave out items the user already has.")] = True,
    engine: EngineOption = Engine.local,
    ray_address: RayAddressOption = None,
    workers: RayWorkersOption = None,
    db: DbOption = None,
) -> None:
    """Recommend items: for one user (--user), or for every user into the store (--batch, resumable)."""
    if batch == (user is not None):
        raise ConfigError("give either --user ID (print one user's top k) or --batch (write every user's to the store)")
    if not batch and (users is not None or resume is not None):
        raise ConfigError("--users and --resume go with --batch")
    if not batch and (engine is not Engine.local or ray_address is not None or workers is not None):
        raise ConfigError("--engine, --ray-address and --workers go with --batch")
    from embeddings.store import Store
    from recsys.jobs import recommend_batch
    from recsys.recommender import Recommender

    chosen = _read_ids(users) if users is not None else None
    store = Store(db)
    resumed = (store.get_run(resume)["config"] or {}) if resume is not None else {}
    path = model_path(store, model or resumed.get("model_path"), RECOMMENDER_KIND, "seqemb train-recommender")
    recommender = Recommender.load(path)
    k = k or resumed.get("k") or DEFAULT_K
    if not batch:
        found = recommender.recommend(user, k=k, exclude_seen=exclude_seen)
        if found.fallback:
            typer.echo(f"user {user!r} is unknown to the model: {found.fallback} fallback", err=True)
        for rank, (neighbour, score) in enumerate(zip(found.items, found.scores), start=1):
            typer.echo(f"{rank:>4}  {neighbour}  {score:.4f}")
        return
    result = recommend_batch(
        store,
        recommender,
        chosen,
        k=k,
        exclude_seen=exclude_seen,
        run_id=resume,
        model_path=path.resolve(),
        engine=engine.value,
        ray_address=ray_address,
        workers=workers,
    )
    m = result.metrics
    typer.echo(f"wrote the top {k} of {m['users_this_pass']:,} users ({m['users']:,} in the run, {m['rows']:,} rows)")
    typer.echo(f"run {result.run_id} in {store.url}")


def serve(
    model: Annotated[
        Optional[Path],
        typer.Option(help="Recommender model directory (default: the newest `train-recommender` run's model)."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on. Anything but a loopback address needs --api-key.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes, each with its own copy of the model.")
    ] = 1,
    threads: Annotated[int, typer.Option(min=1, max=64, help="Model requests handled at once per worker.")] = 1,
    max_in_flight: Annotated[
        Optional[int],
        typer.Option(
            min=1, help="Requests admitted at once per worker; more get 503 at once (default: 2 x --threads)."
        ),
    ] = None,
    api_key: Annotated[
        Optional[str],
        typer.Option(
            envvar="SEQEMB_API_KEY", show_envvar=True, show_default=False, help="Key every request must send."
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Serve a recommender over HTTP (FastAPI): /recommend, /recommend/session, /similar, /health, /docs."""
    import json
    import os

    import uvicorn

    from embeddings.store import Store
    from ui.exposure import refuse_exposure
    from ui.service import MAX_URL_BYTES, SETTINGS_VARIABLE, create_app

    refuse_exposure(
        host, bool(api_key), "the recommendation service", "an API key: add --api-key KEY (or set SEQEMB_API_KEY)"
    )
    path = model_path(Store(db) if model is None else None, model, RECOMMENDER_KIND, "seqemb train-recommender")
    settings = {"model_path": str(path), "threads": threads, "max_in_flight": max_in_flight}
    service = create_app(**settings, api_key=api_key)  # a bad model fails here, with one line
    typer.echo(f"serving {path} at http://{host}:{port} (API docs at /docs); {workers} worker(s) x {threads} thread(s)")
    if workers > 1:  # each worker process makes its own app from the settings in the environment
        del service
        os.environ[SETTINGS_VARIABLE] = json.dumps(settings)
        if api_key:
            os.environ["SEQEMB_API_KEY"] = api_key
        service = "ui.service:app_from_environment"
    # h11 reads request lines up to this size, so an over-long URL reaches the guard (414), not a reset.
    uvicorn.run(
        service,
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        http="h11",
        h11_max_incomplete_event_size=4 * MAX_URL_BYTES,
        log_level="warning",
    )


def _read_ids(path: Path) -> list[str]:
    """The ids in a text file, one a line (blank lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the id list ({first_line(exc)})") from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{path}: no ids in the file (one id a line)")
    return ids

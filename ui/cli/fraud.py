"""``seqemb train-fraud``, ``seqemb score`` and ``seqemb train-semi``: the fraud scorer's jobs.

Flag defaults are read from :mod:`fraud.config`; torch and scikit-learn load when a command runs.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from fraud.config import (
    CLASSIFIERS,
    DEFAULT_ALERT_THRESHOLD,
    DEFAULT_CHUNK_ENTITIES,
    FRAUD_MODEL_KIND,
    SEMI_MODEL_KIND,
    AutoencoderConfig,
    FraudJob,
    FraudModelConfig,
    SemiConfig,
    SemiJob,
    TransactionSchema,
)
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

_AE = AutoencoderConfig()
Classifier = Enum("Classifier", {name: name for name in CLASSIFIERS}, type=str)
_COLUMNS = TransactionSchema()
_TRAIN_FRAUD = "seqemb train-fraud"
FraudModelOption = Annotated[
    Optional[Path], typer.Option(help="Fraud model directory (default: the newest `train-fraud` run's model).")
]


def train_fraud(
    source: SourceArgument,
    table: TableOption = None,
    query: QueryOption = None,
    integer_ids: IntegerIdsOption = False,
    entity: Annotated[str, typer.Option(help="Column of the card or customer id.")] = _COLUMNS.entity,
    counterparty: Annotated[str, typer.Option(help="Column of the merchant or terminal id.")] = _COLUMNS.counterparty,
    amount: Annotated[str, typer.Option(help="Column of the amount.")] = _COLUMNS.amount,
    time_column: Annotated[str, typer.Option("--time", help="Column of the transaction time.")] = _COLUMNS.timestamp,
    label: Annotated[
        Optional[str], typer.Option(help="Column of known fraud labels 0/1 (only drops known frauds from training).")
    ] = None,
    transaction_id: Annotated[
        Optional[str], typer.Option(help="Column of the transaction id (default: the source row number).")
    ] = None,
    counterparty_vectors: Annotated[
        Optional[Path], typer.Option(help="item2vec / node2vec model directory of counterparty vectors.")
    ] = None,
    analyst_labels: Annotated[
        bool,
        typer.Option(help="Keep transactions analysts confirmed as fraud (the store's labels) out of training."),
    ] = FraudJob.analyst_labels,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training windows.")] = _AE.epochs,
    window: Annotated[int, typer.Option(min=1, help="Steps per window.")] = _AE.window,
    seed: SeedOption = _AE.seed,
    device: DeviceOption = _AE.device,
    out: Annotated[Optional[Path], out_option(FRAUD_MODEL_KIND)] = None,
    db: DbOption = None,
    nproc: NprocOption = 1,
    nnodes: NnodesOption = 1,
    node_rank: NodeRankOption = 0,
    rdzv_endpoint: RdzvEndpointOption = None,
) -> None:
    """Train the fraud model (GRU sequence autoencoder + calibration) on transactions."""
    from embeddings.store import Store
    from fraud.jobs import run_train_fraud

    job = FraudJob(
        schema=TransactionSchema(
            entity=entity,
            counterparty=counterparty,
            amount=amount,
            timestamp=time_column,
            label=label,
            integer_ids=integer_ids,
        ),
        config=FraudModelConfig(
            autoencoder=dataclasses.replace(_AE, epochs=epochs, window=window, seed=seed, device=device),
            transaction_id=transaction_id,
        ),
        counterparty_vectors=str(counterparty_vectors) if counterparty_vectors is not None else None,
        analyst_labels=analyst_labels,
        launch=launch_plan(nproc, nnodes, node_rank, rdzv_endpoint),
    )
    store = Store(db)
    result = run_train_fraud(source, job, store=store, table=table, query=query, out=out)
    if result is None:
        typer.echo(f"node {node_rank} trained its share; node 0 saves the model and records the run")
        return
    m = result.metrics
    auc = f"; validation AUC {m['validation_auc']:.3f}" if "validation_auc" in m else ""
    typer.echo(
        f"trained on {m['train_transactions']:,} of {m['transactions']:,} transactions ({m['entities']:,} entities) "
        f"in {m['train_seconds']:.1f}s; calibrated on {m['validation_genuine']:,} genuine ones{auc}; "
        f"{m['analyst_labels']:,} analyst labels used"
    )
    typer.echo(f"run {result.run_id} in {store.url}")
    typer.echo(f"model: {result.path}")


def score(
    source: SourceArgument,
    table: TableOption = None,
    query: QueryOption = None,
    model: FraudModelOption = None,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            max=1.0,
            help=f"Alert at calibrated scores >= this (default: {DEFAULT_ALERT_THRESHOLD}, or the resumed run's).",
        ),
    ] = None,
    since: Annotated[
        Optional[datetime],
        typer.Option(
            help="Score only transactions at or after this time (earlier ones are read as history).",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"],
        ),
    ] = None,
    resume: Annotated[Optional[str], typer.Option(help="Finish this run, skipping entities it has scored.")] = None,
    chunk_entities: Annotated[
        int, typer.Option(min=1, help="Entities (with all their transactions) per chunk.")
    ] = DEFAULT_CHUNK_ENTITIES,
    engine: EngineOption = Engine.local,
    ray_address: RayAddressOption = None,
    workers: RayWorkersOption = None,
    db: DbOption = None,
) -> None:
    """Score transactions with a fraud model into the store (fraud_scores, alerts); resumable."""
    from embeddings.store import Store
    from fraud.jobs import score_batch
    from fraud.model import FraudModel

    store = Store(db)
    resumed = (store.get_run(resume)["config"] or {}) if resume is not None else {}
    path = model_path(store, model or resumed.get("model_path"), FRAUD_MODEL_KIND, _TRAIN_FRAUD)
    fraud_model = FraudModel.load(path)
    threshold = threshold if threshold is not None else resumed.get("alert_threshold", DEFAULT_ALERT_THRESHOLD)
    result = score_batch(
        store,
        fraud_model,
        source,
        table=table,
        query=query,
        chunk_entities=chunk_entities,
        alert_threshold=threshold,
        run_id=resume,
        model_path=path.resolve(),
        since=since,
        engine=engine.value,
        ray_address=ray_address,
        workers=workers,
    )
    m = result.metrics
    typer.echo(
        f"scored {m['transactions']:,} transactions of {m['entities']:,} entities "
        f"({m['entities_this_pass']:,} this pass); {m['alerts']:,} alerts at score >= {threshold}"
    )
    typer.echo(f"run {result.run_id} in {store.url}")


def train_semi(
    source: SourceArgument,
    table: TableOption = None,
    query: QueryOption = None,
    model: FraudModelOption = None,
    classifier: Annotated[Classifier, typer.Option(help="The model fitted to the labels.")] = Classifier(
        SemiConfig.classifier
    ),
    counterparty_labels: Annotated[
        bool,
        typer.Option(
            help="Also read each transaction's counterparty label history: what analysts had confirmed "
            "about the terminal or merchant before it (each label known from when it was recorded)."
        ),
    ] = SemiConfig.use_counterparty_labels,
    out: Annotated[Optional[Path], out_option(SEMI_MODEL_KIND)] = None,
    db: DbOption = None,
) -> None:
    """Retrain the semi-supervised model from the analysts' labels in the store (AE signal + labels)."""
    from embeddings.store import Store
    from fraud.jobs import run_train_semi

    store = Store(db)
    path = model_path(store, model, FRAUD_MODEL_KIND, _TRAIN_FRAUD)
    job = SemiJob(
        fraud_model=str(path.resolve()),
        config=SemiConfig(classifier=classifier.value, use_counterparty_labels=counterparty_labels),
    )
    result = run_train_semi(source, job, store=store, table=table, query=query, out=out)
    m = result.metrics
    typer.echo(
        f"trained on {m['labelled_transactions']:,} labelled transactions ({m['frauds']:,} fraud, "
        f"{m['genuine']:,} genuine); {m['labels_not_in_source']:,} labels name transactions not in the source"
    )
    typer.echo(f"run {result.run_id} in {store.url}")
    typer.echo(f"model: {result.path}")

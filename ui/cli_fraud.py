"""``seqemb`` commands for fraud scores: ``train-fraud``, ``score`` and ``train-semi``."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from embeddings.store import Store
from fraud.autoencoder import AutoencoderConfig
from fraud.features import TransactionSchema
from fraud.model import FRAUD_MODEL_KIND, FraudJob, FraudModel, FraudModelConfig, run_train_fraud
from fraud.scoring import score_batch
from fraud.semi import SemiConfig
from fraud.semi_job import SemiJob, run_train_semi
from ui.cli import DbOption, QueryOption, SourceArgument, TableOption, app, newest_model

_FRAUD_AE = AutoencoderConfig()
FraudModelOption = Annotated[
    Optional[Path], typer.Option(help="Fraud model directory (default: the newest `train-fraud` run's model).")
]


@app.command("train-fraud")
def train_fraud_command(
    source: SourceArgument,
    table: TableOption = None,
    query: QueryOption = None,
    entity: Annotated[str, typer.Option(help="Column of the card or customer id.")] = "card_id",
    counterparty: Annotated[str, typer.Option(help="Column of the merchant or terminal id.")] = "merchant_id",
    amount: Annotated[str, typer.Option(help="Column of the amount.")] = "amount",
    time_column: Annotated[str, typer.Option("--time", help="Column of the transaction time.")] = "ts",
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
    ] = True,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training windows.")] = _FRAUD_AE.epochs,
    window: Annotated[int, typer.Option(min=1, help="Steps per window.")] = _FRAUD_AE.window,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[
        Optional[Path], typer.Option(help="Model directory (default: $SEQEMB_HOME/models/fraud_model-<run id>).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Train the fraud model (GRU sequence autoencoder + calibration) on transactions."""
    job = FraudJob(
        schema=TransactionSchema(
            entity=entity, counterparty=counterparty, amount=amount, timestamp=time_column, label=label
        ),
        config=FraudModelConfig(
            autoencoder=dataclasses.replace(_FRAUD_AE, epochs=epochs, window=window, seed=seed, device=device),
            transaction_id=transaction_id,
        ),
        counterparty_vectors=str(counterparty_vectors) if counterparty_vectors is not None else None,
        analyst_labels=analyst_labels,
    )
    store = Store(db)
    model, run_id, path = run_train_fraud(source, job, store=store, table=table, query=query, out=out)
    m = model.metrics
    auc = f"; validation AUC {m['validation_auc']:.3f}" if "validation_auc" in m else ""
    typer.echo(
        f"trained on {m['train_transactions']:,} of {m['transactions']:,} transactions ({m['entities']:,} entities) "
        f"in {m['train_seconds']:.1f}s; calibrated on {m['validation_genuine']:,} genuine ones{auc}; "
        f"{m['analyst_labels']:,} analyst labels used"
    )
    typer.echo(f"run {run_id} in {store.url}")
    typer.echo(f"model: {path}")


@app.command("score")
def score_command(
    source: SourceArgument,
    table: TableOption = None,
    query: QueryOption = None,
    model: FraudModelOption = None,
    threshold: Annotated[
        Optional[float],
        typer.Option(
            min=0.0, max=1.0, help="Alert at calibrated scores >= this (default: 0.99, or the resumed run's)."
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
    ] = 2000,
    db: DbOption = None,
) -> None:
    """Score transactions with a fraud model into the store (fraud_scores, alerts); resumable."""
    store = Store(db)
    resumed = (store.get_run(resume)["config"] or {}) if resume is not None else {}
    path = newest_model(store, model or resumed.get("model_path"), FRAUD_MODEL_KIND, "seqemb train-fraud")
    fraud_model = FraudModel.load(path)
    threshold = threshold if threshold is not None else resumed.get("alert_threshold", 0.99)
    run_id = score_batch(
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
    )
    m = store.get_run(run_id)["metrics"]
    typer.echo(
        f"scored {m['transactions']:,} transactions of {m['entities']:,} entities "
        f"({m['entities_this_pass']:,} this pass); {m['alerts']:,} alerts at score >= {threshold}"
    )
    typer.echo(f"run {run_id} in {store.url}")


@app.command("train-semi")
def train_semi_command(
    source: SourceArgument,
    table: TableOption = None,
    query: QueryOption = None,
    model: FraudModelOption = None,
    classifier: Annotated[str, typer.Option(help="forest, boosted or logistic.")] = SemiConfig.classifier,
    counterparty_labels: Annotated[
        bool,
        typer.Option(
            help="Also read each transaction's counterparty label history: what analysts had confirmed "
            "about the terminal or merchant before it (each label known from when it was recorded)."
        ),
    ] = SemiConfig.use_counterparty_labels,
    out: Annotated[
        Optional[Path], typer.Option(help="Model directory (default: $SEQEMB_HOME/models/semi_model-<run id>).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Retrain the semi-supervised model from the analysts' labels in the store (AE signal + labels)."""
    store = Store(db)
    path = newest_model(store, model, FRAUD_MODEL_KIND, "seqemb train-fraud")
    job = SemiJob(
        fraud_model=str(path.resolve()),
        config=SemiConfig(classifier=classifier, use_counterparty_labels=counterparty_labels),
    )
    semi, run_id, semi_path = run_train_semi(source, job, store=store, table=table, query=query, out=out)
    m = store.get_run(run_id)["metrics"]
    typer.echo(
        f"trained on {m['labelled_transactions']:,} labelled transactions ({m['frauds']:,} fraud, "
        f"{m['genuine']:,} genuine); {m['labels_not_in_source']:,} labels name transactions not in the source"
    )
    typer.echo(f"run {run_id} in {store.url}")
    typer.echo(f"model: {semi_path}")

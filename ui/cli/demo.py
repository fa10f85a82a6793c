"""``seqemb demo``: the synthetic world into the store, every model trained on it, then the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ui.cli.options import DbOption, artifact


def demo(
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Do not open the dashboard at the end.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic world and of training.")] = 0,
    scale: Annotated[
        float, typer.Option(min=0.05, max=10.0, help="Size of the world relative to the default (1.0 = 2,000 users).")
    ] = 1.0,
    threads: Annotated[
        int,
        typer.Option(
            min=1, help="Torch threads. The demo's models are small: one thread is fast and never stalls on busy cores."
        ),
    ] = 1,
    export: Annotated[
        Optional[Path],
        typer.Option(
            help="Only write the world as the README tour's files (clicks.parquet, items.csv, edges.csv, "
            "transactions.parquet) into this folder; nothing is trained.",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Generate the synthetic world into the store and train every model on it, then serve the
    dashboard until Ctrl+C (--no-ui to stop after training; --export DIR for the tour's files only)."""
    if export is not None:
        from ui.demo import TOUR_FILES, export_world

        for name, path in export_world(export, seed=seed, scale=scale).items():
            typer.echo(f"{path}  ({TOUR_FILES[name]})")
        return
    import torch

    from embeddings.store import Store
    from ui.demo import run_demo

    # With more threads than free cores, torch's workers spin-wait on each other at every small
    # GRU step: measured with one other busy process on 2 cores, the demo took 4 min on 2 threads, 50 s on 1.
    torch.set_num_threads(threads)
    store = Store(db)
    typer.echo(f"store: {store.url}")
    result = run_demo(store, seed=seed, scale=scale, say=typer.echo)
    runs = (result.items_run, result.merchants_run, result.graph_run, result.recommender_run, result.fraud_run)
    for label, run_id in zip(("models:", "", "", "", ""), runs):
        typer.echo(f"{label:<8}{artifact(store, run_id)}")
    typer.echo(f"try:    seqemb similar {result.world.items['item_id'][0]}")
    typer.echo(f"        seqemb similar {result.graph.embeddings.keys[0]}")
    typer.echo(f"        seqemb recommend --user {result.world.users['user_id'][0]}")
    if not no_ui:
        from ui.cli.dashboard import open_dashboard

        open_dashboard(store)

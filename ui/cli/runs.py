"""``seqemb runs``: what was trained and run, when, with which metrics (reads the store only)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from ui.cli.options import DbOption


def runs(
    kind: Annotated[Optional[str], typer.Option(help="Only runs of this kind (item2vec, synthetic, ...).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs.")] = 20,
    db: DbOption = None,
) -> None:
    """List the runs recorded in the store, newest first."""
    from embeddings.store import Store

    for run in Store(db).runs(kind, limit=limit):
        started = run["started_at"].strftime("%Y-%m-%d %H:%M:%S")
        metrics = json.dumps(run["metrics"]) if run["metrics"] else ""
        typer.echo(f"{started}  {run['status']:<11}  {run['kind']:<10}  {run['run_id']}  {metrics}")

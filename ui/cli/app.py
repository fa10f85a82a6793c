"""The ``seqemb`` typer app, assembled from the command modules by explicit registration.

Each command module imports only typer and the config dataclasses at the top; what a command
needs (torch, faiss, gradio, ...) it imports when it runs, so ``seqemb --help``, ``--version`` and
``seqemb runs`` start fast. A user error (a bad file, column, flag or key) ends the command with
one line on stderr and exit status 2, no traceback.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from embeddings.errors import SeqembError
from ui.cli import dashboard, db, demo, embeddings, fraud, recsys, runs

app = typer.Typer(
    name="seqemb",
    help="Recommendations and fraud detection built on sequence embeddings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"seqemb {version('seqemb')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("seqemb (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    _version_flag: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Recommendations and fraud detection built on sequence embeddings."""


for name, command in (
    ("demo", demo.demo),
    ("item2vec", embeddings.item2vec),
    ("node2vec", embeddings.node2vec),
    ("similar", embeddings.similar),
    ("runs", runs.runs),
    ("train-recommender", recsys.train_recommender),
    ("recommend", recsys.recommend),
    ("serve", recsys.serve),
    ("train-fraud", fraud.train_fraud),
    ("score", fraud.score),
    ("train-semi", fraud.train_semi),
    ("ui", dashboard.ui),
):
    app.command(name)(command)
app.add_typer(db.db, name="db")


def main() -> None:
    """Entry point of the ``seqemb`` script: user errors become one line and exit status 2."""
    try:
        app()
    except SeqembError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)

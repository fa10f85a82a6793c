"""``seqemb db current`` and ``seqemb db upgrade``: the store's schema revision, and migrating it."""

from __future__ import annotations

import typer

from ui.cli.options import DbOption

db = typer.Typer(help="The store's schema: its revision, and upgrading it.", no_args_is_help=True)


@db.command("current")
def current(db_url: DbOption = None) -> None:
    """Print the store's schema revision and whether this seqemb can use it as it is."""
    from embeddings.store.engine import opening, shown_url
    from embeddings.store.migrate import current_revision, head, open_engine

    engine = open_engine(db_url)
    shown = shown_url(engine)
    with opening(engine), engine.connect() as conn:
        found = current_revision(conn)
    if found is None:
        typer.echo(f"{shown}: empty (the first job creates revision {head()})")
    elif found == head():
        typer.echo(f"{found} (head) {shown}")
    else:
        typer.echo(f"{found} (this seqemb needs {head()}: run seqemb db upgrade) {shown}")


@db.command("upgrade")
def upgrade(db_url: DbOption = None) -> None:
    """Migrate the store to this seqemb's schema revision, in one transaction (back it up first)."""
    from embeddings.store.engine import opening, shown_url
    from embeddings.store.migrate import open_engine
    from embeddings.store.migrate import upgrade as migrate

    engine = open_engine(db_url)
    shown = shown_url(engine)
    with opening(engine):
        before, after = migrate(engine)
    if before == after:
        typer.echo(f"{shown} is at {after} already")
    else:
        typer.echo(f"upgraded {shown} from {before or 'empty'} to {after}")

"""``seqemb ui``: the analysts' dashboard (Gradio) over the store.

It binds 127.0.0.1 unless ``--host`` says otherwise, and refuses a non-loopback host without a
login (``--auth user:password`` or ``SEQEMB_UI_AUTH``): one line on stderr, exit status 2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ui.cli.options import DbOption

if TYPE_CHECKING:
    from embeddings.store import Store


def open_dashboard(store: Store, *, host: str = "127.0.0.1", port: int | None = None, auth: str | None = None) -> None:
    """Serve the dashboard over ``store`` until interrupted (checks host and login first)."""
    from ui.dashboard.app import check_exposure, parse_auth, serve

    login = parse_auth(auth)
    check_exposure(host, login)
    typer.echo(f"dashboard: serving {store.url} on {host} (Ctrl+C to stop)" + (" with a login" if login else ""))
    serve(store, host=host, port=port, auth=login)


def ui(
    db: DbOption = None,
    host: Annotated[
        str, typer.Option(help="Address to bind. Anything but a loopback address needs --auth.")
    ] = "127.0.0.1",
    port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="Port (default: first free from 7860).")] = None,
    auth: Annotated[
        Optional[str],
        typer.Option(
            "--auth", envvar="SEQEMB_UI_AUTH", show_envvar=True, help="Login as user:password.", show_default=False
        ),
    ] = None,
) -> None:
    """Open the analysts' dashboard: runs, alerts and their timelines, recommendations, embeddings, graph."""
    from embeddings.store import Store
    from ui.dashboard.app import check_exposure, parse_auth

    check_exposure(host, parse_auth(auth))  # before the store is opened: a refused start touches nothing
    open_dashboard(Store(db), host=host, port=port, auth=auth)

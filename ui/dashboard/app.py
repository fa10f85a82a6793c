"""The analysts' dashboard: one Gradio Blocks app over the store and the saved models, and how it is served.

Tabs: Overview, Alerts (with the alert timeline and labelling), Recommendations, Embeddings,
Graph. Every tab fills itself from the store when a page loads, so nothing of the store is
baked into the page, and a page shows what the store holds now.

Serving (:func:`serve`) is safe by default:

- it binds ``127.0.0.1``; any other address (``0.0.0.0``, a LAN address, a host name) is
  refused without a login (:func:`check_exposure`);
- ``auth`` (``user:password``) makes every page and API call of the app require that login;
  passwords are compared in constant time;
- uploads to Gradio's upload route are limited to :data:`MAX_UPLOAD` and land in Gradio's
  temporary directory (the app has no upload component and reads no uploaded file);
- event handlers are private (not in the API docs, not callable by Gradio clients), and there
  is no share link, monitoring dashboard, MCP server or server-side rendering.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

import gradio as gr

from embeddings.errors import ConfigError
from embeddings.store import Store
from ui.dashboard import alerts, embeddings_tab, graph, overview, recommendations
from ui.dashboard.models import Models
from ui.exposure import refuse_exposure

MAX_UPLOAD = "1mb"
TITLE = "seqemb · analysts' dashboard"


def build_dashboard(store: Store) -> gr.Blocks:
    """The Blocks app over ``store`` (models load on first use and stay loaded)."""
    models = Models(store)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}\nStore: `{store.url}`")
        with gr.Tabs():
            with gr.Tab("Overview", id="overview", elem_id="tab-overview"):
                overview.build(app, store)
            with gr.Tab("Alerts", id="alerts", elem_id="tab-alerts"):
                alerts.build(app, store, models)
            with gr.Tab("Recommendations", id="recommendations", elem_id="tab-recommendations"):
                recommendations.build(app, store, models)
            with gr.Tab("Embeddings", id="embeddings", elem_id="tab-embeddings"):
                embeddings_tab.build(app, store, models)
            with gr.Tab("Graph", id="graph", elem_id="tab-graph"):
                graph.build(app, store, models)
    return app


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``"user:password"`` -> ``(user, password)``; None/empty -> None; ConfigError when malformed."""
    if text is None or not text.strip():
        return None
    user, colon, password = text.partition(":")
    if not colon or not user.strip() or not password:
        raise ConfigError("--auth / SEQEMB_UI_AUTH must be 'user:password' with a non-empty user and password")
    return user.strip(), password


def check_exposure(host: str, auth: tuple[str, str] | None) -> None:
    """Refuse to serve on a non-loopback address without a login (ConfigError, one line)."""
    refuse_exposure(
        host, auth is not None, "the dashboard", "a login: add --auth user:password (or set SEQEMB_UI_AUTH)"
    )


def _checker(auth: tuple[str, str]) -> Callable[[str, str], bool]:
    user, password = auth

    def check(given_user: str, given_password: str) -> bool:
        same_user = hmac.compare_digest(given_user.encode(), user.encode())
        return hmac.compare_digest(given_password.encode(), password.encode()) and same_user

    return check


def serve(
    store: Store,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    block: bool = True,
    quiet: bool = False,
) -> tuple[gr.Blocks, str]:
    """Build and serve the dashboard; return the app and its local URL.

    ``block=False`` returns once the server runs in a background thread (``app.close()`` stops
    it); ``port=None`` takes the first free port from 7860.
    """
    check_exposure(host, auth)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    app = build_dashboard(store)
    app.queue(default_concurrency_limit=4)
    _, url, _ = app.launch(
        server_name=host,
        server_port=port,
        auth=_checker(auth) if auth else None,
        auth_message="seqemb dashboard: sign in" if auth else None,
        max_file_size=MAX_UPLOAD,
        prevent_thread_lock=not block,
        share=False,
        inbrowser=False,
        show_error=False,
        ssr_mode=False,
        enable_monitoring=False,
        mcp_server=False,
        pwa=False,
        footer_links=["gradio", "settings"],
        quiet=quiet,
    )
    return app, url

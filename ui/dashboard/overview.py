"""Overview tab: what is in the store, what was trained when with which metrics, the last batch jobs."""

from __future__ import annotations

import gradio as gr
import polars as pl

from embeddings.store import Store
from ui.dashboard import queries
from ui.dashboard.common import guarded, shown


def counts_frame(store: Store) -> pl.DataFrame:
    """One row per counted thing: ``what, rows``."""
    counts = queries.overview_counts(store)
    return pl.DataFrame({"what": list(counts), "rows": list(counts.values())})


def build(app: gr.Blocks, store: Store) -> None:
    """The tab's components and events (call inside ``gr.Tab``)."""
    with gr.Row():
        counts = gr.Dataframe(label="In the store", interactive=False, elem_id="overview-counts", scale=1)
        latest = gr.Dataframe(label="Last run of each job", interactive=False, elem_id="overview-latest", scale=2)
    runs = gr.Dataframe(label="Runs, newest first", interactive=False, elem_id="overview-runs", wrap=True)
    with gr.Row():
        previous = gr.Button("◀ newer", size="sm")
        page = gr.Number(value=1, minimum=1, precision=0, label="page", elem_id="overview-page")
        following = gr.Button("older ▶", size="sm")

    @guarded
    def refresh(page_number: float) -> tuple:
        page_number = max(int(page_number or 1), 1)
        latest_runs = queries.latest_runs(store)
        return (
            shown(counts_frame(store)),
            shown(latest_runs),
            shown(queries.runs_page(store, page_number)),
        )

    outputs = [counts, latest, runs]
    app.load(refresh, inputs=page, outputs=outputs, api_visibility="private")
    page.submit(refresh, inputs=page, outputs=outputs, api_visibility="private")
    previous.click(lambda p: max(int(p or 1) - 1, 1), inputs=page, outputs=page, api_visibility="private").then(
        refresh, inputs=page, outputs=outputs, api_visibility="private"
    )
    following.click(lambda p: int(p or 1) + 1, inputs=page, outputs=page, api_visibility="private").then(
        refresh, inputs=page, outputs=outputs, api_visibility="private"
    )

"""Alerts tab: the paged, filterable alerts table of a scoring run, the threshold slider with the
number of alerts it would raise, the score histogram (normal vs flagged), and the alert detail
(:mod:`ui.dashboard.alert_detail`) that opens when a row is clicked."""

from __future__ import annotations

import math

import gradio as gr

from embeddings.errors import NotFoundError
from embeddings.store import Store
from embeddings.store.schema import ALERT_STATUSES
from fraud.score_counts import scores_at_least
from ui.dashboard import alert_detail, queries
from ui.dashboard.common import guarded, plot_frame, shown
from ui.dashboard.models import Models

DEFAULT_THRESHOLD = 0.999
ANY = "any"
COLUMNS = ["score", "status", "kind", "card_id", "merchant_id", "amount", "ts", "txn_id", "alert_id"]


def threshold_summary(store: Store, run_id: str, threshold: float) -> str:
    """One line: how many alerts ``threshold`` would raise on the run, out of how many scored."""
    counts = scores_at_least(store, run_id, [0.0, float(threshold)])
    raised, scored = counts[float(threshold)], counts[0.0]
    share = raised / scored if scored else 0.0
    return (
        f"At **{threshold:.4f}** this run would raise **{raised:,} alerts** "
        f"out of {scored:,} scored transactions ({share:.2%})."
    )


def _filter(run_id, min_score, since, until, card, merchant, kind, status) -> queries.AlertFilter:
    return queries.AlertFilter(
        run_id=run_id or None,
        min_score=float(min_score or 0.0),
        since=queries.parse_day(since, "from"),
        until=queries.parse_day(until, "until"),
        card_id=(card or "").strip() or None,
        merchant_id=(merchant or "").strip() or None,
        kind=None if kind in (None, ANY) else kind,
        status=None if status in (None, ANY) else status,
    )


def build(app: gr.Blocks, store: Store, models: Models) -> None:
    """The tab's components and events (call inside ``gr.Tab``)."""
    with gr.Row():
        run = gr.Dropdown(label="scoring run", choices=[], elem_id="alerts-run", scale=2)
        min_score = gr.Number(label="score at least", value=0.0, minimum=0.0, maximum=1.0, elem_id="alerts-min-score")
        since = gr.Textbox(label="from (YYYY-MM-DD)", elem_id="alerts-since")
        until = gr.Textbox(label="until (YYYY-MM-DD)", elem_id="alerts-until")
    with gr.Row():
        card = gr.Textbox(label="card", elem_id="alerts-card")
        merchant = gr.Textbox(label="merchant", elem_id="alerts-merchant")
        kind = gr.Dropdown(label="kind", choices=[ANY], value=ANY, elem_id="alerts-kind")
        status = gr.Dropdown(label="status", choices=[ANY, *ALERT_STATUSES], value=ANY, elem_id="alerts-status")
        sort = gr.Dropdown(
            label="order",
            choices=list(queries.ALERT_SORTS),
            value=next(iter(queries.ALERT_SORTS)),
            elem_id="alerts-sort",
        )
        apply = gr.Button("Apply filters", variant="primary", elem_id="alerts-apply")
    table = gr.Dataframe(label="Alerts (click a row to open its timeline)", interactive=False, elem_id="alerts-table")
    with gr.Row():
        previous = gr.Button("◀ previous", size="sm")
        page = gr.Number(value=1, minimum=1, precision=0, label="page", elem_id="alerts-page")
        following = gr.Button("next ▶", size="sm")
        paging = gr.Markdown(elem_id="alerts-paging")
    with gr.Row():
        with gr.Column(scale=1):
            threshold = gr.Slider(
                0.9,
                1.0,
                value=DEFAULT_THRESHOLD,
                step=0.0001,
                label="alert threshold (calibrated score)",
                elem_id="alerts-threshold",
            )
            would_raise = gr.Markdown(elem_id="alerts-would-raise")
        histogram = gr.BarPlot(
            x="bucket",
            y="log10(1 + count)",
            color="flagged",
            title="Scores of the run: normal vs flagged at the threshold",
            x_title="calibrated score",
            y_title="log10(1 + transactions)",
            tooltip=["bucket", "count", "flagged"],
            color_map={"normal": "#6b8fd6", "flagged": "#d64545"},
            elem_id="alerts-histogram",
            scale=2,
            height=260,
        )

    filters = [run, min_score, since, until, card, merchant, kind, status]

    @guarded
    def show_page(page_number, order, *values) -> tuple:
        where = _filter(*values)
        page_number = max(int(page_number or 1), 1)
        frame, total = queries.alerts_page(store, where, page_number, sort=queries.ALERT_SORTS[order])
        pages = max(math.ceil(total / queries.PAGE_SIZE), 1)
        note = f"page {page_number} of {pages} · {total:,} alerts match"
        return shown(frame.select(COLUMNS), digits=6), note

    @guarded
    def show_threshold(run_id, value) -> tuple:
        if not run_id:
            return "No scoring run in the store yet: run `seqemb score` (or `seqemb demo`).", None
        histogram_frame = queries.score_histogram(store, run_id, float(value))
        order = histogram_frame["bucket"].to_list()
        return threshold_summary(store, run_id, float(value)), gr.BarPlot(value=plot_frame(histogram_frame), sort=order)

    @guarded
    def initial() -> tuple:
        choices = queries.score_runs(store)
        kinds = [ANY, *queries.alert_kinds(store)]
        return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None), gr.Dropdown(choices=kinds)

    table_outputs = [table, paging]
    first = app.load(initial, outputs=[run, kind], api_visibility="private")
    first.then(show_page, inputs=[page, sort, *filters], outputs=table_outputs, api_visibility="private").then(
        show_threshold, inputs=[run, threshold], outputs=[would_raise, histogram], api_visibility="private"
    )
    page.submit(show_page, inputs=[page, sort, *filters], outputs=table_outputs, api_visibility="private")
    for trigger in (apply.click, run.input, sort.input):
        trigger(lambda: 1, outputs=page, api_visibility="private").then(
            show_page, inputs=[page, sort, *filters], outputs=table_outputs, api_visibility="private"
        )
    run.input(show_threshold, inputs=[run, threshold], outputs=[would_raise, histogram], api_visibility="private")
    previous.click(lambda p: max(int(p or 1) - 1, 1), inputs=page, outputs=page, api_visibility="private").then(
        show_page, inputs=[page, sort, *filters], outputs=table_outputs, api_visibility="private"
    )
    following.click(lambda p: int(p or 1) + 1, inputs=page, outputs=page, api_visibility="private").then(
        show_page, inputs=[page, sort, *filters], outputs=table_outputs, api_visibility="private"
    )
    threshold.change(
        show_threshold, inputs=[run, threshold], outputs=[would_raise, histogram], api_visibility="private"
    )

    detail = alert_detail.build(app, store, models, threshold)

    @guarded
    def pick(evt: gr.SelectData) -> str:
        row = evt.row_value or []
        if len(row) != len(COLUMNS):
            raise NotFoundError("click a row of the alerts table")
        return str(row[COLUMNS.index("alert_id")])

    table.select(pick, outputs=detail.alert_id, api_visibility="private").then(
        detail.open, inputs=[detail.alert_id, threshold], outputs=detail.outputs, api_visibility="private"
    )
    # A label changes an alert's status: show it in the table too.
    for event in detail.labelled:
        event.then(show_page, inputs=[page, sort, *filters], outputs=table_outputs, api_visibility="private")

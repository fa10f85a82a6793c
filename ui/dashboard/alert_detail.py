"""An opened alert: the card's timeline (step errors plotted, the most anomalous steps, every step), the
features that drove the alert, the nearest past confirmed frauds, and the analyst's verdict.

A verdict goes through :func:`fraud.labels.record_label` (checked ids, label, analyst name and
note) into the ``labels`` table, and the alert's status becomes ``confirmed`` or
``false_positive``; later calibration reads the labels with :func:`fraud.labels.read_labels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from embeddings.errors import NotFoundError
from embeddings.store import Store
from fraud.labels import FRAUD, GENUINE, normalise_label, record_label
from ui.dashboard import queries
from ui.dashboard.common import clean_id, guarded, plot_frame, shown
from ui.dashboard.models import Models
from ui.dashboard.timeline import NeighbourCache, Timeline, card_timeline

STATUS_OF_LABEL = {FRAUD: "confirmed", GENUINE: "false_positive"}
TOP_STEPS = 10


@dataclass
class Detail:
    """What the alerts table wires to: the alert id box, the opener and its outputs, and the
    events that end once a label is written."""

    alert_id: gr.Textbox
    open: Any
    outputs: list
    labelled: list


def summary(alert: dict, timeline: Timeline) -> str:
    """Markdown headline of an opened alert."""
    step = timeline.steps.row(timeline.alert_step, named=True)
    return (
        f"### Alert on card `{alert['card_id']}`, transaction `{alert['txn_id']}`\n"
        f"score **{alert['score']:.4f}** · status **{alert['status']}** · step {step['step']} of "
        f"{timeline.steps.height} · {step['ts']:%Y-%m-%d %H:%M} · merchant `{step['merchant_id']}` · "
        f"amount {step['amount']:,.2f}"
    )


def label_alert(store: Store, alert_id: str, label: str, analyst: str, note: str | None = None) -> str:
    """Record an analyst's verdict on an alert's transaction and set the alert's status; return a
    one-line confirmation. Inputs are checked by :func:`record_label` (nothing is written when
    one is bad); an unknown alert raises NotFoundError."""
    alert = queries.get_alert(store, alert_id)
    if alert is None:
        raise NotFoundError(f"alert {alert_id!r} is not in the store")
    record_label(
        store,
        txn_id=alert["txn_id"],
        card_id=alert["card_id"],
        label=label,
        analyst=analyst,
        alert_id=alert["alert_id"],
        note=note or None,
    )
    verdict = normalise_label(label)
    status = STATUS_OF_LABEL[verdict]
    store.update("alerts", {"status": status}, where={"alert_id": alert["alert_id"]})
    return f"Labelled transaction `{alert['txn_id']}` **{verdict}** (alert now `{status}`) by {analyst}."


def build(app: gr.Blocks, store: Store, models: Models, threshold: gr.Slider) -> Detail:
    """The detail components (under the alerts table) and their events."""
    neighbours = NeighbourCache()
    gr.Markdown("## Alert timeline")
    with gr.Row():
        alert_id = gr.Textbox(label="alert id", elem_id="alert-id", scale=3)
        opener = gr.Button("Open alert", elem_id="alert-open", scale=1)
    headline = gr.Markdown("Click an alert in the table above (or paste its id) to open its card's timeline.")
    errors_plot = gr.ScatterPlot(
        x="step",
        y="error",
        color="status",
        title="Reconstruction error of each step of the card",
        x_title="step (transaction of the card, oldest first)",
        y_title="reconstruction error (1 = typical genuine step)",
        color_map={"alert": "#d64545", "flagged": "#f0a030", "normal": "#6b8fd6"},
        tooltip=["txn_id", "ts", "merchant_id", "amount", "score", "fraud_kind"],
        elem_id="alert-errors",
        height=280,
    )
    with gr.Row():
        top = gr.Dataframe(
            label="Most anomalous steps (by score, then error)", interactive=False, elem_id="alert-top-steps", scale=3
        )
        drivers = gr.Dataframe(
            label="Features that drove the alert", interactive=False, elem_id="alert-drivers", scale=2
        )
    similar = gr.Dataframe(
        label="Nearest past confirmed frauds (other cards)", interactive=False, elem_id="alert-similar"
    )
    with gr.Accordion("Every transaction of the card", open=False):
        steps = gr.Dataframe(interactive=False, elem_id="alert-steps")
    with gr.Row():
        analyst = gr.Textbox(label="analyst", value="analyst", elem_id="label-analyst", max_length=128)
        note = gr.Textbox(label="note (optional)", elem_id="label-note", max_length=2000, scale=2)
        confirm = gr.Button("Mark confirmed fraud", variant="stop", elem_id="label-fraud")
        dismiss = gr.Button("Mark false positive", elem_id="label-genuine")
    verdict = gr.Markdown(elem_id="label-result")

    def _alert(text: str) -> dict:
        alert = queries.get_alert(store, clean_id(text, "alert id"))
        if alert is None:
            raise NotFoundError(f"alert {text.strip()!r} is not in the store")
        return alert

    @guarded
    def open_alert(text: str, value: float) -> tuple:
        alert = _alert(text)
        model, path = models.fraud(alert["run_id"])
        index, keys = neighbours.get(store, model, path)
        timeline = card_timeline(store, model, alert["card_id"], alert["txn_id"], float(value), index, keys)
        return (
            summary(alert, timeline),
            plot_frame(
                timeline.steps.select(
                    "step", "error", "status", "txn_id", "ts", "merchant_id", "amount", "score", "fraud_kind"
                )
            ),
            shown(
                timeline.top_steps(TOP_STEPS).select(
                    "step", "score", "error", "txn_id", "merchant_id", "amount", "category", "status", "fraud_kind"
                )
            ),
            shown(timeline.drivers),
            shown(timeline.neighbours),
            shown(timeline.steps),
        )

    def mark(text: str, who: str, remark: str, label: str, request: gr.Request | None) -> str:
        name = getattr(request, "username", None) or who  # a signed-in analyst is named by the login
        return label_alert(store, clean_id(text, "alert id"), label, name, remark)

    @guarded
    def mark_fraud(text: str, who: str, remark: str, request: gr.Request) -> str:
        return mark(text, who, remark, FRAUD, request)

    @guarded
    def mark_genuine(text: str, who: str, remark: str, request: gr.Request) -> str:
        return mark(text, who, remark, GENUINE, request)

    outputs = [headline, errors_plot, top, drivers, similar, steps]
    opener.click(open_alert, inputs=[alert_id, threshold], outputs=outputs, api_visibility="private")
    alert_id.submit(open_alert, inputs=[alert_id, threshold], outputs=outputs, api_visibility="private")
    labelled = [
        button.click(fn, inputs=[alert_id, analyst, note], outputs=verdict, api_visibility="private")
        for button, fn in ((confirm, mark_fraud), (dismiss, mark_genuine))
    ]
    return Detail(alert_id, open_alert, outputs, labelled)

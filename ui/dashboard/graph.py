"""Graph tab: a card's or merchant's neighbourhood in the card-merchant transaction graph, drawn as
SVG, with its node2vec neighbours beside it.

The neighbourhood (:func:`ui.dashboard.queries.card_merchant_edges`) is the centre, its heaviest
counterparties (ring 1) and theirs (ring 2). Layout, in numpy: the centre at the origin, ring-1
nodes evenly on a circle of radius 1, each ring-2 node at radius 2 at the mean angle of the ring-1
nodes it is joined to (spread apart where several share an angle). Edges are drawn with width
growing with ``log(1 + transactions)`` and red where a known fraud is among them.
"""

from __future__ import annotations

import html

import gradio as gr
import numpy as np
import polars as pl

from embeddings.errors import NotFoundError
from embeddings.graph import card_key, card_keys, merchant_key, merchant_keys
from embeddings.graph.transactions import is_card_key, is_graph_key, plain_id
from embeddings.store import Store
from ui.dashboard import queries
from ui.dashboard.common import clean_id, guarded, shown
from ui.dashboard.embeddings_tab import describe_pairs
from ui.dashboard.models import Models

SIZE = 640


def node_of(store: Store, text: str) -> str:
    """The graph node id (``card:<id>`` / ``merchant:<id>``) of a typed card or merchant id."""
    text = clean_id(text, "card or merchant")
    if is_graph_key(text):
        return text
    if store.count("cards", {"card_id": text}) or store.count("transactions", {"card_id": text}):
        return card_key(text)
    if store.count("merchants", {"merchant_id": text}) or store.count("transactions", {"merchant_id": text}):
        return merchant_key(text)
    raise NotFoundError(f"{text!r} is neither a card nor a merchant in the store")


def layout(edges: pl.DataFrame, centre: str) -> pl.DataFrame:
    """Positions of the neighbourhood's nodes: ``node, ring (0/1/2), x, y`` (see the module doc).

    ``edges`` has columns ``a`` (the node nearer the centre) and ``b``.
    """
    ring1 = edges.filter(pl.col("a") == centre)["b"].unique(maintain_order=True).to_list()
    angle1 = 2 * np.pi * np.arange(len(ring1)) / max(len(ring1), 1)
    placed = {centre: (0, 0.0, 0.0)} | {n: (1, np.cos(a), np.sin(a)) for n, a in zip(ring1, angle1)}
    outer = edges.filter(pl.col("a") != centre, ~pl.col("b").is_in(list(placed)))
    if outer.height:
        angles = dict(zip(ring1, angle1))
        mean = (
            outer.with_columns(angle=pl.col("a").replace_strict(angles, return_dtype=pl.Float64))
            .group_by("b", maintain_order=True)
            .agg(pl.col("angle").mean())
        )
        angle = mean["angle"].to_numpy()
        order = np.argsort(angle, kind="stable")
        # Spread ring 2 evenly, in the order of the mean angles, so no two nodes overlap.
        spread = angle[order[0]] + 2 * np.pi * np.arange(order.size) / order.size
        for a, index in zip(spread, order):
            placed[mean["b"][int(index)]] = (2, 2 * np.cos(a), 2 * np.sin(a))
    return pl.DataFrame(
        [(node, ring, x, y) for node, (ring, x, y) in placed.items()], schema=["node", "ring", "x", "y"], orient="row"
    )


def svg(edges: pl.DataFrame, nodes: pl.DataFrame, centre: str) -> str:
    """The drawing: ``edges`` (``a, b, n, frauds``) between ``nodes`` (``node, ring, x, y``)."""
    scale = SIZE / 4.8
    pos = {n: (SIZE / 2 + x * scale, SIZE / 2 + y * scale) for n, x, y in nodes.select("node", "x", "y").iter_rows()}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SIZE} {SIZE}" width="100%" '
        f'style="max-width:{SIZE}px;background:#fff" role="img" aria-label="transaction graph">'
    ]
    for a, b, n, frauds in edges.select("a", "b", "n", "frauds").iter_rows():
        if a not in pos or b not in pos:
            continue
        (x1, y1), (x2, y2) = pos[a], pos[b]
        colour = "#d64545" if frauds else "#9aa5b1"
        width = 0.6 + np.log1p(n)
        tip = html.escape(f"{a} - {b}: {n} transactions, {frauds} known fraud")
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
            f'stroke-width="{width:.2f}" opacity="0.7"><title>{tip}</title></line>'
        )
    for node, ring in nodes.select("node", "ring").iter_rows():
        x, y = pos[node]
        fill = "#f0a030" if node == centre else ("#3b6fd6" if is_card_key(node) else "#2f9e6e")
        radius = 11 if ring == 0 else (7 if ring == 1 else 5)
        label = html.escape(plain_id(node))
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{fill}"><title>{html.escape(node)}'
            f'</title></circle><text x="{x + radius + 2:.1f}" y="{y + 4:.1f}" font-size="10" '
            f'fill="#333">{label}</text>'
        )
    parts.append(
        '<text x="8" y="16" font-size="11" fill="#333">orange: centre · blue: cards · green: merchants · '
        "red edge: known fraud</text></svg>"
    )
    return "".join(parts)


def neighbourhood(store: Store, node: str, limit: int = 25) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Edges ``a, b, n, frauds`` (graph node ids, ``a`` nearer ``node``) and their layout."""
    is_card = is_card_key(node)
    plain = plain_id(node)
    raw = queries.card_merchant_edges(store, plain if is_card else None, None if is_card else plain, limit)
    if raw.height == 0:
        raise NotFoundError(f"{node!r} has no transactions in the store")
    card, merchant = card_keys(pl.col("card_id")), merchant_keys(pl.col("merchant_id"))
    near, far = (card, merchant) if is_card else (merchant, card)
    first = raw.filter((card if is_card else merchant) == node).select(a=near, b=far, n="n", frauds="frauds")
    second = raw.filter((card if is_card else merchant) != node).select(a=far, b=near, n="n", frauds="frauds")
    edges = pl.concat([first, second])
    return edges, layout(edges, node)


def build(app: gr.Blocks, store: Store, models: Models) -> None:
    """The tab's components and events (call inside ``gr.Tab``)."""
    with gr.Row():
        typed = gr.Textbox(label="card or merchant id", elem_id="graph-node", scale=3)
        draw = gr.Button("Draw neighbourhood", variant="primary", elem_id="graph-draw")
    headline = gr.Markdown(elem_id="graph-headline")
    with gr.Row():
        picture = gr.HTML(elem_id="graph-svg", min_height=300)
        similar = gr.Dataframe(label="node2vec neighbours", interactive=False, elem_id="graph-similar")

    @guarded
    def show(text: str) -> tuple:
        if not (text or "").strip():
            return "Type a card or merchant id.", "", None
        node = node_of(store, text)
        edges, nodes = neighbourhood(store, node)
        try:
            model = models.embedding_knowing(node, kind="node2vec")
            near = describe_pairs(store, model.similar(node, 15))
        except NotFoundError:
            near = pl.DataFrame({"key": ["no node2vec model knows this node"]})
        counts = nodes.group_by("ring").len().sort("ring")["len"].to_list()
        text = (
            f"### `{node}`: {counts[1] if len(counts) > 1 else 0} direct counterparties, "
            f"{counts[2] if len(counts) > 2 else 0} more at two hops; {int(edges['frauds'].sum())} known frauds"
        )
        return text, svg(edges, nodes, node), shown(near)

    @guarded
    def initial() -> str:
        top = queries.alerts_page(store, queries.AlertFilter(), 1, 1)[0]
        if top.height:
            return str(top["card_id"][0])
        cards = store.read("transactions", columns=["card_id"], limit=1)
        return str(cards["card_id"][0]) if cards.height else ""

    app.load(initial, outputs=typed, api_visibility="private").then(
        show, inputs=typed, outputs=[headline, picture, similar], api_visibility="private"
    )
    draw.click(show, inputs=typed, outputs=[headline, picture, similar], api_visibility="private")
    typed.submit(show, inputs=typed, outputs=[headline, picture, similar], api_visibility="private")

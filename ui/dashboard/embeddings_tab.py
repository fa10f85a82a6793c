"""Embeddings tab: nearest neighbours of an item / merchant / graph node, analogies, and a 2-D map.

The map projects a sample of a model's vectors on their first two principal components
(``X - mean = U S V^T``; the points are ``(X - mean) V[:, :2]``), coloured by category or by
fraud label (a card with a known fraud, a merchant whose known frauds are the majority of its
transactions), with the key's name, category and label on hover. At most :data:`MAP_POINTS`
keys are drawn (a seeded uniform sample), so large models stay responsive.
"""

from __future__ import annotations

import gradio as gr
import numpy as np
import polars as pl

from embeddings.errors import ConfigError, NotFoundError
from embeddings.model import EmbeddingModel
from embeddings.store import Store
from ui.dashboard import queries
from ui.dashboard.common import guarded, plot_frame, shown
from ui.dashboard.models import Models

MAP_POINTS = 2000
COLOURS = {"category": "category", "fraud label": "fraud"}


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """First two principal-component coordinates of the rows of ``vectors``, float32 ``(n, 2)``."""
    centred = np.asarray(vectors, dtype=np.float64) - vectors.mean(axis=0)
    if centred.shape[0] < 2:
        return np.zeros((centred.shape[0], 2), dtype=np.float32)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1]))).astype(np.float32)


def map_frame(store: Store, model: EmbeddingModel, points: int = MAP_POINTS, seed: int = 0) -> pl.DataFrame:
    """``x, y, key, name, category, fraud`` for a seeded sample of at most ``points`` keys."""
    keys = model.embeddings.keys
    rows = np.arange(len(keys))
    if rows.size > points:
        rows = np.sort(np.random.default_rng(seed).choice(rows.size, size=points, replace=False))
    coords = pca_2d(model.embeddings.vectors[rows])
    described = queries.describe_keys(store, [str(keys[i]) for i in rows])
    return described.with_columns(x=pl.Series(coords[:, 0]), y=pl.Series(coords[:, 1])).select(
        "x", "y", "key", "name", "category", "fraud"
    )


def model_key(model: EmbeddingModel, text: str):
    """``text`` as the model spells the key (integer keys match their decimal text); NotFoundError if absent."""
    key = model.embeddings.key_of(text.strip())
    if key in model.embeddings:
        return key
    raise NotFoundError(f"{text!r} is not a key of this model (e.g. {model.embeddings.keys[0]!r})")


def describe_pairs(store: Store, pairs: list[tuple]) -> pl.DataFrame:
    """``(key, cosine)`` pairs as ``key, name, category, fraud, cosine``."""
    frame = pl.DataFrame(
        {"key": [str(k) for k, _ in pairs], "cosine": [float(s) for _, s in pairs]},
        schema={"key": pl.String, "cosine": pl.Float64},
    )
    info = queries.describe_keys(store, frame["key"].to_list())
    return frame.join(info, on="key", how="left", maintain_order="left").select(
        "key", "name", "category", "fraud", "cosine"
    )


def _keys(model: EmbeddingModel, text: str) -> list:
    return [model_key(model, part) for part in (text or "").replace(",", " ").split()]


def build(app: gr.Blocks, store: Store, models: Models) -> None:
    """The tab's components and events (call inside ``gr.Tab``)."""
    with gr.Row():
        chosen = gr.Dropdown(label="model", choices=[], elem_id="emb-model", scale=3)
        key = gr.Textbox(label="key (item, merchant, or card:/merchant: node)", elem_id="emb-key", scale=2)
        k = gr.Slider(1, 50, value=10, step=1, label="neighbours", elem_id="emb-k")
        go = gr.Button("Neighbours", variant="primary", elem_id="emb-go")
    neighbours = gr.Dataframe(label="Nearest neighbours (cosine)", interactive=False, elem_id="emb-neighbours")
    with gr.Row():
        positive = gr.Textbox(label="analogy: positive keys (a is to b as c is to ?: b c)", elem_id="emb-positive")
        negative = gr.Textbox(label="negative keys (a)", elem_id="emb-negative")
        analogise = gr.Button("Analogy", elem_id="emb-analogy")
    analogy = gr.Dataframe(label="Analogy results", interactive=False, elem_id="emb-analogy-table")
    with gr.Row():
        colour = gr.Radio(list(COLOURS), value="category", label="colour by", elem_id="emb-colour")
        draw = gr.Button("Draw map", elem_id="emb-draw")
    scatter = gr.ScatterPlot(
        x="x",
        y="y",
        color="category",
        title=f"2-D PCA map (at most {MAP_POINTS:,} keys)",
        tooltip=["key", "name", "category", "fraud"],
        elem_id="emb-map",
        height=420,
    )

    def _model(path: str | None) -> EmbeddingModel:
        if not path:
            raise NotFoundError("no trained item2vec or node2vec model in the store; run `seqemb demo`")
        return models.embedding(path)

    @guarded
    def show_neighbours(path: str, text: str, count: float) -> object:
        model = _model(path)
        if not (text or "").strip():
            raise ConfigError("type a key first")
        return shown(describe_pairs(store, model.similar(model_key(model, text), int(count))))

    @guarded
    def show_analogy(path: str, plus: str, minus: str, count: float) -> object:
        model = _model(path)
        pairs = model.embeddings.analogy(_keys(model, plus), _keys(model, minus), k=int(count))
        return shown(describe_pairs(store, pairs))

    @guarded
    def show_map(path: str, colour_by: str) -> object:
        frame = map_frame(store, _model(path))
        return gr.ScatterPlot(value=plot_frame(frame), color=COLOURS[colour_by])

    @guarded
    def initial() -> tuple:
        choices = models.embedding_runs()
        path = choices[0][1] if choices else None
        first_key = str(_model(path).embeddings.keys[0]) if path else ""
        return gr.Dropdown(choices=choices, value=path), first_key

    def first_view(path: str | None, colour_by: str, text: str, count: float) -> tuple:
        """On page load: the newest model's map and first key's neighbours; nothing on an empty store."""
        if not path:
            return None, None
        return show_map(path, colour_by), show_neighbours(path, text, count)

    app.load(initial, outputs=[chosen, key], api_visibility="private").then(
        first_view, inputs=[chosen, colour, key, k], outputs=[scatter, neighbours], api_visibility="private"
    )
    go.click(show_neighbours, inputs=[chosen, key, k], outputs=neighbours, api_visibility="private")
    key.submit(show_neighbours, inputs=[chosen, key, k], outputs=neighbours, api_visibility="private")
    analogise.click(show_analogy, inputs=[chosen, positive, negative, k], outputs=analogy, api_visibility="private")
    for trigger in (draw.click, colour.input, chosen.input):
        trigger(show_map, inputs=[chosen, colour], outputs=scatter, api_visibility="private")
    chosen.input(lambda p: str(_model(p).embeddings.keys[0]), inputs=chosen, outputs=key, api_visibility="private")

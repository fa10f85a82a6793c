"""Recommendations tab: a user's (or a typed session's) history, the recommender's top-K with scores,
each item's position at retrieval and after re-ranking, and why: the nearest item of the history.

Positions: the session tower encodes the history into ``u``; retrieval is the
:class:`~embeddings.index.VectorIndex` search of ``u`` among the item-tower vectors (seen items
left out), so an item's *retrieval position* is its rank in that candidate list, and its *final
position* its rank after the NeuMF re-ranker scored the candidates. *Why*: among the history's
items, the one whose item2vec vector has the largest cosine with the recommended item's.
"""

from __future__ import annotations

import gradio as gr
import numpy as np
import polars as pl

from embeddings.errors import NotFoundError
from embeddings.sequences import Sequences
from embeddings.store import Store
from embeddings.vectors import Embeddings
from recsys.config import MAX_K
from recsys.recommender import Recommender
from ui.dashboard import queries
from ui.dashboard.common import clean_id, guarded, shown
from ui.dashboard.models import Models

MAX_SESSION_ITEMS = 200


def catalogue_rows(recommender: Recommender, item_ids: list[str]) -> np.ndarray:
    """Catalogue rows of ``item_ids`` (ids compared as text), ``-1`` for unknown ones."""
    catalogue = pl.DataFrame({"item_id": recommender.catalogue.cast(pl.String)}).with_row_index("row")
    wanted = pl.DataFrame({"item_id": pl.Series(item_ids, dtype=pl.String)})
    found = wanted.join(catalogue.drop_nulls("item_id"), on="item_id", how="left", maintain_order="left")
    return found["row"].fill_null(-1).cast(pl.Int64).to_numpy()


def user_history_rows(recommender: Recommender, user_id: str) -> Sequences:
    """The recommender's training history of ``user_id`` (catalogue rows); NotFoundError if unknown."""
    hits = recommender.users.cast(pl.String).eq(user_id).arg_true()
    if hits.len() == 0:
        raise NotFoundError(f"user {user_id!r} is not known to the recommender")
    return recommender.histories.select(np.array([int(hits[0])]))


def retrieval_positions(recommender: Recommender, history: Sequences) -> dict[int, int]:
    """Catalogue row -> 1-based position in the retrieval candidates of ``history`` (seen items left out)."""
    session = recommender.session_vectors(history).numpy()
    seen = set(history.tokens.tolist())
    wanted = min(recommender.candidates + len(seen), len(recommender.index))
    keys, _ = recommender.index.search(session, wanted)
    rows = [int(k) for k in keys[0] if k is not None and int(k) not in seen]
    return {row: position for position, row in enumerate(rows, start=1)}


def because(vectors: Embeddings | None, history_ids: list[str], item_ids: list[str]) -> pl.DataFrame:
    """For each of ``item_ids``: the history item with the largest cosine (``because``) and that cosine."""
    known = [i for i in dict.fromkeys(history_ids) if vectors is not None and i in vectors]
    if not known or vectors is None:
        return pl.DataFrame(
            {"because": ["-"] * len(item_ids), "cosine": [None] * len(item_ids)},
            schema={"because": pl.String, "cosine": pl.Float64},
        )
    unit = vectors.normalized()
    history = unit[[vectors.index_of(i) for i in known]]
    rows = np.array([vectors.index_of(i) if i in vectors else -1 for i in item_ids])
    cosines = unit[np.maximum(rows, 0)] @ history.T  # [n_items, n_history]
    best = cosines.argmax(axis=1)
    return pl.DataFrame(
        {
            "because": [known[b] if r >= 0 else "-" for b, r in zip(best, rows)],
            "cosine": [float(cosines[i, b]) if r >= 0 else None for i, (b, r) in enumerate(zip(best, rows))],
        },
        schema={"because": pl.String, "cosine": pl.Float64},
    )


def explained(
    recommender: Recommender, history: Sequences, k: int, vectors: Embeddings | None, user_id: str | None = None
) -> pl.DataFrame:
    """Top-``k`` for a history: ``rank, item_id, score, retrieval position, because, cosine``.

    ``user_id`` given: the recommender's own list for that user; else the session's list.
    """
    ids = recommender.catalogue.cast(pl.String)
    history_ids = [ids[int(r)] for r in history.tokens]
    found = (
        recommender.recommend(user_id, k=k) if user_id is not None else recommender.recommend_session(history_ids, k=k)
    )
    items = [str(i) for i in found.items]
    positions = retrieval_positions(recommender, history) if len(history.tokens) else {}
    rows = catalogue_rows(recommender, items)
    frame = pl.DataFrame(
        {
            "rank": list(range(1, len(items) + 1)),
            "item_id": items,
            "score": found.scores,
            "retrieval position": [positions.get(int(r)) for r in rows],
        },
        schema={"rank": pl.Int64, "item_id": pl.String, "score": pl.Float64, "retrieval position": pl.Int64},
    )
    return pl.concat([frame, because(vectors, history_ids, items)], how="horizontal")


def _named(store: Store, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the items' category after ``item_id``."""
    info = queries.describe_keys(store, frame["item_id"].unique().to_list()).select(
        pl.col("key").alias("item_id"), "category"
    )
    out = frame.join(info, on="item_id", how="left", maintain_order="left")
    columns = list(frame.columns)
    columns.insert(columns.index("item_id") + 1, "category")
    return out.select(columns)


def _vectors(models: Models, item_ids: list[str]) -> Embeddings | None:
    for item in item_ids:
        try:
            return models.embedding_knowing(item, kind="item2vec").embeddings
        except NotFoundError:
            continue
    return None


def build(app: gr.Blocks, store: Store, models: Models) -> None:
    """The tab's components and events (call inside ``gr.Tab``)."""
    with gr.Row():
        search = gr.Textbox(label="find a user (id or its beginning)", elem_id="recs-user", scale=3)
        find = gr.Button("Search", variant="primary", elem_id="recs-search")
        k = gr.Slider(1, 50, value=10, step=1, label="K", elem_id="recs-k")
    with gr.Row():
        session = gr.Textbox(label="…or type a session: item ids, oldest first", elem_id="recs-session", scale=3)
        typed = gr.Button("Recommend for this session", elem_id="recs-session-go")
    matches = gr.Dataframe(
        label="Matching users (click one)", interactive=False, elem_id="recs-matches", max_height=220
    )
    headline = gr.Markdown("Search for a user or type a session.", elem_id="recs-headline")
    with gr.Row():
        history = gr.Dataframe(label="History (newest 50, oldest first)", interactive=False, elem_id="recs-history")
        top = gr.Dataframe(
            label="Top-K now: score, retrieval vs final position, why", interactive=False, elem_id="recs-top", scale=2
        )
    stored = gr.Dataframe(label="Last nightly batch for this user", interactive=False, elem_id="recs-stored")

    @guarded
    def for_user(user_id: str, k_value: float) -> tuple:
        recommender = models.recommender()
        seen = queries.user_history(store, user_id)
        rows = user_history_rows(recommender, user_id)
        ids = recommender.catalogue.cast(pl.String)
        top_k = explained(
            recommender, rows, int(k_value), _vectors(models, [ids[int(r)] for r in rows.tokens]), user_id
        )
        text = f"### User `{user_id}`: {len(rows.tokens)} items in the model's history"
        return (
            text,
            shown(seen),
            shown(_named(store, top_k)),
            shown(_named(store, queries.stored_recommendations(store, user_id))),
        )

    @guarded
    def find_users(text: str, k_value: float) -> tuple:
        found = queries.search_users(store, clean_id(text, "user"))
        if found.height == 0:
            raise NotFoundError(f"no user id starts with {text.strip()!r}")
        return (shown(found), *for_user(found["user_id"][0], k_value))

    @guarded
    def pick(k_value: float, evt: gr.SelectData) -> tuple:
        row = evt.row_value or []
        if not row:
            raise NotFoundError("click a row of the matching users")
        return for_user(str(row[0]), k_value)

    @guarded
    def for_session(text: str, k_value: float) -> tuple:
        recommender = models.recommender()
        item_ids = [token for token in (text or "").replace(",", " ").split() if token][:MAX_SESSION_ITEMS]
        if not item_ids:
            raise NotFoundError("type the session's item ids, separated by spaces or commas")
        rows = catalogue_rows(recommender, item_ids)
        known = [int(r) for r in rows if 0 < r < recommender.model.n_tokens]
        unknown = [i for i, r in zip(item_ids, rows) if r < 0]
        top_k = explained(
            recommender, Sequences.from_lists([known]), int(min(k_value, MAX_K)), _vectors(models, item_ids)
        )
        text = f"### Session of {len(item_ids)} items" + (
            f" (unknown, skipped: {', '.join(unknown)})" if unknown else ""
        )
        session_frame = pl.DataFrame({"item_id": item_ids})
        empty = pl.DataFrame(schema={"rank": pl.Int64, "item_id": pl.String, "score": pl.Float64})
        return text, shown(_named(store, session_frame)), shown(_named(store, top_k)), shown(empty)

    outputs = [headline, history, top, stored]
    find.click(find_users, inputs=[search, k], outputs=[matches, *outputs], api_visibility="private")
    search.submit(find_users, inputs=[search, k], outputs=[matches, *outputs], api_visibility="private")
    matches.select(pick, inputs=k, outputs=outputs, api_visibility="private")
    typed.click(for_session, inputs=[session, k], outputs=outputs, api_visibility="private")
    session.submit(for_session, inputs=[session, k], outputs=outputs, api_visibility="private")

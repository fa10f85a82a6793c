"""``seqemb serve``: the HTTP API (FastAPI) over one trained :class:`~recsys.recommender.Recommender`.

``create_app(model_path)`` loads the model once, when the app is made, and keeps it in
``app.state.recommender``; every request uses that one model. Endpoints:

- ``GET /health`` — status, model path, catalogue and user counts;
- ``GET /recommend?user_id=&k=&exclude_seen=`` — top-k for a known user (popularity for others);
- ``POST /recommend/session`` ``{"item_ids": [...], "k": 10}`` — top-k for an anonymous session;
- ``GET /similar?item_id=&k=`` — the k items nearest to one item.

Ids travel as text; the Recommender matches the text of an integer key to the key.
Bad input never gives a 500: a malformed parameter or body is a 422 whose ``detail`` is one line
naming the parameter (``errors`` lists every problem, quoting at most a short prefix of a bad
value), an unknown item in ``/similar`` is a 404, and any other seqemb error is a 4xx carrying its
one-line message. The OpenAPI schema is at ``/openapi.json`` and browsable at ``/docs``.

Under load (:mod:`ui.request_guard`): at most ``max_in_flight`` model requests at once, one more
gets 503 with ``Retry-After`` at once; over-long URLs get 414 and big bodies 413; ``/health`` is
answered on the event loop, never waiting for the model's threads. Model requests run on
``threads`` threads per worker process, each torch call on one intra-op thread (several requests
at once use the cores better than one request's small matrices can). With an ``api_key``, every
endpoint but ``/health`` and the docs needs it.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.to_thread
import torch
from fastapi import Body, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from embeddings.errors import NotFoundError, SeqembError
from embeddings.keys import ID_LENGTH
from recsys.config import MAX_K
from recsys.recommender import Recommendations, Recommender
from ui.request_guard import RequestGuard

MAX_SESSION_ITEMS = 1000
# A full session (1000 ids of 128 characters, quoted) fits; anything much bigger is not a request.
MAX_BODY_BYTES = 256 * 1024
MAX_URL_BYTES = 8 * 1024
# Characters of a bad value a 422 quotes back.
QUOTED_PREFIX = 64
DEFAULT_THREADS = 1
# The environment variable carrying create_app's settings to uvicorn's worker processes.
SETTINGS_VARIABLE = "SEQEMB_SERVE_SETTINGS"

Id = Annotated[str, StringConstraints(min_length=1, max_length=ID_LENGTH)]
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"How many items to return (1 to {MAX_K}).")]


class RecommendedItem(BaseModel):
    """One recommended item."""

    rank: int = Field(description="Position in the list, 1 = best.", ge=1)
    item_id: str = Field(description="The item's id.")
    score: float = Field(description="The model's score; higher is better. Comparable within one list only.")


class RecommendationList(BaseModel):
    """Ranked items, and how the model arrived at them."""

    items: list[RecommendedItem] = Field(description="Best first.")
    fallback: str | None = Field(
        None, description='"popularity" when the user or session was unknown to the model and popular items were given.'
    )
    unknown: list[str] = Field(default_factory=list, description="Input item ids the model does not know (skipped).")


class Health(BaseModel):
    """The service is up and serving one model."""

    status: str = Field(description='"ok".')
    model_path: str = Field(description="Directory of the model being served.")
    n_items: int = Field(description="Items in the model's catalogue.")
    n_users: int = Field(description="Users the model knows.")


class SessionRequest(BaseModel):
    """An anonymous session: the items it touched, oldest first."""

    model_config = ConfigDict(coerce_numbers_to_str=True, extra="forbid")

    item_ids: list[Id] = Field(
        min_length=1, max_length=MAX_SESSION_ITEMS, description="Item ids in time order, oldest first."
    )
    # strict: JSON true is not the integer 1, nor "no" a boolean.
    k: int = Field(10, ge=1, le=MAX_K, strict=True, description=f"How many items to return (1 to {MAX_K}).")
    exclude_seen: bool = Field(True, strict=True, description="Leave the session's own items out of the list.")


class ErrorBody(BaseModel):
    """What a 4xx carries."""

    detail: str = Field(description="One line: what is wrong and where.")


def create_app(
    model_path: str | os.PathLike,
    *,
    threads: int = DEFAULT_THREADS,
    max_in_flight: int | None = None,
    api_key: str | None = None,
) -> FastAPI:
    """The FastAPI app serving the recommender saved in ``model_path`` (loaded here, once).

    ``threads`` model requests run at once; ``max_in_flight`` (default twice ``threads``) are
    admitted, the others get 503 at once. ``api_key``: required of every request but
    ``/health`` and the docs.
    """
    recommender = Recommender.load(model_path)
    torch.set_num_threads(1)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = FastAPI(
        title="seqemb recommendations",
        description="Top-k recommendations for users and sessions, and similar items, from one trained seqemb model.",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(
        RequestGuard,
        max_in_flight=max_in_flight or 2 * threads,
        max_body_bytes=MAX_BODY_BYTES,
        max_url_bytes=MAX_URL_BYTES,
        api_key=api_key,
    )
    app.state.recommender = recommender
    app.state.model_path = str(model_path)
    errors = {404: {"model": ErrorBody, "description": "Unknown item."}, 422: {"description": "Invalid input."}}

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Echoed input may be undecodable bytes and ctx may hold exceptions: both become text.
        problems = [_shortened(p) for p in exc.errors()]
        problems = jsonable_encoder(problems, custom_encoder={bytes: _text, BaseException: str})
        return JSONResponse(status_code=422, content={"detail": _one_line(problems), "errors": problems})

    @app.exception_handler(SeqembError)
    async def seqemb_error(_request: Request, exc: SeqembError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFoundError) else 422
        return JSONResponse(status_code=status, content={"detail": str(exc)})

    @app.get("/health", summary="Service status and the model it serves")
    async def health() -> Health:  # async: answered on the event loop, not behind the model's threads
        return Health(
            status="ok", model_path=app.state.model_path, n_items=recommender.n_items, n_users=recommender.n_users
        )

    @app.get("/recommend", summary="Top-k items for a user", responses=errors)
    def recommend(
        user_id: Annotated[Id, Query(description="The user's id (unknown users get popular items).")],
        k: K = 10,
        exclude_seen: Annotated[bool, Query(description="Leave out items the user already has.")] = True,
    ) -> RecommendationList:
        return _listing(recommender.recommend(user_id, k=k, exclude_seen=exclude_seen))

    @app.post("/recommend/session", summary="Top-k items for an anonymous session", responses=errors)
    def recommend_session(session: Annotated[SessionRequest, Body()]) -> RecommendationList:
        found = recommender.recommend_session(session.item_ids, k=session.k, exclude_seen=session.exclude_seen)
        return _listing(found)

    @app.get("/similar", summary="The k items most similar to an item", responses=errors)
    def similar(
        item_id: Annotated[Id, Query(description="The item's id.")],
        k: K = 10,
    ) -> RecommendationList:
        return _listing(recommender.similar_items(item_id, k=k))

    return app


def app_from_environment() -> FastAPI:
    """:func:`create_app` with the settings ``seqemb serve`` put in the environment (for uvicorn's
    worker processes); the API key comes from ``SEQEMB_API_KEY``."""
    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    return create_app(**settings, api_key=os.environ.get("SEQEMB_API_KEY") or None)


def _shortened(problem: dict[str, Any]) -> dict[str, Any]:
    """A validation problem quoting at most :data:`QUOTED_PREFIX` characters of the bad value."""
    value = problem.get("input")
    if isinstance(value, bytes):
        value = _text(value)
    if isinstance(value, str) and len(value) > QUOTED_PREFIX:
        return {**problem, "input": f"{value[:QUOTED_PREFIX]}... ({len(value)} long)"}
    if isinstance(value, (dict, list)):
        text = json.dumps(value, default=str)
        if len(text) > QUOTED_PREFIX:
            return {**problem, "input": f"{text[:QUOTED_PREFIX]}... ({len(text)} characters)"}
    return problem


def _listing(found: Recommendations) -> RecommendationList:
    items = [
        RecommendedItem(rank=rank, item_id=str(item), score=float(score))
        for rank, (item, score) in enumerate(zip(found.items, found.scores), start=1)
    ]
    return RecommendationList(items=items, fallback=found.fallback, unknown=[str(item) for item in found.unknown])


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _one_line(problems: list[dict[str, Any]]) -> str:
    """The first validation problem as ``query parameter 'k': Input should be ...`` (+ how many more)."""
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    if first.get("type") == "json_invalid":  # loc is ("body", character offset)
        reason = (first.get("ctx") or {}).get("error", "")
        return f"body: not valid JSON at character {first['loc'][-1]} ({reason}){more}"
    where, *path = first.get("loc") or ("request",)
    name = ".".join(str(part) for part in path)
    if where in ("query", "path", "header"):
        where = f"{where} parameter"
    place = f"{where} {name!r}" if name else where
    return f"{place}: {first.get('msg', 'invalid')}{more}"

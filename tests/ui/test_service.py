"""The HTTP service: answers match the library's, bad input is a 4xx with one clear line, never a 500."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from embeddings.errors import NotFoundError
from recsys.recommender import Recommender
from tests.recsys.test_batch import small_recommender
from ui.service import create_app


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_recommender(tmp_path_factory)  # integer user and item keys: the service matches their text


@pytest.fixture(scope="module")
def service(model_path: Path) -> FastAPI:
    return create_app(model_path)


@pytest.fixture(scope="module")
def client(service: FastAPI) -> TestClient:
    return TestClient(service, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def recommender(service: FastAPI) -> Recommender:
    return service.state.recommender


def _listing(found) -> list[dict]:
    return [
        {"rank": rank, "item_id": str(item), "score": pytest.approx(score)}
        for rank, (item, score) in enumerate(zip(found.items, found.scores), start=1)
    ]


def test_health(client: TestClient, recommender, model_path: Path) -> None:
    body = client.get("/health").json()
    assert body == {
        "status": "ok",
        "model_path": str(model_path),
        "n_items": recommender.n_items,
        "n_users": recommender.n_users,
    }


def test_recommend_answers_what_the_library_answers(client: TestClient, recommender) -> None:
    user = recommender.user_ids[3]
    got = client.get("/recommend", params={"user_id": str(user), "k": 5})
    assert got.status_code == 200, got.text
    expected = recommender.recommend(user, k=5)
    assert got.json() == {"items": _listing(expected), "fallback": None, "unknown": []}

    stranger = client.get("/recommend", params={"user_id": "nobody-knows-me", "k": 3}).json()
    assert stranger["fallback"] == "popularity"
    assert [item["rank"] for item in stranger["items"]] == [1, 2, 3]


def test_session_and_similar(client: TestClient, recommender) -> None:
    a, b = (str(item) for item in recommender.item_ids[:2])
    got = client.post("/recommend/session", json={"item_ids": [a, "no-such-item", b], "k": 4})
    assert got.status_code == 200, got.text
    expected = recommender.recommend_session([recommender.item_ids[0], "no-such-item", recommender.item_ids[1]], k=4)
    assert got.json() == {"items": _listing(expected), "fallback": None, "unknown": ["no-such-item"]}

    similar = client.get("/similar", params={"item_id": a, "k": 3})
    assert similar.status_code == 200, similar.text
    assert similar.json()["items"] == _listing(recommender.similar_items(recommender.item_ids[0], k=3))

    missing = client.get("/similar", params={"item_id": "no-such-item"})
    assert missing.status_code == 404
    assert "no-such-item" in missing.json()["detail"]


BAD_REQUESTS = [
    ("get", "/recommend", {"params": {}}, "query parameter 'user_id': Field required"),
    ("get", "/recommend", {"params": {"user_id": ""}}, "query parameter 'user_id': String should have at least 1"),
    ("get", "/recommend", {"params": {"user_id": "u" * 129}}, "query parameter 'user_id': String should have at most"),
    ("get", "/recommend", {"params": {"user_id": "u1", "k": 0}}, "query parameter 'k': Input should be greater than"),
    ("get", "/recommend", {"params": {"user_id": "u1", "k": 1001}}, "query parameter 'k': Input should be less than"),
    ("get", "/recommend", {"params": {"user_id": "u1", "k": -5}}, "query parameter 'k'"),
    (
        "get",
        "/recommend",
        {"params": {"user_id": "u1", "k": "ten"}},
        "query parameter 'k': Input should be a valid int",
    ),
    ("get", "/recommend", {"params": {"user_id": "u1", "k": "1.5"}}, "query parameter 'k'"),
    ("get", "/recommend", {"params": {"user_id": "u1", "k": "9" * 40}}, "query parameter 'k'"),
    ("get", "/recommend", {"params": {"user_id": "u1", "exclude_seen": "maybe"}}, "query parameter 'exclude_seen'"),
    ("get", "/similar", {"params": {"item_id": ""}}, "query parameter 'item_id'"),
    ("get", "/similar", {"params": {"item_id": "i1", "k": 0}}, "query parameter 'k'"),
    ("get", "/similar", {"params": {"item_id": "x" * 129}}, "query parameter 'item_id'"),
    ("post", "/recommend/session", {"json": {}}, "body 'item_ids': Field required"),
    ("post", "/recommend/session", {"json": {"item_ids": []}}, "body 'item_ids': List should have at least 1"),
    ("post", "/recommend/session", {"json": {"item_ids": "i1"}}, "body 'item_ids': Input should be a valid list"),
    ("post", "/recommend/session", {"json": {"item_ids": [""]}}, "body 'item_ids.0': String should have at least 1"),
    ("post", "/recommend/session", {"json": {"item_ids": [None]}}, "body 'item_ids.0'"),
    ("post", "/recommend/session", {"json": {"item_ids": [["i1"]]}}, "body 'item_ids.0'"),
    ("post", "/recommend/session", {"json": {"item_ids": ["i1"] * 1001}}, "body 'item_ids': List should have at most"),
    ("post", "/recommend/session", {"json": {"item_ids": ["i1"], "k": 0}}, "body 'k': Input should be greater than"),
    ("post", "/recommend/session", {"json": {"item_ids": ["i1"], "k": "x"}}, "body 'k'"),
    ("post", "/recommend/session", {"json": {"item_ids": ["i1"], "colour": 1}}, "body 'colour': Extra inputs"),
    ("post", "/recommend/session", {"json": ["i1"]}, "body: Input should be a valid dictionary"),
    ("post", "/recommend/session", {"content": b"{not json"}, "body"),
    (
        "post",
        "/recommend/session",
        {"content": b'{"item_ids": [1,', "headers": {"content-type": "application/json"}},
        "body: not valid JSON at character 16 (Expecting value)",
    ),
    (
        "post",
        "/recommend/session",
        {"json": {"item_ids": ["i1"], "k": True}},
        "body 'k': Input should be a valid integer",
    ),
    ("post", "/recommend/session", {"json": {"item_ids": ["i1"], "exclude_seen": "no"}}, "body 'exclude_seen'"),
    ("post", "/recommend/session", {"content": b"\xff\xfe\x00"}, "body"),
    ("post", "/recommend/session", {"content": b""}, "body"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "message"), BAD_REQUESTS)
def test_bad_input_is_a_422_with_one_clear_line(client: TestClient, method, path, kwargs, message) -> None:
    got = getattr(client, method)(path, **kwargs)
    assert got.status_code == 422, got.text
    detail = got.json()["detail"]
    assert detail.startswith(message), detail
    assert "\n" not in detail


def test_odd_ids_are_answered_not_crashed_on(client: TestClient) -> None:
    odd = ["-1", "0", "9" * 30, "--5", "²", "1e3", " ", "é", "\x00", "'; drop table runs; --", "%", "../../etc/passwd"]
    for text in odd:
        assert client.get("/recommend", params={"user_id": text}).status_code == 200, text
        assert client.get("/similar", params={"item_id": text}).status_code == 404, text
    session = client.post("/recommend/session", json={"item_ids": [*odd, 12]})  # 12: a JSON number is an id too
    assert session.status_code == 200, session.text
    assert session.json()["unknown"] == odd
    assert session.json()["fallback"] is None


def test_openapi_schema_documents_the_endpoints(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "seqemb recommendations"
    assert set(schema["paths"]) == {"/health", "/recommend", "/recommend/session", "/similar"}
    k = next(p for p in schema["paths"]["/recommend"]["get"]["parameters"] if p["name"] == "k")
    assert (k["schema"]["minimum"], k["schema"]["maximum"]) == (1, 1000)
    assert {"RecommendationList", "RecommendedItem", "Health", "SessionRequest"} <= set(schema["components"]["schemas"])


def test_a_missing_model_fails_at_start_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not a recommender directory"):
        create_app(tmp_path / "nothing")


def test_a_422_quotes_only_a_short_prefix_of_the_bad_value(client: TestClient) -> None:
    got = client.get("/similar", params={"item_id": "x" * 5000})
    assert got.status_code == 422 and len(got.content) < 1000, len(got.content)
    assert got.json()["errors"][0]["input"].startswith("x" * 64 + "... (5000 long)")


def test_long_urls_big_bodies_and_missing_keys_are_refused_before_the_model(model_path: Path) -> None:
    client = TestClient(create_app(model_path, api_key="s3cret"), raise_server_exceptions=False)
    key = {"X-API-Key": "s3cret"}
    assert client.get("/health").status_code == 200  # probes need no key
    assert client.get("/recommend", params={"user_id": "1"}).status_code == 401
    assert client.get("/recommend", params={"user_id": "1"}, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/recommend", params={"user_id": "1"}, headers=key).status_code == 200
    assert (
        client.get("/recommend", params={"user_id": "1"}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    )
    long_url = client.get("/similar", params={"item_id": "x" * 9000}, headers=key)
    assert long_url.status_code == 414 and long_url.json()["detail"].startswith("URL of 90")
    body = b'{"item_ids": ["' + b"i" * 300_000 + b'"]}'
    big = client.post("/recommend/session", content=body, headers={**key, "content-type": "application/json"})
    assert (big.status_code, big.json()) == (413, {"detail": "request body over 262144 bytes"})
    streamed = client.post("/recommend/session", content=iter([body[:200_000], body[200_000:]]), headers=key)
    assert streamed.status_code == 413  # no Content-Length: counted as it arrives


def test_beyond_max_in_flight_a_request_gets_503_at_once_and_health_still_answers(model_path: Path) -> None:
    app = create_app(model_path, threads=1, max_in_flight=1)
    client = TestClient(app, raise_server_exceptions=False)
    entered, release = threading.Event(), threading.Event()
    recommend = app.state.recommender.recommend

    def held(*args, **kwargs):
        entered.set()
        release.wait(30)
        return recommend(*args, **kwargs)

    app.state.recommender.recommend = held
    first: list = []
    worker = threading.Thread(target=lambda: first.append(client.get("/recommend", params={"user_id": "1"})))
    worker.start()
    try:
        assert entered.wait(30)
        refused = client.get("/recommend", params={"user_id": "2"})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert client.get("/health").status_code == 200
    finally:
        release.set()
        worker.join()
        app.state.recommender.recommend = recommend
    assert first[0].status_code == 200
    assert client.get("/recommend", params={"user_id": "2"}).status_code == 200  # capacity is back


def test_serve_on_all_interfaces_without_an_api_key_exits_with_one_line(model_path: Path) -> None:
    bad = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ui.cli import main; main()",
            "serve",
            "--model",
            str(model_path),
            "--host",
            "0.0.0.0",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={k: v for k, v in os.environ.items() if k != "SEQEMB_API_KEY"},
        timeout=60,
    )
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith("error: refusing to serve the recommendation service on 0.0.0.0 without an API key")

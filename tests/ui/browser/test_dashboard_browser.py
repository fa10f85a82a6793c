"""The dashboard in headless Chromium over a small demo store: every tab loads with data and no
error toast, a user search, an alert's timeline, the threshold slider, and a label written to the
store. A screenshot of each tab goes under the test's temp dir."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from fraud.labels import read_labels

IDLE = """() => [...document.querySelectorAll('[data-testid="status-tracker"]')]
    .every(e => e.classList.contains('hide') || e.offsetParent === null)"""


def idle(page) -> None:
    """Wait until no visible component is waiting for the server."""
    page.wait_for_timeout(150)  # let a just-fired event reach its pending state
    page.wait_for_function(IDLE)


def no_problems(page) -> None:
    """No error toast on screen and no page or console error."""
    toasts = page.locator('[data-testid="toast-body"].error')
    assert toasts.count() == 0, toasts.all_inner_texts()
    assert page.problems == []


def table_rows(page, elem_id: str) -> list[list[str]]:
    """The body cells of a Dataframe's rendered rows (the table is virtual: the rows in view), as text."""
    rows = page.locator(f"#{elem_id} .virtual-row")
    return [[c.strip() for c in rows.nth(i).get_by_role("gridcell").all_inner_texts()] for i in range(rows.count())]


def wait_first_cell(page, elem_id: str, text: str) -> None:
    """Wait until the Dataframe's first rendered row starts with ``text``."""
    page.wait_for_function(
        "([id, text]) => { const r = document.querySelector('#' + id + ' .virtual-row');"
        " return r !== null && r.innerText.trim().startsWith(text); }",
        arg=[elem_id, text],
    )


def wait_filled(page, elem_id: str) -> None:
    """Wait until the Dataframe shows a row with text in it."""
    page.wait_for_function(
        "id => [...document.querySelectorAll('#' + id + ' .virtual-row')].some(r => r.innerText.trim())", arg=elem_id
    )
    idle(page)


def drawn(page, elem_id: str) -> None:
    """Wait until the plot ``elem_id`` has drawn (a canvas or svg in it): the plot renders after its
    tab's tables, later still on a loaded machine."""
    page.wait_for_selector(f"#{elem_id} canvas, #{elem_id} svg", state="attached")


def table_header(page, elem_id: str) -> list[str]:
    return [h.strip() for h in page.locator(f"#{elem_id} thead th").all_inner_texts()]


def not_empty(page, *elem_ids: str) -> None:
    for elem_id in elem_ids:
        assert table_rows(page, elem_id), f"#{elem_id} is empty"


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    idle(page)


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def test_overview_shows_counts_runs_and_last_jobs(page, demo, tmp_path: Path) -> None:
    store, _ = demo
    idle(page)
    counts = dict((row[0], row[1]) for row in table_rows(page, "overview-counts"))
    assert counts["transactions"] == str(store.count("transactions"))
    assert counts["alerts"] == str(store.count("alerts"))
    kinds = {row[0] for row in table_rows(page, "overview-latest")}
    assert {"synthetic", "item2vec", "node2vec", "recommender", "recommend", "fraud_model", "score"} <= kinds
    runs = table_rows(page, "overview-runs")
    assert runs and all(row[2] == "succeeded" for row in runs)
    assert {row[1] for row in runs} <= kinds
    shot(page, tmp_path, "overview")
    no_problems(page)


def test_alerts_threshold_timeline_and_label(page, demo, tmp_path: Path) -> None:
    store, result = demo
    open_tab(page, "Alerts")
    header = table_header(page, "alerts-table")
    rows = table_rows(page, "alerts-table")
    total = store.count("alerts", {"run_id": result.score_run})
    assert (
        rows and f"page 1 of {-(-total // 25)} · {total:,} alerts match" in page.locator("#alerts-paging").inner_text()
    )
    scores = [float(row[header.index("score")]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    drawn(page, "alerts-histogram")

    # The threshold slider says how many alerts it would raise.
    raised = page.locator("#alerts-would-raise")
    assert re.search(rf"\b{store.count('alerts', {'run_id': result.score_run}):,} alerts\b", raised.inner_text())
    page.locator("#alerts-threshold input[type=number]").fill("0.99")
    page.locator("#alerts-threshold input[type=number]").press("Enter")
    idle(page)
    scores = store.read("fraud_scores", where={"run_id": result.score_run}, columns=["score"])["score"]
    expected = int((scores >= 0.99).sum())
    page.wait_for_function(
        "n => document.querySelector('#alerts-would-raise').innerText.includes(n + ' alerts')", arg=f"{expected:,}"
    )

    # Filter by a card, then click its alert: the timeline opens with data in every panel.
    card, txn = rows[0][header.index("card_id")], rows[0][header.index("txn_id")]
    page.locator("#alerts-card textarea, #alerts-card input").first.fill(card)
    page.locator("#alerts-apply").click()
    idle(page)
    assert {row[header.index("card_id")] for row in table_rows(page, "alerts-table")} == {card}
    page.locator("#alerts-table .virtual-row").filter(has_text=txn).first.get_by_role("gridcell").first.click()
    idle(page)
    wait_filled(page, "alert-top-steps")
    assert txn in page.get_by_text("Alert on card").inner_text()
    not_empty(page, "alert-top-steps", "alert-drivers", "alert-similar")
    drawn(page, "alert-errors")

    # Mark it confirmed fraud: the label and the alert's new status are in the store.
    alert_id = page.locator("#alert-id textarea, #alert-id input").first.input_value()
    page.locator("#label-note textarea, #label-note input").first.fill("seen in the browser test")
    page.locator("#label-fraud").click()
    page.wait_for_function("() => document.querySelector('#label-result').innerText.includes('Labelled')")
    labels = read_labels(store).filter(pl.col("alert_id") == alert_id)
    assert labels.select("txn_id", "card_id", "label", "note").row(0) == (
        txn,
        card,
        "fraud",
        "seen in the browser test",
    )
    assert store.read("alerts", where={"alert_id": alert_id})["status"][0] == "confirmed"
    idle(page)
    status = table_header(page, "alerts-table").index("status")
    assert table_rows(page, "alerts-table")[0][status] == "confirmed"
    shot(page, tmp_path, "alerts")
    no_problems(page)


def test_planted_takeover_steps_have_the_highest_errors_in_the_timeline(page, demo) -> None:
    """The alert with the highest score on a planted account-takeover step: its timeline's
    most anomalous steps are the card's planted takeover steps."""
    store, result = demo
    fraud = result.world.transactions.select("txn_id", "fraud_kind")
    alerts = store.read("alerts", where={"run_id": result.score_run}).join(fraud, on="txn_id")
    top = (
        alerts.filter(pl.col("fraud_kind") == "account_takeover")
        .sort("score", "alert_id", descending=True)
        .row(0, named=True)
    )
    open_tab(page, "Alerts")
    page.locator("#alert-id textarea, #alert-id input").first.fill(top["alert_id"])
    page.locator("#alert-open").click()
    wait_filled(page, "alert-top-steps")
    idle(page)
    header = table_header(page, "alert-top-steps")
    shown = table_rows(page, "alert-top-steps")
    kinds = [row[header.index("fraud_kind")] for row in shown]
    scores = [float(row[header.index("score")]) for row in shown]
    assert scores == sorted(scores, reverse=True)
    assert kinds[0] == "account_takeover"
    assert kinds[:3].count("account_takeover") >= 2, kinds
    no_problems(page)


def test_recommendations_for_a_searched_user(page, demo, tmp_path: Path) -> None:
    store, result = demo
    user = result.world.users["user_id"][3]
    open_tab(page, "Recommendations")
    page.locator("#recs-user textarea, #recs-user input").first.fill(user[:-1])
    page.locator("#recs-search").click()
    wait_filled(page, "recs-top")
    idle(page)
    matches = [row[0] for row in table_rows(page, "recs-matches")]
    assert matches and all(m.startswith(user[:-1]) for m in matches)
    page.locator("#recs-matches .virtual-row").filter(has_text=user).first.get_by_role("gridcell").first.click()
    page.wait_for_function("u => document.querySelector('#recs-headline').innerText.includes(u)", arg=user)
    idle(page)
    header = table_header(page, "recs-top")
    top = table_rows(page, "recs-top")
    expected = result.recommender.recommend(user, k=10)
    assert [row[header.index("item_id")] for row in top] == [str(i) for i in expected.items]
    positions = [row[header.index("retrieval position")] for row in top]
    assert all(p.isdigit() for p in positions)
    history = {row[1] for row in table_rows(page, "recs-history")}
    assert {row[header.index("because")] for row in top} <= history
    not_empty(page, "recs-history", "recs-stored")
    shot(page, tmp_path, "recommendations")
    no_problems(page)


def test_embeddings_neighbours_analogy_and_map(page, demo, tmp_path: Path) -> None:
    store, result = demo
    open_tab(page, "Embeddings")
    wait_filled(page, "emb-neighbours")
    drawn(page, "emb-map")
    items = result.items
    page.get_by_label("model").first.click()
    page.get_by_role("option", name=re.compile("sessions")).click()
    idle(page)
    item = str(items.embeddings.keys[0])
    page.locator("#emb-key textarea, #emb-key input").first.fill(item)
    page.locator("#emb-go").click()
    expected = [str(key) for key, _ in items.similar(item, 10)]
    wait_first_cell(page, "emb-neighbours", expected[0])  # the old table stays until the new one arrives
    assert [row[0] for row in table_rows(page, "emb-neighbours")] == expected
    a, b, c = (str(k) for k in items.embeddings.keys[:3])
    page.locator("#emb-positive textarea, #emb-positive input").first.fill(f"{b} {c}")
    page.locator("#emb-negative textarea, #emb-negative input").first.fill(a)
    page.locator("#emb-analogy").click()
    wait_filled(page, "emb-analogy-table")
    page.get_by_label("fraud label").check()
    idle(page)
    shot(page, tmp_path, "embeddings")
    no_problems(page)


def test_graph_neighbourhood_is_drawn_with_node2vec_neighbours(page, demo, tmp_path: Path) -> None:
    store, result = demo
    open_tab(page, "Graph")
    card = result.world.transactions["card_id"][0]
    page.locator("#graph-node textarea, #graph-node input").first.fill(card)
    page.locator("#graph-draw").click()
    page.wait_for_function("c => document.querySelector('#graph-headline').innerText.includes('card:' + c)", arg=card)
    idle(page)
    merchants = result.world.transactions.filter(pl.col("card_id") == card)["merchant_id"].n_unique()
    assert page.locator("#graph-svg svg circle").count() > min(merchants, 25)
    assert page.locator("#graph-svg svg line").count() >= min(merchants, 25)
    neighbours = [row[0] for row in table_rows(page, "graph-similar")]
    assert neighbours == [str(k) for k, _ in result.graph.similar(f"card:{card}", 15)]
    shot(page, tmp_path, "graph")
    no_problems(page)


def test_an_empty_store_loads_every_tab_without_errors(browser, empty_dashboard: str) -> None:
    """Before any job ran: every tab loads, says what is missing, and raises no error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.problems = []
        page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
        page.goto(empty_dashboard)
        page.wait_for_selector("#overview-runs table")
        idle(page)
        for tab in ("Alerts", "Recommendations", "Embeddings", "Graph"):
            open_tab(page, tab)
        assert "No scoring run in the store yet" in page.locator("#alerts-would-raise").inner_text()
        no_problems(page)
    finally:
        context.close()

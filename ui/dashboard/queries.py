"""Paged, parameterised SQL reads of the store for the dashboard (SQLAlchemy Core, no raw SQL).

Every read that can grow with the store is bounded: tables come one page at a time
(``LIMIT``/``OFFSET``), counts and histograms are aggregated in the database, and lookups take
an explicit ``limit``. Ids typed by an analyst travel as bound parameters only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
from sqlalchemy import Select, and_, case, desc, func, or_, select

from embeddings.checks import check_int
from embeddings.errors import ConfigError
from embeddings.graph.transactions import CARD_PREFIX, plain_ids
from embeddings.store import Store
from fraud.labels import read_labels
from fraud.score_counts import SCORE_EDGES, scores_at_least

PAGE_SIZE = 25
ALERT_SORTS = {"score, highest first": "-score", "newest first": "-ts", "oldest first": "ts"}


@dataclass(frozen=True)
class AlertFilter:
    """What the alerts table shows: one score run's alerts at or above ``min_score``, optionally
    of one card, merchant, kind and status, with the transaction time in ``[since, until)``."""

    run_id: str | None = None
    min_score: float = 0.0
    since: datetime | None = None
    until: datetime | None = None
    card_id: str | None = None
    merchant_id: str | None = None
    kind: str | None = None
    status: str | None = None


def parse_day(text: str | None, name: str) -> datetime | None:
    """``YYYY-MM-DD`` (or a full ISO time) as a datetime; empty -> None; ConfigError naming ``name``."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None


def _page(page: int, size: int) -> tuple[int, int]:
    check_int("page", page)
    check_int("page size", size)
    return size, (page - 1) * size


# ---------------------------------------------------------------------------------- overview


def overview_counts(store: Store) -> dict[str, int]:
    """Rows of the main tables, distinct users, open alerts and analyst labels."""
    events = store.table("events")
    with store.engine.connect() as conn:
        users = conn.execute(select(func.count(func.distinct(events.c.user_id)))).scalar_one()
    counts = {name: store.count(name) for name in ("events", "items", "cards", "merchants", "transactions")}
    return {
        **counts,
        "users": int(users),
        "alerts": store.count("alerts"),
        "open alerts": store.count("alerts", {"status": "open"}),
        "labels": store.count("labels"),
    }


def runs_page(store: Store, page: int = 1, size: int = PAGE_SIZE) -> pl.DataFrame:
    """One page of runs, newest first: started, kind, status, seconds, metrics (JSON text), run id."""
    limit, offset = _page(page, size)
    frame = store.read(
        "runs",
        order_by=["-started_at", "run_id"],
        limit=limit,
        offset=offset,
        columns=["started_at", "kind", "status", "finished_at", "metrics", "error", "run_id"],
    )
    return frame.select(
        pl.col("started_at").dt.strftime("%Y-%m-%d %H:%M:%S").alias("started"),
        "kind",
        "status",
        (pl.col("finished_at") - pl.col("started_at")).dt.total_milliseconds().truediv(1000).round(1).alias("seconds"),
        pl.coalesce("error", "metrics").alias("metrics / error"),
        "run_id",
    )


def latest_runs(store: Store) -> pl.DataFrame:
    """The newest run of each kind: kind, status, started, finished."""
    runs = store.table("runs")
    newest = select(runs.c.kind, func.max(runs.c.started_at).label("at")).group_by(runs.c.kind).subquery()
    stmt = (
        select(runs.c.kind, runs.c.status, runs.c.started_at, runs.c.finished_at)
        .join(newest, and_(runs.c.kind == newest.c.kind, runs.c.started_at == newest.c.at))
        .order_by(desc(runs.c.started_at))
    )
    return store.read_sql(stmt)


def score_runs(store: Store, limit: int = 50) -> list[tuple[str, str]]:
    """Succeeded ``score`` runs, newest first, as ``(label, run id)`` dropdown choices."""
    return [
        (f"{run['started_at']:%Y-%m-%d %H:%M} · {run['run_id'][:8]}", run["run_id"])
        for run in store.runs("score", status="succeeded", limit=limit)
    ]


# ---------------------------------------------------------------------------------- alerts


def _alert_conditions(store: Store, where: AlertFilter) -> list:
    """WHERE clauses on the alerts table alone (a merchant is looked up among its transactions), so
    a filter is served by the alerts indexes (run and score, run and time, run and card)."""
    alerts, txns = store.table("alerts"), store.table("transactions")
    clauses = [alerts.c.score >= float(where.min_score)]
    pairs = (
        (alerts.c.run_id, where.run_id),
        (alerts.c.card_id, where.card_id),
        (alerts.c.kind, where.kind),
        (alerts.c.status, where.status),
    )
    clauses += [column == value for column, value in pairs if value]
    if where.merchant_id:
        clauses.append(alerts.c.txn_id.in_(select(txns.c.txn_id).where(txns.c.merchant_id == where.merchant_id)))
    if where.since is not None:
        clauses.append(alerts.c.ts >= where.since)
    if where.until is not None:
        clauses.append(alerts.c.ts < where.until)
    return clauses


def alerts_page(
    store: Store, where: AlertFilter, page: int = 1, size: int = PAGE_SIZE, sort: str = "-score"
) -> tuple[pl.DataFrame, int]:
    """One page of alerts matching ``where`` with their transaction, and how many match in all.

    Columns: alert_id, score, status, kind, card_id, merchant_id, amount, ts, txn_id.
    ``sort``: ``-score``, ``-ts`` or ``ts`` (ties broken by alert id, so pages are stable).
    """
    page_stmt, count_stmt = alerts_page_statements(store, where, page, size, sort)
    with store.engine.connect() as conn:
        total = conn.execute(count_stmt).scalar_one()
    return store.read_sql(page_stmt), int(total)


def alerts_page_statements(
    store: Store, where: AlertFilter, page: int = 1, size: int = PAGE_SIZE, sort: str = "-score"
) -> tuple[Select, Select]:
    """The two queries of :func:`alerts_page`: the page, and the count of matches. The page is
    chosen on the alerts table alone; only its rows are joined to their transactions."""
    limit, offset = _page(page, size)
    alerts, txns = store.table("alerts"), store.table("transactions")
    clauses = _alert_conditions(store, where)
    keys = {"-score": lambda t: t.c.score.desc(), "-ts": lambda t: t.c.ts.desc(), "ts": lambda t: t.c.ts.asc()}
    key = keys.get(sort)
    if key is None:
        raise ConfigError(f"sort must be one of -score, -ts, ts; got {sort!r}")
    shown = ("alert_id", "score", "status", "kind", "card_id", "ts", "txn_id")
    chosen = (
        select(*(alerts.c[name] for name in shown))
        .where(*clauses)
        .order_by(key(alerts), alerts.c.alert_id)
        .limit(limit)
        .offset(offset)
        .subquery()
    )
    page_stmt = (
        select(
            chosen.c.alert_id,
            chosen.c.score,
            chosen.c.status,
            chosen.c.kind,
            chosen.c.card_id,
            txns.c.merchant_id,
            txns.c.amount,
            func.coalesce(chosen.c.ts, txns.c.ts).label("ts"),  # alerts written before they carried ts
            chosen.c.txn_id,
        )
        .select_from(chosen.outerjoin(txns, chosen.c.txn_id == txns.c.txn_id))
        .order_by(key(chosen), chosen.c.alert_id)
    )
    return page_stmt, select(func.count()).select_from(alerts).where(*clauses)


def alert_kinds(store: Store) -> list[str]:
    """The kinds of alert in the store (a handful of values)."""
    alerts = store.table("alerts")
    return store.read_sql(select(alerts.c.kind).distinct().order_by(alerts.c.kind))["kind"].to_list()


def get_alert(store: Store, alert_id: str) -> dict | None:
    """One alert with its run id, transaction and card, or None."""
    frame = store.read("alerts", where={"alert_id": alert_id}, limit=1)
    return frame.row(0, named=True) if frame.height else None


def score_histogram(store: Store, run_id: str, threshold: float) -> pl.DataFrame:
    """Counts of the run's scores between consecutive edges (:data:`SCORE_EDGES` plus ``threshold``).

    The run's recorded counts (:mod:`fraud.score_counts`), plus one count of the scores at or
    above ``threshold``. Columns: ``bucket`` (label ``"[lo, hi)"``), ``lower``, ``count``,
    ``log10(1 + count)`` (the bar height: the flagged tail is thousands of times rarer) and
    ``flagged`` ("flagged" when the bucket lies at or above the threshold, else "normal").
    """
    edges = sorted({*SCORE_EDGES, round(float(threshold), 6)})
    at_least = scores_at_least(store, run_id, edges)
    above = [at_least[edge] for edge in edges] + [0]  # scores >= each edge, then nothing above 1
    counts = [above[i] - above[i + 1] for i in range(len(edges))]
    uppers = edges[1:] + [1.0]
    return pl.DataFrame(
        {
            "bucket": [f"[{lo:g}, {hi:g}{']' if hi == 1.0 else ')'}" for lo, hi in zip(edges, uppers)],
            "lower": edges,
            "count": counts,
            "log10(1 + count)": np.log10(1.0 + np.array(counts, dtype=np.float64)),
            "flagged": ["flagged" if lo >= threshold else "normal" for lo in edges],
        }
    )


# ---------------------------------------------------------------------------------- cards and frauds


def card_transactions(store: Store, card_id: str, limit: int = 2000) -> pl.DataFrame:
    """The card's newest ``limit`` transactions, oldest first (all store columns)."""
    txns = store.table("transactions")
    newest = select(txns).where(txns.c.card_id == card_id).order_by(txns.c.ts.desc(), txns.c.txn_id.desc())
    frame = store.read_sql(newest.limit(limit))
    return frame.reverse()


def confirmed_frauds(store: Store, limit: int = 1000) -> pl.DataFrame:
    """Known frauds, newest first: analyst labels 'fraud' and transactions flagged ``is_fraud``.

    Columns ``txn_id, card_id, ts, fraud_kind, source`` ("analyst" or "data"); an analyst's latest verdict
    wins, so a transaction an analyst called genuine is left out.
    """
    txns = store.table("transactions")
    verdicts = read_labels(store)  # the one rule for which label wins: fraud.labels
    analyst_frauds = verdicts.filter(pl.col("is_fraud") == 1)["txn_id"].to_list()
    from_data = txns.c.is_fraud.is_(True)
    if verdicts.height:
        from_data = and_(from_data, txns.c.txn_id.not_in(verdicts["txn_id"].to_list()))
    known = or_(txns.c.txn_id.in_(analyst_frauds), from_data) if analyst_frauds else from_data
    stmt = (
        select(txns.c.txn_id, txns.c.card_id, txns.c.ts, txns.c.fraud_kind)
        .where(known)
        .order_by(txns.c.ts.desc(), txns.c.txn_id)
        .limit(limit)
    )
    source = pl.when(pl.col("txn_id").is_in(analyst_frauds)).then(pl.lit("analyst")).otherwise(pl.lit("data"))
    return store.read_sql(stmt).with_columns(source=source)


def transactions_of_cards(store: Store, cards: list[str], limit: int = 200_000) -> pl.DataFrame:
    """Transactions of ``cards`` (at most ``limit`` rows, each card's newest kept first)."""
    txns = store.table("transactions")
    stmt = select(txns).where(txns.c.card_id.in_(cards)).order_by(txns.c.ts.desc()).limit(limit)
    return store.read_sql(stmt).sort(["card_id", "ts"])


# ---------------------------------------------------------------------------------- users and items


def search_users(store: Store, text: str, limit: int = 20) -> pl.DataFrame:
    """Users whose id starts with ``text`` (exact match first): user_id, events."""
    events = store.table("events")
    text = text.strip()
    pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    stmt = (
        select(events.c.user_id, func.count().label("events"))
        .where(events.c.user_id.like(pattern, escape="\\"))
        .group_by(events.c.user_id)
        .order_by((events.c.user_id != text), events.c.user_id)
        .limit(limit)
    )
    return store.read_sql(stmt)


def user_history(store: Store, user_id: str, limit: int = 50) -> pl.DataFrame:
    """The user's newest ``limit`` events, oldest first, with item name and category."""
    events, items = store.table("events"), store.table("items")
    stmt = (
        select(events.c.ts, events.c.item_id, items.c.name, items.c.category)
        .select_from(events.outerjoin(items, events.c.item_id == items.c.item_id))
        .where(events.c.user_id == user_id)
        .order_by(events.c.ts.desc())
        .limit(limit)
    )
    return store.read_sql(stmt).reverse()


def stored_recommendations(store: Store, user_id: str) -> pl.DataFrame:
    """The user's top-K from the newest succeeded ``recommend`` run: rank, item_id, score."""
    runs = store.runs("recommend", status="succeeded", limit=1)
    if not runs:
        return pl.DataFrame(schema={"rank": pl.Int64, "item_id": pl.String, "score": pl.Float64})
    return store.read(
        "recommendations",
        where={"run_id": runs[0]["run_id"], "user_id": user_id},
        order_by="rank",
        columns=["rank", "item_id", "score"],
    )


def describe_keys(store: Store, keys: list[str]) -> pl.DataFrame:
    """For embedding keys (items, merchants, ``card:``/``merchant:`` graph nodes): ``key, name,
    category, fraud`` where ``fraud`` is "fraud" for a card with a known fraud or a merchant
    whose known frauds are the majority of its transactions, "genuine" otherwise."""
    frame = pl.DataFrame({"key": pl.Series(keys, dtype=pl.String)}).with_columns(
        id=plain_ids(pl.col("key")),
        is_card=pl.col("key").str.starts_with(CARD_PREFIX),
    )
    ids = frame["id"].unique().to_list()
    items, merchants, txns = store.table("items"), store.table("merchants"), store.table("transactions")
    named = pl.concat(
        [
            store.read_sql(
                select(items.c.item_id.label("id"), items.c.name, items.c.category).where(items.c.item_id.in_(ids))
            ),
            store.read_sql(
                select(merchants.c.merchant_id.label("id"), merchants.c.name, merchants.c.category).where(
                    merchants.c.merchant_id.in_(ids)
                )
            ),
        ]
    ).unique("id")
    fraud_share = func.avg(case((txns.c.is_fraud.is_(True), 1.0), else_=0.0))
    fraud_merchants = store.read_sql(
        select(txns.c.merchant_id.label("id"))
        .where(txns.c.merchant_id.in_(ids))
        .group_by(txns.c.merchant_id)
        .having(fraud_share > 0.5)
    )["id"]
    fraud_cards = store.read_sql(
        select(txns.c.card_id.label("id")).where(txns.c.card_id.in_(ids), txns.c.is_fraud.is_(True)).distinct()
    )["id"]
    return (
        frame.join(named, on="id", how="left", maintain_order="left")
        .with_columns(
            category=pl.when(pl.col("is_card")).then(pl.lit("card")).otherwise(pl.col("category").fill_null("-")),
            name=pl.col("name").fill_null(pl.col("id")),
            fraud=pl.when(
                (pl.col("is_card") & pl.col("id").is_in(fraud_cards.implode()))
                | (~pl.col("is_card") & pl.col("id").is_in(fraud_merchants.implode()))
            )
            .then(pl.lit("fraud"))
            .otherwise(pl.lit("genuine")),
        )
        .select("key", "name", "category", "fraud")
    )


# ---------------------------------------------------------------------------------- graph


def card_merchant_edges(store: Store, card_id: str | None, merchant_id: str | None, limit: int = 25) -> pl.DataFrame:
    """Edges of the transaction graph around one card or merchant: ``card_id, merchant_id, n, frauds``.

    Around a card: its ``limit`` most used merchants, and for each of those the ``limit // 5``
    other cards that use it most. Around a merchant: its ``limit`` heaviest cards and their
    ``limit // 5`` most used other merchants each. Aggregated in SQL, bounded by ``limit``.
    """
    if (card_id is None) == (merchant_id is None):
        raise ConfigError("give either a card or a merchant")
    txns = store.table("transactions")
    centre, other = (txns.c.card_id, txns.c.merchant_id) if card_id else (txns.c.merchant_id, txns.c.card_id)
    n, frauds = func.count().label("n"), func.sum(case((txns.c.is_fraud.is_(True), 1), else_=0)).label("frauds")
    first = store.read_sql(
        select(txns.c.card_id, txns.c.merchant_id, n, frauds)
        .where(centre == (card_id or merchant_id))
        .group_by(txns.c.card_id, txns.c.merchant_id)
        .order_by(desc("n"))
        .limit(limit)
    )
    ring = first[other.name].to_list()
    second = store.read_sql(
        select(txns.c.card_id, txns.c.merchant_id, n, frauds)
        .where(other.in_(ring), centre != (card_id or merchant_id))
        .group_by(txns.c.card_id, txns.c.merchant_id)
        .order_by(desc("n"))
        .limit(limit * max(limit // 5, 1) * 4)
    )
    second = second.sort("n", descending=True).group_by(other.name, maintain_order=True).head(max(limit // 5, 1))
    return pl.concat([first, second.select(first.columns)]).with_columns(pl.col("frauds").cast(pl.Int64))

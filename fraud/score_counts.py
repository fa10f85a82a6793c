"""How many of a score run's calibrated scores reach each threshold: the counts behind the alerts
tab's histogram and its "this threshold would raise N alerts" line.

A score run records its counts at :data:`SCORE_EDGES` in its metrics when it finishes
(``score_edges``, ``scores_at_least``), so the dashboard never aggregates a run's millions of
scores; any other threshold is one count over the scores above it, which the
``(run_id, score)`` index of ``fraud_scores`` serves.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import case, func, select

from embeddings.store import Store

# 0, then 1 - 10^(-j/2) for j = 1 .. 8 (0.68 .. 0.9999): the flagged tail is thousands of times rarer.
SCORE_EDGES = (0.0, *(round(1.0 - 10.0 ** (-j / 2), 6) for j in range(1, 9)))


def count_scores_at_least(store: Store, run_id: str, edges: Sequence[float]) -> list[int]:
    """The run's scores >= each of ``edges``, in one query over the scores >= the lowest edge."""
    if not edges:
        return []
    scores = store.table("fraud_scores")
    counts = [func.sum(case((scores.c.score >= float(edge), 1), else_=0)) for edge in edges]
    stmt = select(*counts).where(scores.c.run_id == run_id, scores.c.score >= float(min(edges)))
    with store.engine.connect() as conn:
        return [int(value or 0) for value in conn.execute(stmt).one()]


def recorded_counts(store: Store, run_id: str) -> dict[str, list]:
    """The metrics a finished score run records: ``score_edges`` and ``scores_at_least``."""
    return {"score_edges": list(SCORE_EDGES), "scores_at_least": count_scores_at_least(store, run_id, SCORE_EDGES)}


def scores_at_least(store: Store, run_id: str, edges: Sequence[float]) -> dict[float, int]:
    """``{edge: the run's scores >= edge}``: the run's recorded counts where it has them, one
    query for the other edges."""
    metrics = store.get_run(run_id)["metrics"] or {}
    known = dict(zip(metrics.get("score_edges") or (), metrics.get("scores_at_least") or ()))
    missing = [edge for edge in edges if edge not in known]
    known.update(zip(missing, count_scores_at_least(store, run_id, missing)))
    return {edge: known[edge] for edge in edges}

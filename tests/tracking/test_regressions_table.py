"""The regressions table: queries whose primary measure dropped most since the baseline, worst first."""

from __future__ import annotations

import numpy as np

from hf_search_wandb.core.evaluation.results import RetrievalResult
from hf_search_wandb.tracking.tables import regression_rows

CORPUS = {"d1": "one", "d2": "two", "d3": "three", "d4": "four"}
QUERIES = {"q1": "first", "q2": "second", "q3": "third", "q4": "fourth"}


def result() -> RetrievalResult:
    return RetrievalResult(
        metrics={}, query_ids=["q1", "q2", "q3", "q4"], doc_ids=["d1", "d2", "d3", "d4"],
        top_indices=np.array([[1, 0], [2, 3], [3, 2], [0, 1]]), top_scores=np.ones((4, 2), dtype=np.float32),
        relevant_ranks={"q1": {"d1": 2}, "q2": {"d1": 4}, "q3": {"d3": 2}, "q4": {"d1": 1}},
        positive_scores=np.ones(4), negative_scores=np.ones(4), timings={},
    )  # fmt: skip


def test_worst_first_with_ranks_and_the_displacing_document() -> None:
    before_ranks = {"q1": {"d1": 1}, "q2": {"d1": 2}, "q3": {"d3": 3}, "q4": {"d1": 1}}
    before = np.array([1.0, 0.6, 0.5, 1.0])
    after = np.array([0.5, 0.0, 0.5, np.nan])  # q3 unchanged, q4 not compared
    rows = regression_rows(result(), before_ranks, before, after, QUERIES, CORPUS)
    assert rows == [
        # q2: its relevant doc went from rank 2 to 4 (beyond the kept depth 2); d4 now holds rank 2
        ["second", "one", 2, 4, "four", 0.6, 0.0, -0.6],
        # q1: d1 went from 1 to 2; d2 is now first
        ["first", "one", 1, 2, "two", 1.0, 0.5, -0.5],
    ]


def test_unknown_ranks_and_the_row_cap() -> None:
    before_ranks = {"q1": {"d1": 5}, "q2": {}}  # q1's old rank beyond the depth: the new top-1 displaced it
    before = np.array([0.3, 0.2, 0.0, 0.0])
    after = np.array([0.0, 0.1, 0.0, 0.0])
    rows = regression_rows(result(), before_ranks, before, after, QUERIES, CORPUS)
    assert [r[:5] for r in rows] == [
        ["first", "one", 5, 2, "two"],
        ["second", "", "not in top-2", "not in top-2", "three"],
    ]
    assert len(regression_rows(result(), before_ranks, before, after, QUERIES, CORPUS, max_rows=1)) == 1

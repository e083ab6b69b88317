"""What one retrieval evaluation keeps: metrics, per-query top-N, true ranks and score samples.

The callback's tables and histograms read a `RetrievalResult` instead of encoding anything again.
This module is plain data (numpy only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RetrievalResult:
    """The outcome of `RetrievalEvaluator.evaluate`.

    Rankings follow the evaluator's tie rule: score descending, then doc id descending (trec_eval's
    order), so `run()` scored by trec_eval gives exactly `metrics`.

    Attributes:
        metrics: unprefixed means, e.g. `{"mrr@10": 0.61, "ndcg@10": 0.66}`.
        query_ids: the evaluated queries, in order (rows of `top_indices`).
        doc_ids: the evaluated corpus, in order (values of `top_indices` index it).
        top_indices: `(n_queries, depth)` int64 indices into `doc_ids`, best first. When the corpus has
            fewer than `depth` docs, the width is the corpus size.
        top_scores: `(n_queries, depth)` float32 similarity of each ranked doc.
        relevant_ranks: `{query_id: {doc_id: rank}}` for every relevant (grade > 0) judged doc that is in
            the evaluated corpus; rank is 1-based in the WHOLE evaluated corpus (not only the top `depth`).
        positive_scores: the score of every (query, relevant doc) pair, in `relevant_ranks` order.
        negative_scores: the scores of the non-relevant docs in each query's top `depth`.
        timings: seconds spent in `tokenize_s`, `encode_corpus_s`, `encode_queries_s`, `search_s`, `total_s`.
        per_query: `{metric: array}`, one value per query in `query_ids` (nan where a query was skipped).

    Example:
        >>> result = RetrievalResult(
        ...     metrics={"mrr@10": 1.0}, query_ids=["q1"], doc_ids=["d1", "d2"],
        ...     top_indices=np.array([[1, 0]]), top_scores=np.array([[0.9, 0.1]], dtype=np.float32),
        ...     relevant_ranks={"q1": {"d2": 1}}, positive_scores=np.array([0.9], dtype=np.float32),
        ...     negative_scores=np.array([0.1], dtype=np.float32), timings={"total_s": 0.01})
        >>> result.ranked_doc_ids("q1", k=1)
        ['d2']
        >>> result.run()["q1"]["d1"]
        0.10000000149011612
    """

    metrics: dict[str, float]
    query_ids: list[str]
    doc_ids: list[str]
    top_indices: np.ndarray
    top_scores: np.ndarray
    relevant_ranks: dict[str, dict[str, int]]
    positive_scores: np.ndarray
    negative_scores: np.ndarray
    timings: dict[str, float]
    per_query: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._row = {qid: i for i, qid in enumerate(self.query_ids)}

    @property
    def depth(self) -> int:
        """How many docs are kept per query."""
        return int(self.top_indices.shape[1]) if self.top_indices.ndim == 2 else 0

    @property
    def all_scores(self) -> np.ndarray:
        """Every kept score (`top_scores` flattened): the `score_distribution` histogram's sample."""
        return self.top_scores.reshape(-1)

    def ranked_doc_ids(self, query_id: str, k: int | None = None) -> list[str]:
        """The doc ids ranked for `query_id`, best first, cut to `k` (default: all kept).

        Raises:
            KeyError: `query_id` was not evaluated.
        """
        row = self._row_of(query_id)
        indices = self.top_indices[row] if k is None else self.top_indices[row, :k]
        return [self.doc_ids[i] for i in indices.tolist()]

    def ranked_scores(self, query_id: str, k: int | None = None) -> list[float]:
        """The scores matching `ranked_doc_ids(query_id, k)`."""
        row = self._row_of(query_id)
        scores = self.top_scores[row] if k is None else self.top_scores[row, :k]
        return [float(s) for s in scores.tolist()]

    def run(self) -> dict[str, dict[str, float]]:
        """The top `depth` as a trec-style run `{query_id: {doc_id: score}}` (for `score_run` / trec_eval)."""
        doc_ids = self.doc_ids
        return {
            qid: {doc_ids[j]: float(s) for j, s in zip(idx.tolist(), scores.tolist(), strict=True)}
            for qid, idx, scores in zip(self.query_ids, self.top_indices, self.top_scores, strict=True)
        }

    def _row_of(self, query_id: str) -> int:
        try:
            return self._row[query_id]
        except KeyError:
            raise KeyError(
                f"Query {query_id!r} was not evaluated ({len(self.query_ids):,} queries were)."
            ) from None

    def __repr__(self) -> str:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in self.metrics.items())
        total = self.timings.get("total_s")
        took = f", {total:.2f}s" if total is not None else ""
        return (
            f"RetrievalResult({len(self.query_ids):,} queries x {len(self.doc_ids):,} docs, "
            f"depth={self.depth}{took}: {metrics})"
        )

"""What one reranking evaluation keeps: both rankings (first stage and reranked), ranks and scores.

A `RerankingResult` is a `RetrievalResult` whose ranking is the reranked candidate list, so everything
that reads a retrieval result (`run()`, `ranked_doc_ids`, the trec_eval check) reads it the same way; it
adds the first stage's ranking, ranks and metrics, which the reranking tables compare against.
This module is plain data (numpy only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hf_search_wandb.core.evaluation.results import RetrievalResult

FIRST_STAGE = "first_stage"


@dataclass
class RerankingResult(RetrievalResult):
    """The outcome of `RerankingEvaluator.evaluate`.

    Rows are queries; columns are ranks among each query's candidates (at most `depth`). A query with
    fewer candidates is padded with index -1 and score nan, which `run()`, `ranked_doc_ids` and
    `all_scores` skip. Ties are broken as trec_eval does (doc id descending), so `run()` scored by
    trec_eval gives exactly the reranked metrics, and `first_stage_run()` the first-stage ones.

    Attributes (beyond `RetrievalResult`'s):
        metrics: the reranked metrics (`ndcg@10`, ...) and the first stage's under `first_stage/ndcg@10`.
        top_indices / top_scores: the reranked candidates (indices into `doc_ids`) and the reranker's scores.
        relevant_ranks: `{query_id: {doc_id: rank}}`, 1-based reranked rank of every relevant candidate
            (relevant docs that are not candidates are absent: they were never retrieved).
        positive_scores / negative_scores: reranker scores of relevant / non-relevant candidates.
        first_stage_indices / first_stage_scores: the candidates in first-stage order, with its scores.
        first_stage_ranks: `{query_id: {doc_id: rank}}`, 1-based first-stage rank of every relevant candidate.
        first_stage_metrics: the first stage's metrics (unprefixed).
        num_relevant: `{query_id: number of relevant docs in the qrels}` (candidates or not).
        candidates_source: where the candidates came from (`"bm25"`, `"run"`, ...).
        reranked: per query row, whether its candidates were reranked. A query without a relevant
            candidate is not (unless the evaluator's `rerank_all=True`): its metrics are 0 whatever the order,
            so its row keeps the first-stage order and scores (see `not_reranked`).

    Example:
        >>> r = RerankingResult(
        ...     metrics={"mrr@10": 1.0}, query_ids=["q1"], doc_ids=["d1", "d2", "d3"],
        ...     top_indices=np.array([[1, 0, -1]]), top_scores=np.array([[0.9, 0.2, np.nan]], dtype=np.float32),
        ...     relevant_ranks={"q1": {"d2": 1}}, positive_scores=np.array([0.9], dtype=np.float32),
        ...     negative_scores=np.array([0.2], dtype=np.float32), timings={},
        ...     first_stage_indices=np.array([[0, 1, -1]]),
        ...     first_stage_scores=np.array([[5.0, 4.0, np.nan]], dtype=np.float32), first_stage_ranks={"q1": {"d2": 2}})
        >>> r.run(), r.moves("q1")
        ({'q1': {'d2': 0.8999999761581421, 'd1': 0.20000000298023224}}, {'d2': (2, 1)})
    """

    first_stage_indices: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    first_stage_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    first_stage_ranks: dict[str, dict[str, int]] = field(default_factory=dict)
    first_stage_metrics: dict[str, float] = field(default_factory=dict)
    first_stage_per_query: dict[str, np.ndarray] = field(default_factory=dict)
    num_relevant: dict[str, int] = field(default_factory=dict)
    candidates_source: str = ""
    reranked: np.ndarray | None = None

    @property
    def not_reranked(self) -> list[str]:
        """The query ids kept in first-stage order (no relevant candidate; see `reranked`)."""
        if self.reranked is None:
            return []
        return [q for q, done in zip(self.query_ids, self.reranked.tolist(), strict=True) if not done]

    @property
    def all_scores(self) -> np.ndarray:
        """Every reranker score of a candidate (padding and queries not reranked left out): the
        `score_distribution` sample."""
        rows = self.top_indices >= 0
        if self.reranked is not None:
            rows &= self.reranked[:, None]
        return self.top_scores[rows]

    @property
    def reranked_metrics(self) -> dict[str, float]:
        """The reranked metrics only (without the `first_stage/` copies)."""
        return {k: v for k, v in self.metrics.items() if not k.startswith(f"{FIRST_STAGE}/")}

    def _row_items(self, indices: np.ndarray, scores: np.ndarray, k: int | None) -> list[tuple[str, float]]:
        keep = indices >= 0
        pairs = [(self.doc_ids[i], float(s)) for i, s in zip(indices[keep].tolist(), scores[keep].tolist(), strict=True)]
        return pairs if k is None else pairs[:k]

    def ranked_doc_ids(self, query_id: str, k: int | None = None) -> list[str]:
        """The reranked candidates of `query_id`, best first, cut to `k`."""
        row = self._row_of(query_id)
        return [d for d, _ in self._row_items(self.top_indices[row], self.top_scores[row], k)]

    def ranked_scores(self, query_id: str, k: int | None = None) -> list[float]:
        """The reranker scores matching `ranked_doc_ids(query_id, k)`."""
        row = self._row_of(query_id)
        return [s for _, s in self._row_items(self.top_indices[row], self.top_scores[row], k)]

    def run(self) -> dict[str, dict[str, float]]:
        """The reranked run `{query_id: {doc_id: reranker score}}` (for `score_run` / trec_eval).

        A query in `not_reranked` comes with its first-stage order and scores, so trec_eval scores this run
        exactly as the evaluator did.
        """
        return {
            qid: dict(self._row_items(self.top_indices[i], self.top_scores[i], None))
            for i, qid in enumerate(self.query_ids)
        }

    def first_stage_run(self) -> dict[str, dict[str, float]]:
        """The first stage's run over the same candidates `{query_id: {doc_id: first-stage score}}`."""
        return {
            qid: dict(self._row_items(self.first_stage_indices[i], self.first_stage_scores[i], None))
            for i, qid in enumerate(self.query_ids)
        }

    def moves(self, query_id: str) -> dict[str, tuple[int, int]]:
        """`{relevant doc id: (first-stage rank, reranked rank)}` for the relevant candidates of a query."""
        self._row_of(query_id)
        after = self.relevant_ranks.get(query_id, {})
        return {d: (r, after[d]) for d, r in self.first_stage_ranks.get(query_id, {}).items()}

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{k}={self.first_stage_metrics.get(k, float('nan')):.4f}->{v:.4f}" for k, v in self.reranked_metrics.items()
        )
        total = self.timings.get("total_s")
        took = f", {total:.2f}s" if total is not None else ""
        return f"RerankingResult({len(self.query_ids):,} queries, depth={self.depth}{took}: {shown})"

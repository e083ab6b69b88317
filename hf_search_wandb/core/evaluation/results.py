"""What an evaluation keeps: metrics, per-query top-N, true ranks and score samples, per model family.

`RetrievalResult` (dense), `SparseRetrievalResult` (adds the SPLADE sparsity), `MultiVectorRetrievalResult`
(adds the token counts of a late-interaction model) and `RerankingResult` (adds the first stage it reranked).
The callback's tables and histograms read these instead of encoding anything again.
This module is plain data (numpy only).
"""


from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: the key namespace of a reranking evaluation's first-stage metrics (`val/first_stage/ndcg@10`)
FIRST_STAGE = "first_stage"
#: A query's ranking is TIED when its top `TIE_K` kept scores are all equal (within `TIE_RTOL`, relative to
#: the largest absolute score, at least 1): the tie rule, not the model, decides its @10 metrics.
TIE_K = 10
TIE_RTOL = 1e-6
#: An evaluation is COLLAPSED (its metrics reflect the tie order only) when at least this fraction of the
#: queries that rank 2 or more documents are tied, e.g. a model that outputs one constant vector.
COLLAPSED_FRACTION = 0.9


def tied_rows(scores: np.ndarray, valid: np.ndarray | None = None, k: int = TIE_K) -> np.ndarray:
    """Per row of `scores` (one query's kept scores, best first): True when its first `k` valid scores are all
    equal within `TIE_RTOL` (NaN counts as equal to NaN), False when they differ or fewer than 2 are valid.
    A row's valid entries come first (padding at the end, or a whole row left out), so only the first `k`
    columns are read.

    Example:
        >>> tied_rows(np.array([[0.5, 0.5, 0.5], [0.9, 0.5, 0.1], [0.7, np.nan, np.nan]]),
        ...           np.array([[True, True, True], [True, True, True], [True, False, False]])).tolist()
        [True, False, False]
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] == 0:
        return np.zeros(scores.shape[:1], dtype=bool)
    scores = scores[:, :k].astype(np.float64)
    first = np.ones(scores.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)[:, :k]
    counts = first.sum(axis=1)
    with np.errstate(invalid="ignore"):
        high = np.where(first, np.nan_to_num(scores, nan=np.inf), -np.inf).max(axis=1)
        low = np.where(first, np.nan_to_num(scores, nan=np.inf), np.inf).min(axis=1)
        scale = np.maximum(1.0, np.maximum(np.abs(high), np.abs(low)))
        equal = (high == low) | (high - low <= TIE_RTOL * scale)
    return (counts >= 2) & equal


def tie_warning(name: str, tied: int, checked: int, k: int = TIE_K) -> str | None:
    """The warning of a collapsed evaluation (`COLLAPSED_FRACTION` of the `checked` queries `tied`), else None.

    Example:
        >>> tie_warning("val", 30, 30)
        "val: all 30 queries' top-10 scores are tied (the model gives every document the same score, e.g. it collapsed to a constant output): the metrics reflect the evaluator's tie order (doc id descending) only, not the model"
        >>> tie_warning("val", 3, 30) is None
        True
    """
    if checked == 0 or tied < COLLAPSED_FRACTION * checked:
        return None
    share = f"all {checked:,}" if tied == checked else f"{tied:,} of {checked:,}"
    return (f"{name}: {share} queries' top-{k} scores are tied (the model gives every document the same score, "
            "e.g. it collapsed to a constant output): the metrics reflect the evaluator's tie order (doc id "
            "descending) only, not the model")


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
        tied_fraction: the share of the queries ranking 2+ documents whose top `TIE_K` scores are all equal
            (`tied_rows`; set by the evaluator, 0.0 for a model that separates every document).
        tie_warning: set when the evaluation is collapsed (`tied_fraction >= COLLAPSED_FRACTION`): the metrics
            reflect the tie order only; the evaluator also logs it once (`tie_warning`). None otherwise.
        precision: the precision the model's forward pass ran in: `"fp32"`, `"bf16"` or `"fp16"`
            (`core.evaluation.precision`).

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
    tied_fraction: float = 0.0
    tie_warning: str | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        self._row = {qid: i for i, qid in enumerate(self.query_ids)}

    def ranked_mask(self) -> np.ndarray:
        """Which entries of `top_scores` are the model's ranking (all of them here; see `RerankingResult`)."""
        return np.ones(self.top_scores.shape, dtype=bool)

    def check_ties(self, name: str, k: int = TIE_K) -> str | None:
        """Set `tied_fraction` and `tie_warning` from the kept top scores (cheap: `(queries, k)` values) and
        return the warning (None when the model separates the documents).

        Example:
            >>> r = RetrievalResult(metrics={"mrr@10": 1.0}, query_ids=["q1"], doc_ids=["d1", "d2"],
            ...     top_indices=np.array([[1, 0]]), top_scores=np.array([[0.3, 0.3]], dtype=np.float32),
            ...     relevant_ranks={"q1": {"d2": 1}}, positive_scores=np.array([0.3]),
            ...     negative_scores=np.array([0.3]), timings={})
            >>> r.check_ties("val") is not None, r.tied_fraction
            (True, 1.0)
        """
        valid = self.ranked_mask()
        tied = tied_rows(self.top_scores, valid, k)
        checked = int((valid[:, :k].sum(axis=1) >= 2).sum()) if valid.ndim == 2 else 0
        self.tied_fraction = float(tied.sum() / checked) if checked else 0.0
        self.tie_warning = tie_warning(name, int(tied.sum()), checked, k)
        return self.tie_warning

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


@dataclass
class SparseRetrievalResult(RetrievalResult):
    """A `RetrievalResult` of a sparse model, plus the per-text active dimensions.

    Attributes:
        query_active_dims: `(n_queries,)` non-zeros of each query embedding, in `query_ids` order.
        doc_active_dims: `(n_docs,)` non-zeros of each document embedding, in `doc_ids` order (the
            document-length histogram the callback logs).
        flops: the FLOPS estimate (see `core.models.sparse.flops`).
    """

    query_active_dims: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    doc_active_dims: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    flops: float = 0.0


@dataclass
class MultiVectorRetrievalResult(RetrievalResult):
    """A `RetrievalResult` of a multi-vector (ColBERT-style) model, plus its token figures.

    Attributes:
        query_tokens: `(n_queries,)` scored token vectors of each query, in `query_ids` order.
        doc_tokens: `(n_docs,)` scored token vectors of each document, in `doc_ids` order.
        token_dim: the dimension of a token vector.
        index_bytes: the corpus's token vectors in the evaluation precision, in bytes.
        similarity: `"maxsim"` or `"meanmaxsim"`.
    """

    query_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    doc_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    token_dim: int = 0
    index_bytes: int = 0
    similarity: str = "maxsim"


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
        scorer: what re-scored them: `"cross-encoder"`, or a multi-vector model's `"maxsim"` / `"meanmaxsim"`.
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
    scorer: str = "cross-encoder"
    reranked: np.ndarray | None = None

    def ranked_mask(self) -> np.ndarray:
        """The reranker's scores only: padding and the queries kept in first-stage order are left out."""
        rows = self.top_indices >= 0
        if self.reranked is not None:
            rows &= self.reranked[:, None]
        return rows

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
        return self.top_scores[self.ranked_mask()]

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
        compared = {k: v for k, v in self.reranked_metrics.items() if k in self.first_stage_metrics}
        shown = ", ".join(f"{k}={self.first_stage_metrics[k]:.4f}->{v:.4f}" for k, v in compared.items())
        total = self.timings.get("total_s")
        took = f", {total:.2f}s" if total is not None else ""
        return f"RerankingResult({len(self.query_ids):,} queries, depth={self.depth}{took}: {shown})"

"""Reranking tables and histograms, built from a kept `RerankingResult` (nothing is scored again).

* `reranking_examples`: for a fixed sample of queries, the top `k` after reranking with the reranker's
  scores and each document's first-stage rank, plus every relevant doc's move (`first-stage rank →
  reranked rank`, or "not a candidate" when the first stage never retrieved it).
* `error_analysis`: the relevant candidates the reranker pushed down (reranked rank > first-stage rank),
  largest drop first, with the document that took first place.
* `score_distribution` / `positive_scores` / `negative_scores`: histograms of the reranker's scores of
  all / relevant / non-relevant candidates (of the reranked queries: see `RerankingEvaluator(rerank_all=)`).

The row builders are pure Python; `log_reranking_media` logs them to a run (the callback calls it for a
`RerankingResult`, in place of the retrieval tables).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hf_search_wandb.tracking.tables import (
    DEFAULT_MAX_ERROR_ROWS,
    TABLE_ROW_LIMIT,
    log_row,
    make_table,
    sample_query_ids,
    score_histograms,
    shorten,
)
from hf_search_wandb.tracking.wandb_api import active_run

if TYPE_CHECKING:
    from hf_search_wandb.core.evaluation.results import RerankingResult

EXAMPLE_COLUMNS = ["query", "relevant_moves", "rank", "document", "score", "relevant", "first_stage_rank"]
ERROR_COLUMNS = [
    "query", "relevant_doc", "first_stage_rank", "reranked_rank", "drop", "relevant_score", "top1_doc", "top1_score",
]  # fmt: skip
NOT_CANDIDATE = "not a candidate"


def relevant_moves(result: RerankingResult, qrels: Mapping[str, Mapping[str, int]], query_id: str) -> str:
    """Each relevant doc's `first-stage rank → reranked rank`, best first-stage rank first.

    Example:
        >>> import numpy as np
        >>> from hf_search_wandb.core.evaluation.results import RerankingResult
        >>> r = RerankingResult(metrics={}, query_ids=["q1"], doc_ids=["d1", "d2"], top_indices=np.array([[1, 0]]),
        ...     top_scores=np.array([[0.9, 0.1]], dtype=np.float32), relevant_ranks={"q1": {"d2": 1}},
        ...     positive_scores=np.zeros(1), negative_scores=np.zeros(1), timings={},
        ...     first_stage_ranks={"q1": {"d2": 2}})
        >>> relevant_moves(r, {"q1": {"d2": 1, "d9": 2}}, "q1")
        '2 → 1; not a candidate'
    """
    moves = result.moves(query_id)
    shown = [f"{before} → {after}" for before, after in sorted(moves.values())]
    missing = sum(1 for d, g in qrels.get(query_id, {}).items() if g > 0 and d not in moves)
    return "; ".join(shown + [NOT_CANDIDATE] * missing)


def reranking_example_rows(
    result: RerankingResult,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    num_examples: int = 20,
    k: int = 5,
    seed: int = 0,
    max_chars: int = 200,
) -> list[list[Any]]:
    """Rows `[query, relevant_moves, rank, document, score, relevant, first_stage_rank]`, top `k` reranked.

    The query sample is `tables.sample_query_ids` (the same queries at every evaluation), drawn from the
    reranked queries (`result.not_reranked` have no relevant candidate and keep the first-stage order).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    k = min(k, max(result.depth, 1))
    num_examples = min(num_examples, TABLE_ROW_LIMIT // k)
    position = {qid: i for i, qid in enumerate(result.query_ids)}
    rows: list[list[Any]] = []
    skipped = set(result.not_reranked)  # no relevant candidate: nothing was reranked to show
    shown = [q for q in result.query_ids if q not in skipped] if skipped else result.query_ids
    for qid in sample_query_ids(shown, num_examples, seed=seed):
        i = position[qid]
        first = {int(d): r for r, d in enumerate(result.first_stage_indices[i].tolist(), 1) if d >= 0}
        query = shorten(queries.get(qid, ""), max_chars)
        moves = relevant_moves(result, qrels, qid)
        judged = qrels.get(qid, {})
        for rank, (doc, score) in enumerate(
            zip(result.top_indices[i, :k].tolist(), result.top_scores[i, :k].tolist(), strict=True), 1
        ):
            if doc < 0:
                break
            doc_id = result.doc_ids[doc]
            rows.append([query, moves, rank, shorten(corpus.get(doc_id, ""), max_chars), float(score),
                         judged.get(doc_id, 0) > 0, first[doc]])  # fmt: skip
    return rows


def pushed_down_rows(
    result: RerankingResult,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    *,
    max_rows: int = DEFAULT_MAX_ERROR_ROWS,
    max_chars: int = 200,
) -> list[list[Any]]:
    """Rows `[query, relevant_doc, first_stage_rank, reranked_rank, drop, relevant_score, top1_doc, top1_score]`
    for every relevant candidate the reranker ranked lower than the first stage did, largest drop first."""
    position = {qid: i for i, qid in enumerate(result.query_ids)}
    drops: list[tuple[int, str, str, int, int]] = []
    for qid in result.query_ids:
        for doc, (before, after) in result.moves(qid).items():
            if after > before:
                drops.append((before - after, qid, doc, before, after))
    drops.sort()
    rows: list[list[Any]] = []
    for _, qid, doc, before, after in drops[: min(max(max_rows, 0), TABLE_ROW_LIMIT)]:
        i = position[qid]
        scores = dict(zip(result.top_indices[i].tolist(), result.top_scores[i].tolist(), strict=True))
        top = int(result.top_indices[i, 0])
        doc_index = result.top_indices[i, after - 1]
        rows.append([
            shorten(queries.get(qid, ""), max_chars), shorten(corpus.get(doc, ""), max_chars), before, after,
            after - before, float(scores[int(doc_index)]), shorten(corpus.get(result.doc_ids[top], ""), max_chars),
            float(result.top_scores[i, 0]),
        ])  # fmt: skip
    return rows


def log_reranking_media(
    run: Any,
    result: RerankingResult,
    evaluator: Any,
    *,
    step: int | None,
    num_examples: int = 20,
    k: int = 5,
    error_k: int = 10,
    histograms: bool = True,
    seed: int = 0,
    namespace: str = "",
) -> dict[str, Any]:
    """Log `reranking_examples`, `error_analysis` and the three score histograms in one history row.

    Same signature as `tables.log_evaluation_media` (the callback picks one by the result's type);
    `num_examples=0` leaves the examples out, `error_k=0` the error table, `histograms=False` the histograms;
    `namespace` puts the keys under it (one of several evaluators, or an evaluation after training).

    Example (a sketch: `tests/test_reranking_training.py` runs it with a real cross-encoder)::

        evaluator(cross_encoder)
        log_reranking_media(wandb.run, evaluator.last_result, evaluator, step=100)
        # {'reranking_examples': <wandb.Table>, 'error_analysis': <wandb.Table>, 'score_distribution': ...}
    """
    run = active_run(run)
    if run is None:
        return {}
    queries, corpus, qrels = evaluator.queries, evaluator.corpus, evaluator.qrels
    payload: dict[str, Any] = {}
    if num_examples > 0:
        rows = reranking_example_rows(result, queries, corpus, qrels, num_examples=num_examples, k=k, seed=seed)
        payload["reranking_examples"] = make_table(EXAMPLE_COLUMNS, rows)
    if error_k > 0:
        payload["error_analysis"] = make_table(ERROR_COLUMNS, pushed_down_rows(result, queries, corpus))
    if histograms:
        payload.update(score_histograms(result))
    if namespace:
        payload = {f"{namespace}/{key}": value for key, value in payload.items()}
    if payload:
        log_row(run, payload, step)
    return payload

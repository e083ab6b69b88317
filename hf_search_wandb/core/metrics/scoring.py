"""Information-retrieval metrics that equal trec_eval, as pure vectorised numpy functions.

Two entry points share one kernel:

* `score_run(qrels, run)` takes trec_eval's shapes (`{query_id: {doc_id: grade}}` and
  `{query_id: {doc_id: score}}`), orders each query's documents the way trec_eval does and scores them.
* `score_ranked(ranked_relevance, judged_relevance)` is the kernel: a `(n_queries, n_ranked)` matrix of the
  graded relevance of the document at each rank, and each query's judged grades. The evaluator calls it
  directly on its top-k arrays.

Metric names are `mrr@k`, `ndcg@k`, `recall@k`, `precision@k`, `hit@k`, `map`, `map@k`, `rprec` and
`bpref` (any k >= 1): the table of measures in `core/metrics/measures.py` declares each one; see `docs/metrics.md`
for the formulas and the trec_eval measure each one equals. A document is relevant when its grade is > 0
(trec_eval's default relevance level 1). Means are over the queries with at least one relevant document;
the others are skipped, counted in `MetricReport.num_skipped` and logged.

This module imports numpy only: no torch, no wandb.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, overload

import numpy as np

from hf_search_wandb.core.data.inputs import id_keyed
from hf_search_wandb.core.metrics.measures import parse_metrics
from hf_search_wandb.core.metrics.ranked_hits import RankedHits

logger = logging.getLogger(__name__)

#: The `val/` metrics the spec logs at every evaluation.
DEFAULT_METRICS: tuple[str, ...] = ("mrr@10", "ndcg@10", "recall@100", "map", "hit@10")


@dataclass
class MetricReport:
    """Everything one scoring call found, for callers that need more than the means.

    Attributes:
        metrics: `{metric: mean over evaluated queries}`.
        per_query: `{metric: array of one value per input query}`; `nan` for skipped queries.
        evaluated: boolean mask over the input queries: True where the query has a relevant document.
        query_ids: the query ids in the order of `per_query` (`score_run` only; empty for `score_ranked`).
    """

    metrics: dict[str, float]
    per_query: dict[str, np.ndarray]
    evaluated: np.ndarray
    query_ids: list[str] = field(default_factory=list)

    @property
    def num_queries(self) -> int:
        """How many queries the means are over."""
        return int(self.evaluated.sum())

    @property
    def num_skipped(self) -> int:
        """How many queries were skipped because they have no relevant document."""
        return int(self.evaluated.size - self.evaluated.sum())

    def per_query_dict(self) -> dict[str, dict[str, float]]:
        """`{query_id: {metric: value}}` for the evaluated queries (pytrec_eval's shape)."""
        if not self.query_ids:
            raise ValueError("per_query_dict() needs query ids: use score_run / run_report.")
        out: dict[str, dict[str, float]] = {}
        for i in np.flatnonzero(self.evaluated):
            out[self.query_ids[i]] = {name: float(values[i]) for name, values in self.per_query.items()}
        return out


def _positive_grades(grades: np.ndarray | Sequence[float]) -> np.ndarray:
    array = np.asarray(grades, dtype=np.float64).ravel()
    return array[array > 0]


def ranked_report(
    ranked_relevance: np.ndarray,
    judged_relevance: Sequence[np.ndarray],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    depth: int = 100,
    ranked_judged: np.ndarray | None = None,
) -> MetricReport:
    """`score_ranked`, returning the full `MetricReport` (means, per-query values, skipped queries).

    Example:
        >>> report = ranked_report(np.array([[0, 1], [0, 0]]), [np.array([1]), np.array([0])], metrics=["mrr@10"])
        >>> report.metrics, report.num_skipped
        ({'mrr@10': 0.5}, 1)
    """
    parsed = parse_metrics(metrics, depth)
    ranked = np.asarray(ranked_relevance)
    if ranked.ndim != 2:
        raise ValueError(f"ranked_relevance must be 2-D (n_queries, n_ranked), got shape {ranked.shape}.")
    if ranked.dtype.kind not in "biuf":
        raise TypeError(f"ranked_relevance must hold numbers (relevance grades), got dtype {ranked.dtype}.")
    if len(judged_relevance) != ranked.shape[0]:
        raise ValueError(
            f"judged_relevance has {len(judged_relevance)} entries but ranked_relevance has "
            f"{ranked.shape[0]} rows: give one array of judged grades per query."
        )
    ranked = ranked[:, :depth]
    if ranked.dtype.kind == "f" and np.isnan(ranked).any():
        raise ValueError("ranked_relevance contains NaN.")
    judged = [_positive_grades(g) for g in judged_relevance]
    num_nonrelevant, nonrelevant, in_qrels = None, None, None
    if ranked_judged is not None and any(m.spec.uses_nonrelevant for m in parsed):
        in_qrels = _judged_mask(ranked_judged, np.asarray(ranked_relevance).shape, ranked.shape[1])
        rows, cols = np.nonzero(in_qrels)
        keep = ranked[rows, cols] == 0  # judged, grade 0 (a negative grade is "unjudged" to trec_eval)
        nonrelevant = (rows[keep], cols[keep])
        num_nonrelevant = np.fromiter(
            (np.count_nonzero(np.asarray(g) == 0) for g in judged_relevance), dtype=np.float64, count=len(judged)
        )
    hits = RankedHits(ranked, judged, num_nonrelevant, nonrelevant)
    if in_qrels is not None and not in_qrels[hits.rows, hits.cols].all():
        raise ValueError("ranked_judged is False at a rank whose grade is > 0: a relevant document is judged.")
    per_query = {m.name: m.spec.kernel(hits, m.k or hits.depth) for m in parsed}
    evaluated = hits.num_rel > 0
    num_eval = int(evaluated.sum())
    if num_eval == 0:
        raise ValueError(
            f"None of the {len(judged)} queries has a relevant document (grade > 0): nothing to average."
        )
    skipped = len(judged) - num_eval
    if skipped:
        logger.warning(
            "%d of %d queries have no relevant document (grade > 0) and are skipped; means are over %d.",
            skipped,
            len(judged),
            num_eval,
        )
    means: dict[str, float] = {}
    for name, values in per_query.items():
        values[~evaluated] = np.nan
        means[name] = float(values[evaluated].mean())
    return MetricReport(metrics=means, per_query=per_query, evaluated=evaluated)


def _judged_mask(ranked_judged: np.ndarray, shape: tuple[int, ...], depth: int) -> np.ndarray:
    """`ranked_judged`, checked against the shape of `ranked_relevance` and cut to `depth` columns."""
    in_qrels = np.asarray(ranked_judged)
    if in_qrels.shape != shape:
        raise ValueError(
            f"ranked_judged has shape {in_qrels.shape} but ranked_relevance has {shape}: give one boolean "
            "per ranked document (True where it is in the qrels)."
        )
    if in_qrels.dtype != bool:
        raise TypeError(f"ranked_judged must hold booleans, got dtype {in_qrels.dtype}.")
    return in_qrels[:, :depth]


@overload
def score_ranked(
    ranked_relevance: np.ndarray,
    judged_relevance: Sequence[np.ndarray],
    *,
    metrics: Sequence[str] = ...,
    depth: int = ...,
    per_query: Literal[False] = ...,
    ranked_judged: np.ndarray | None = ...,
) -> dict[str, float]: ...


@overload
def score_ranked(
    ranked_relevance: np.ndarray,
    judged_relevance: Sequence[np.ndarray],
    *,
    metrics: Sequence[str] = ...,
    depth: int = ...,
    per_query: Literal[True],
    ranked_judged: np.ndarray | None = ...,
) -> dict[str, np.ndarray]: ...


def score_ranked(
    ranked_relevance: np.ndarray,
    judged_relevance: Sequence[np.ndarray],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    depth: int = 100,
    per_query: bool = False,
    ranked_judged: np.ndarray | None = None,
) -> dict[str, float] | dict[str, np.ndarray]:
    """Score rankings given as relevance grades by rank: the vectorised kernel behind `score_run`.

    Args:
        ranked_relevance: `(n_queries, n_ranked)` grades of the document at each rank, best first;
            0 (or any value <= 0) for non-relevant and unjudged documents and for padding.
        judged_relevance: for each query, the grades of all its judged documents: the count of grades > 0
            is the number of relevant documents and their values give the ideal DCG; the count of grades
            equal to 0 is the number of judged non-relevant documents (bpref only).
        metrics: metric names (see `parse_metric`).
        depth: rank cut-off applied to the rankings first; `map`, `rprec` and `bpref` see the top
            `depth`. Every k must be <= depth.
        per_query: return `{metric: array}` with one value per query (`nan` where skipped) instead of means.
        ranked_judged: same shape as `ranked_relevance`, True where the document at that rank is in the
            qrels (judged, any grade). Only `bpref` needs it (it skips unjudged documents but counts judged
            non-relevant ones); asking for `bpref` without it is an error.

    Returns:
        `{metric: mean}` over queries with at least one relevant document, or per-query arrays.

    Raises:
        ValueError: unknown metric, k < 1 or k > depth, mismatched shapes, no query with a relevant doc,
            or `bpref` without `ranked_judged`.

    Example:
        >>> ranked = np.array([[0, 2, 0], [1, 0, 0]])
        >>> judged = [np.array([2, 1]), np.array([1])]
        >>> score_ranked(ranked, judged, metrics=["mrr@10", "recall@3"], depth=10)
        {'mrr@10': 0.75, 'recall@3': 0.75}
        >>> in_qrels = np.array([[True, True, False], [True, False, True]])  # rank 1 of query 0: judged grade 0
        >>> score_ranked(ranked, [np.array([2, 1, 0]), np.array([1, 0])], metrics=["bpref"], depth=10,
        ...              ranked_judged=in_qrels)
        {'bpref': 0.5}
    """
    report = ranked_report(
        ranked_relevance, judged_relevance, metrics=metrics, depth=depth, ranked_judged=ranked_judged
    )
    return report.per_query if per_query else report.metrics


def _examples(ids: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:n])
    return f"[{shown}{', ...' if len(ids) > n else ''}]"


def _text_ids(nested: Mapping, what: str) -> Mapping:
    """`nested` with every query and doc id as text, as trec_eval reads them from its files.

    Integer ids (from a DataFrame column, numpy integers) become their decimal text (`inputs.id_keyed`), so
    `1` in the qrels matches `"1"` in the run and tied scores break by the ids' text (`"9"` ranks above
    `"10"`, as in trec_eval), not by their numeric order. Mappings whose ids are all strings are returned
    as they are.
    """
    if set(map(type, nested)) <= {str} and all(
        set(map(type, inner)) <= {str} for inner in nested.values() if isinstance(inner, Mapping)
    ):
        return nested
    return {
        qid: id_keyed(inner, f"{what}[{qid!r}]") if isinstance(inner, Mapping) else inner
        for qid, inner in id_keyed(nested, what).items()
    }


_NUMERIC_TYPES = frozenset({float, int, np.float64, np.float32, np.float16, np.int64, np.int32})


def _numbers(values: Mapping[str, float], where: str, what: str) -> np.ndarray:
    """The mapping's values as float64, with a clear error for anything that is not a finite number."""
    if not set(map(type, values.values())) <= _NUMERIC_TYPES:
        for value in values.values():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(
                    f"{where} has a non-numeric {what} {value!r} ({type(value).__name__}): {what}s must be numbers."
                )
    array = np.fromiter(values.values(), dtype=np.float64, count=len(values))
    if not np.isfinite(array).all():
        raise ValueError(f"{where} has a non-finite {what} (nan or inf): {what}s must be finite numbers.")
    return array


def _judged_ranks(
    docs: Mapping[str, float], scores: np.ndarray, grades: Mapping[str, float], nonrelevant: bool
) -> tuple[np.ndarray, np.ndarray]:
    """0-based ranks and grades of the relevant retrieved docs (and of the judged non-relevant ones,
    grade 0, when `nonrelevant`), in trec_eval's order.

    trec_eval (form_res_rels.c, `comp_sim_docno`) sorts by score descending, then by doc id descending
    (`strcmp`). A doc's rank is therefore the number of docs with a higher score plus the number with the
    same score and a larger id; only the few judged docs need a rank, so the run is never fully sorted.
    """
    relevant = [
        (doc, grade) for doc, grade in grades.items() if (grade > 0 or (nonrelevant and grade == 0)) and doc in docs
    ]
    if not relevant:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    rel_scores = np.array([float(docs[doc]) for doc, _ in relevant])
    above = (scores[None, :] > rel_scores[:, None]).sum(axis=1)
    equal = (scores[None, :] == rel_scores[:, None]).sum(axis=1)
    tied = np.flatnonzero(equal > 1)
    if tied.size:
        ids = list(docs)
        for i in tied:
            same = np.flatnonzero(scores == rel_scores[i])
            above[i] += sum(ids[j] > relevant[i][0] for j in same)
    return above, np.array([grade for _, grade in relevant], dtype=np.float64)


def run_report(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    depth: int = 100,
) -> MetricReport:
    """`score_run`, returning the full `MetricReport` (query ids, per-query values, skipped queries).

    Example:
        >>> report = run_report({"q1": {"d1": 1}, "q2": {"d3": 0}}, {"q1": {"d1": 0.2, "d2": 0.9}, "q2": {"d3": 1.0}},
        ...                     metrics=["mrr@10"])
        >>> report.metrics, report.num_skipped, report.query_ids
        ({'mrr@10': 0.5}, 1, ['q1', 'q2'])
    """
    parsed = parse_metrics(metrics, depth)
    if not isinstance(qrels, Mapping) or not qrels:
        raise ValueError("qrels is empty: give {query_id: {doc_id: relevance}} with at least one query.")
    if not isinstance(run, Mapping):
        raise TypeError(f"run must be a mapping {{query_id: {{doc_id: score}}}}, got {type(run).__name__}.")
    qrels, run = _text_ids(qrels, "qrels"), _text_ids(run, "run")
    common = [qid for qid in qrels if qid in run]
    if not common:
        raise ValueError(
            f"The run shares no query id with the qrels (0 matched): the qrels have {len(qrels):,} ids, "
            f"e.g. {_examples(list(qrels))}; the run has {len(run):,}, e.g. {_examples(list(run))}. "
            "Check that both use the same ids (both are read as text, so 1 and '1' match)."
        )
    missing = len(qrels) - len(common)
    if missing:
        logger.warning(
            "%d of %d qrels queries are not in the run; they score 0 (as trec_eval -c).", missing, len(qrels)
        )
    query_ids = list(qrels)
    with_nonrelevant = any(m.spec.uses_nonrelevant for m in parsed)
    judged: list[np.ndarray] = []
    hit_rows: list[np.ndarray] = []
    hit_cols: list[np.ndarray] = []
    hit_grades: list[np.ndarray] = []
    width = 0
    for row, qid in enumerate(query_ids):
        grades = qrels[qid]
        judged.append(_numbers(grades, f"qrels[{qid!r}]", "relevance grade"))
        docs = run.get(qid)
        if not docs:
            continue
        scores = _numbers(docs, f"run[{qid!r}]", "score")
        width = max(width, min(depth, scores.size))
        cols, rel = _judged_ranks(docs, scores, grades, with_nonrelevant)
        keep = cols < depth
        hit_rows.append(np.full(int(keep.sum()), row))
        hit_cols.append(cols[keep])
        hit_grades.append(rel[keep])
    ranked = np.zeros((len(query_ids), width))
    in_qrels = np.zeros(ranked.shape, dtype=bool) if with_nonrelevant else None
    if hit_rows:
        at = (np.concatenate(hit_rows), np.concatenate(hit_cols))
        ranked[at] = np.concatenate(hit_grades)
        if in_qrels is not None:
            in_qrels[at] = True
    report = ranked_report(
        ranked, judged, metrics=[m.name for m in parsed], depth=depth, ranked_judged=in_qrels
    )
    report.query_ids = query_ids
    return report


@overload
def score_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    *,
    metrics: Sequence[str] = ...,
    depth: int = ...,
    per_query: Literal[False] = ...,
) -> dict[str, float]: ...


@overload
def score_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    *,
    metrics: Sequence[str] = ...,
    depth: int = ...,
    per_query: Literal[True],
) -> dict[str, dict[str, float]]: ...


def score_run(
    qrels: Mapping[str, Mapping[str, int]],
    run: Mapping[str, Mapping[str, float]],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    depth: int = 100,
    per_query: bool = False,
) -> dict[str, float] | dict[str, dict[str, float]]:
    """Score a trec-style run against qrels, equal to trec_eval on the same run.

    Each query's documents are ordered as trec_eval orders them (score descending, ties by doc id
    descending) and cut to `depth`. Queries of the qrels missing from the run score 0 (as `trec_eval -c`);
    queries of the run without qrels are ignored; queries with no relevant document are skipped (counted
    in `run_report(...).num_skipped` and logged). Ids are read as text, as trec_eval reads its files: `1`
    and `"1"` are the same query or doc, and ties break by the ids' text.

    Args:
        qrels: `{query_id: {doc_id: grade}}`; grade > 0 is relevant, larger is more relevant (nDCG).
        run: `{query_id: {doc_id: score}}`; larger is better.
        metrics: metric names (see `parse_metric`); default `DEFAULT_METRICS`.
        depth: documents kept per query; `map`, `rprec` and `bpref` are trec_eval's on the run cut to `depth`.
        per_query: return `{query_id: {metric: value}}` (pytrec_eval's shape) instead of means.

    Returns:
        `{metric: mean}` (canonical lower-case names), or per-query values.

    Raises:
        ValueError: unknown metric name, k < 1 or k > depth, empty qrels, no query in common, NaN scores.
        TypeError: non-numeric scores or grades.

    Example:
        >>> qrels = {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 1}}
        >>> run = {"q1": {"d1": 0.9, "d4": 0.8, "d2": 0.1}, "q2": {"d5": 0.7, "d3": 0.5}}
        >>> score_run(qrels, run, metrics=["mrr@10", "recall@2", "hit@1"])
        {'mrr@10': 0.75, 'recall@2': 0.75, 'hit@1': 0.5}
    """
    report = run_report(qrels, run, metrics=metrics, depth=depth)
    return report.per_query_dict() if per_query else report.metrics

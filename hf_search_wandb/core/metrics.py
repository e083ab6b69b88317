"""Information-retrieval metrics that equal trec_eval, as pure vectorised numpy functions.

Two entry points share one kernel:

* `score_run(qrels, run)` takes trec_eval's shapes (`{query_id: {doc_id: grade}}` and
  `{query_id: {doc_id: score}}`), orders each query's documents the way trec_eval does and scores them.
* `score_ranked(ranked_relevance, judged_relevance)` is the kernel: a `(n_queries, n_ranked)` matrix of the
  graded relevance of the document at each rank, and each query's judged grades. The evaluator calls it
  directly on its top-k arrays.

Metric names are `mrr@k`, `ndcg@k`, `recall@k`, `precision@k`, `hit@k`, `map` and `map@k` (any k >= 1);
see `docs/metrics.md` for the formulas and the trec_eval measure each one equals. A document is relevant
when its grade is > 0 (trec_eval's default relevance level 1). Means are over the queries with at least
one relevant document; the others are skipped, counted in `MetricReport.num_skipped` and logged.

This module imports numpy only: no torch, no wandb.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, overload

import numpy as np

logger = logging.getLogger(__name__)

#: The `val/` metrics the spec logs at every evaluation.
DEFAULT_METRICS: tuple[str, ...] = ("mrr@10", "ndcg@10", "recall@100", "map", "hit@10")

_MEASURES = ("mrr", "ndcg", "recall", "precision", "hit", "map")
_NAME_RE = re.compile(r"^(?P<measure>[a-z_]+)(?:@(?P<k>[+-]?\d+))?$")
_VALID_FORMS = "mrr@k, ndcg@k, recall@k, precision@k, hit@k, map, map@k (k an integer >= 1, e.g. 'ndcg@10')"


class Metric(NamedTuple):
    """A parsed metric name: `measure` is one of mrr/ndcg/recall/precision/hit/map, `k` its cut-off
    (`None` only for `map`, which uses the whole run cut to `depth`)."""

    name: str
    measure: str
    k: int | None


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


def parse_metric(name: str) -> Metric:
    """Validate a metric name and return its parts.

    Args:
        name: e.g. `"mrr@10"`, `"ndcg@10"`, `"recall@100"`, `"precision@5"`, `"hit@10"`, `"map"`,
            `"map@100"`. Case and surrounding spaces are ignored; the canonical name is lower case.

    Returns:
        A `Metric(name, measure, k)`.

    Raises:
        ValueError: for an unknown measure or a malformed name (the message lists the valid forms),
            or a cut-off k < 1.

    Example:
        >>> parse_metric("NDCG@10")
        Metric(name='ndcg@10', measure='ndcg', k=10)
        >>> parse_metric("map")
        Metric(name='map', measure='map', k=None)
    """
    if not isinstance(name, str):
        raise TypeError(f"A metric name must be a string, got {type(name).__name__}: {name!r}.")
    text = name.strip().lower()
    match = _NAME_RE.match(text)
    if match is None or match["measure"] not in _MEASURES:
        raise ValueError(f"Unknown metric {name!r}. Valid forms: {_VALID_FORMS}.")
    measure, k_text = match["measure"], match["k"]
    if k_text is None:
        if measure != "map":
            raise ValueError(
                f"Metric {name!r} needs a cut-off, e.g. '{measure}@10'. Valid forms: {_VALID_FORMS}."
            )
        return Metric("map", "map", None)
    k = int(k_text)
    if k < 1:
        raise ValueError(f"Metric {name!r}: the cut-off k must be an integer >= 1, got {k}.")
    return Metric(f"{measure}@{k}", measure, k)


def parse_metrics(metrics: Sequence[str] | str, depth: int = 100) -> list[Metric]:
    """Validate a list of metric names against a ranking depth (what the scorers check first).

    Args:
        metrics: metric names (see `parse_metric`), or one name.
        depth: the rank cut-off the rankings will have; every k must be <= depth.

    Returns:
        The parsed metrics, in order.

    Raises:
        ValueError: an invalid name, an empty list, depth < 1, or a k larger than depth.

    Example:
        >>> [m.name for m in parse_metrics(["MRR@10", "map"], depth=100)]
        ['mrr@10', 'map']
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    parsed = [parse_metric(m) for m in metrics]
    if not parsed:
        raise ValueError(f"No metrics requested. Valid forms: {_VALID_FORMS}.")
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}.")
    for metric in parsed:
        if metric.k is not None and metric.k > depth:
            raise ValueError(
                f"{metric.name} needs the top {metric.k} documents but depth is {depth}: "
                f"pass depth >= {metric.k} or a smaller k."
            )
    return parsed


def _ideal_dcg(judged: list[np.ndarray], cutoffs: set[int]) -> dict[int, np.ndarray]:
    """Ideal DCG@k of every query: its positive grades sorted descending, cut at k."""
    n = len(judged)
    lengths = np.fromiter((a.size for a in judged), dtype=np.int64, count=n)
    if not cutoffs or lengths.sum() == 0:
        return {k: np.zeros(n) for k in cutoffs}
    flat = np.concatenate(judged)
    owner = np.repeat(np.arange(n), lengths)
    order = np.lexsort((-flat, owner))
    flat, owner = flat[order], owner[order]
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    position = np.arange(flat.size) - starts[owner]
    gain = flat / np.log2(position + 2.0)
    return {k: np.bincount(owner[position < k], weights=gain[position < k], minlength=n) for k in cutoffs}


def _kernel(ranked: np.ndarray, judged: list[np.ndarray], parsed: list[Metric]) -> dict[str, np.ndarray]:
    """Per-query values of every metric (also for queries without a relevant doc; the caller masks).

    Works on the relevant hits only (`np.nonzero`), so the cost after one pass over `ranked` is
    proportional to the number of relevant documents retrieved, not to n_queries x depth.
    """
    n = ranked.shape[0]
    num_rel = np.fromiter((a.size for a in judged), dtype=np.float64, count=n)
    safe_rel = np.maximum(num_rel, 1.0)
    rows, cols = np.nonzero(ranked > 0)  # row-major: hits of each query in rank order
    found = np.bincount(rows, minlength=n)
    too_many = np.flatnonzero(found > num_rel)
    if too_many.size:
        i = int(too_many[0])
        raise ValueError(
            f"Query {i} has {int(found[i])} relevant documents in ranked_relevance but only "
            f"{int(num_rel[i])} relevant grades in judged_relevance[{i}]: they must describe the same judgments."
        )
    starts = np.concatenate(([0], np.cumsum(found)[:-1]))
    nth_hit = np.arange(rows.size) - starts[rows] + 1.0  # 1 for the first relevant doc of a query, ...
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, rows, cols)
    need = {m.measure for m in parsed}
    gain = ranked[rows, cols].astype(np.float64) / np.log2(cols + 2.0) if "ndcg" in need else None
    precision_at_hit = nth_hit / (cols + 1.0) if "map" in need else None
    ideal = _ideal_dcg(judged, {m.k for m in parsed if m.measure == "ndcg" and m.k is not None})

    def sum_top(k: int | None, weights: np.ndarray | None = None) -> np.ndarray:
        keep = slice(None) if k is None else cols < k
        w = None if weights is None else weights[keep]
        return np.bincount(rows[keep], weights=w, minlength=n).astype(np.float64)

    out: dict[str, np.ndarray] = {}
    for metric in parsed:
        k = metric.k
        if metric.measure == "mrr":
            values = np.where(first < (k or 0), 1.0 / (first + 1.0), 0.0)
        elif metric.measure == "hit":
            values = (sum_top(k) > 0).astype(np.float64)
        elif metric.measure == "recall":
            values = sum_top(k) / safe_rel
        elif metric.measure == "precision":
            values = sum_top(k) / float(k or 1)
        elif metric.measure == "ndcg":
            idcg = ideal[k or 0]
            values = np.divide(sum_top(k, gain), idcg, out=np.zeros(n), where=idcg > 0)
        else:  # map (whole ranking, already cut to depth) and map@k
            values = sum_top(k, precision_at_hit) / safe_rel
        out[metric.name] = values
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
    per_query = _kernel(ranked, judged, parsed)
    evaluated = np.fromiter((a.size > 0 for a in judged), dtype=bool, count=len(judged))
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


@overload
def score_ranked(
    ranked_relevance: np.ndarray,
    judged_relevance: Sequence[np.ndarray],
    *,
    metrics: Sequence[str] = ...,
    depth: int = ...,
    per_query: Literal[False] = ...,
) -> dict[str, float]: ...


@overload
def score_ranked(
    ranked_relevance: np.ndarray,
    judged_relevance: Sequence[np.ndarray],
    *,
    metrics: Sequence[str] = ...,
    depth: int = ...,
    per_query: Literal[True],
) -> dict[str, np.ndarray]: ...


def score_ranked(
    ranked_relevance: np.ndarray,
    judged_relevance: Sequence[np.ndarray],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    depth: int = 100,
    per_query: bool = False,
) -> dict[str, float] | dict[str, np.ndarray]:
    """Score rankings given as relevance grades by rank: the vectorised kernel behind `score_run`.

    Args:
        ranked_relevance: `(n_queries, n_ranked)` grades of the document at each rank, best first;
            0 (or any value <= 0) for non-relevant and unjudged documents and for padding.
        judged_relevance: for each query, the grades of all its judged documents (only grades > 0 are
            used: their count is the number of relevant documents, their values give the ideal DCG).
        metrics: metric names (see `parse_metric`).
        depth: rank cut-off applied to the rankings first; `map` is average precision over the top
            `depth`. Every k must be <= depth.
        per_query: return `{metric: array}` with one value per query (`nan` where skipped) instead of means.

    Returns:
        `{metric: mean}` over queries with at least one relevant document, or per-query arrays.

    Raises:
        ValueError: unknown metric, k < 1 or k > depth, mismatched shapes, or no query with a relevant doc.

    Example:
        >>> ranked = np.array([[0, 2, 0], [1, 0, 0]])
        >>> judged = [np.array([2, 1]), np.array([1])]
        >>> score_ranked(ranked, judged, metrics=["mrr@10", "recall@3"], depth=10)
        {'mrr@10': 0.75, 'recall@3': 0.75}
    """
    report = ranked_report(ranked_relevance, judged_relevance, metrics=metrics, depth=depth)
    return report.per_query if per_query else report.metrics


def _examples(ids: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:n])
    return f"[{shown}{', ...' if len(ids) > n else ''}]"


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


def _relevant_ranks(
    docs: Mapping[str, float], scores: np.ndarray, grades: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """0-based ranks and grades of the relevant retrieved docs, in trec_eval's order.

    trec_eval (form_res_rels.c, `comp_sim_docno`) sorts by score descending, then by doc id descending
    (`strcmp`). A doc's rank is therefore the number of docs with a higher score plus the number with the
    same score and a larger id; only the few relevant docs need a rank, so the run is never fully sorted.
    """
    relevant = [(doc, grade) for doc, grade in grades.items() if grade > 0 and doc in docs]
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
    common = [qid for qid in qrels if qid in run]
    if not common:
        raise ValueError(
            f"The run shares no query id with the qrels (0 matched): the qrels have {len(qrels):,} ids, "
            f"e.g. {_examples(list(qrels))}; the run has {len(run):,}, e.g. {_examples(list(run))}. "
            "Check that both use the same ids (and the same type: strings)."
        )
    missing = len(qrels) - len(common)
    if missing:
        logger.warning(
            "%d of %d qrels queries are not in the run; they score 0 (as trec_eval -c).", missing, len(qrels)
        )
    query_ids = list(qrels)
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
        cols, rel = _relevant_ranks(docs, scores, grades)
        keep = cols < depth
        hit_rows.append(np.full(int(keep.sum()), row))
        hit_cols.append(cols[keep])
        hit_grades.append(rel[keep])
    ranked = np.zeros((len(query_ids), width))
    if hit_rows:
        ranked[np.concatenate(hit_rows), np.concatenate(hit_cols)] = np.concatenate(hit_grades)
    report = ranked_report(ranked, judged, metrics=[m.name for m in parsed], depth=depth)
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
    in `run_report(...).num_skipped` and logged).

    Args:
        qrels: `{query_id: {doc_id: grade}}`; grade > 0 is relevant, larger is more relevant (nDCG).
        run: `{query_id: {doc_id: score}}`; larger is better.
        metrics: metric names (see `parse_metric`); default `DEFAULT_METRICS`.
        depth: documents kept per query; `map` is trec_eval `map` on the run cut to `depth`.
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

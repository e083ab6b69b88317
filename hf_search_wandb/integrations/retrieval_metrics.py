"""`retrieval_metrics`: this package's IR metrics as a Hugging Face `evaluate` metric module.

Loaded offline from the installed package, the way the Hub's `trec_eval` module is used::

    import evaluate
    from hf_search_wandb import evaluate_module_path
    metric = evaluate.load(evaluate_module_path())
    metric.compute(predictions=run, references=qrels)   # {"mrr@10": ..., "ndcg@10": ..., ...}

The numbers are `hf_search_wandb.score_run(qrels, run)`'s (equal to trec_eval). `evaluate` copies this file into
its modules cache and imports it from there, so it only imports installed libraries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import evaluate

from hf_search_wandb.core.metrics.scoring import DEFAULT_METRICS, score_run

_DESCRIPTION = """Retrieval metrics equal to trec_eval: MRR@k, nDCG@k (linear gain, graded), Recall@k,
Precision@k, Hit@k (trec_eval `success`) and MAP over the run cut to `depth`. Means over the queries that
have at least one relevant document; queries of the qrels missing from the run score 0."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: the run. Either `{query_id: {doc_id: score}}`, or trec_eval-module columns
        `{"query": [...], "docid": [...], "score": [...]}` (extra columns such as `q0`, `rank`, `system` are
        ignored), or a list of either (batches: their union is scored).
    references: the qrels. Either `{query_id: {doc_id: grade}}`, or columns
        `{"query": [...], "docid": [...], "rel": [...]}`, or a list of either.
    metrics: metric names (default `mrr@10`, `ndcg@10`, `recall@100`, `map`, `hit@10`).
    depth: documents kept per query (default 100).
    per_query: return `{query_id: {metric: value}}` instead of the means.
Returns:
    `{metric: mean}`, e.g. `{"mrr@10": 0.75, ...}`.
Examples:
    >>> metric = evaluate.load(evaluate_module_path())  # doctest: +SKIP
    >>> metric.compute(predictions={"q1": {"d1": 0.9, "d2": 0.1}}, references={"q1": {"d2": 1}},
    ...                metrics=["mrr@10"])  # doctest: +SKIP
    {'mrr@10': 0.5}
"""

_CITATION = """@inproceedings{van2018trec_eval,
  title={The trec_eval evaluation tool},
  author={{NIST}},
  url={https://github.com/usnistgov/trec_eval}
}"""

_RUN_COLUMNS = ("query", "docid", "score")
_QRELS_COLUMNS = ("query", "docid", "rel")


def _columns(value: Any, columns: tuple[str, str, str], what: str) -> dict[str, list[Any]]:
    """One batch in column form with string ids; accepts the nested-dict form too."""
    if isinstance(value, Mapping) and all(c in value for c in columns):
        lengths = {c: len(value[c]) for c in columns}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{what}: columns {columns} have different lengths {lengths}.")
        ids = [str(q) for q in value[columns[0]]], [str(d) for d in value[columns[1]]]
        return {columns[0]: ids[0], columns[1]: ids[1], columns[2]: list(value[columns[2]])}
    if isinstance(value, Mapping):
        out: dict[str, list[Any]] = {c: [] for c in columns}
        for qid, docs in value.items():
            if not isinstance(docs, Mapping):
                raise TypeError(
                    f"{what}: expected {{query_id: {{doc_id: {columns[2]}}}}} or columns {list(columns)}; "
                    f"query {qid!r} maps to a {type(docs).__name__}."
                )
            for doc_id, number in docs.items():
                out[columns[0]].append(str(qid))
                out[columns[1]].append(str(doc_id))
                out[columns[2]].append(number)
        return out
    raise TypeError(
        f"{what}: expected {{query_id: {{doc_id: {columns[2]}}}}} or columns {list(columns)}, "
        f"got {type(value).__name__}."
    )


def _batch(value: Any, columns: tuple[str, str, str], what: str) -> list[dict[str, list[Any]]]:
    if value is None:
        return []
    items = value if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else [value]
    return [_columns(item, columns, what) for item in items]


def _nested(batches: Sequence[Mapping[str, Sequence[Any]]], columns: tuple[str, str, str]) -> dict[str, dict]:
    nested: dict[str, dict[str, Any]] = {}
    for batch in batches:
        for qid, doc_id, number in zip(*(batch[c] for c in columns), strict=True):
            nested.setdefault(qid, {})[doc_id] = number
    return nested


class RetrievalMetrics(evaluate.Metric):
    """trec_eval-equal retrieval metrics (see the module docstring)."""

    def _info(self) -> evaluate.MetricInfo:
        ids = datasets.Sequence(datasets.Value("string"))
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {"query": ids, "docid": ids, "score": datasets.Sequence(datasets.Value("float64"))},
                    "references": {"query": ids, "docid": ids, "rel": datasets.Sequence(datasets.Value("int64"))},
                }
            ),
            codebase_urls=["https://github.com/usnistgov/trec_eval"],
            reference_urls=["https://trec.nist.gov/trec_eval/"],
        )

    def add_batch(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> None:
        """Add runs and qrels in any accepted form (nested dicts, columns, or lists of them)."""
        super().add_batch(
            predictions=_batch(predictions, _RUN_COLUMNS, "predictions"),
            references=_batch(references, _QRELS_COLUMNS, "references"),
            **kwargs,
        )

    def add(self, *, prediction: Any = None, reference: Any = None, **kwargs: Any) -> None:
        """Add one run and its qrels."""
        self.add_batch(predictions=[prediction], references=[reference], **kwargs)

    def _compute(
        self,
        predictions: Sequence[Mapping[str, Sequence[Any]]],
        references: Sequence[Mapping[str, Sequence[Any]]],
        metrics: Sequence[str] = DEFAULT_METRICS,
        depth: int = 100,
        per_query: bool = False,
    ) -> dict[str, Any]:
        run = _nested(predictions, _RUN_COLUMNS)
        qrels = _nested(references, _QRELS_COLUMNS)
        if per_query:
            return score_run(qrels, run, metrics=metrics, depth=depth, per_query=True)
        return score_run(qrels, run, metrics=metrics, depth=depth)

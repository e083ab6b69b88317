"""Retrieval-example and error-analysis tables and score histograms, built from a kept evaluation.

Everything here reads a :class:`~hf_search_wandb.core.evaluation.results.RetrievalResult` (the rankings and scores
the evaluator already computed) plus the query / document texts: nothing is encoded again. The
row builders (`retrieval_example_rows`, `error_analysis_rows`) are pure Python; the `*_table` and
`score_histograms` functions wrap them in `wandb` objects without needing a run; the `log_*`
functions log them to a run (the active `wandb.run` when `run` is None, nothing when there is none
or the run is disabled).

Row counts are capped below wandb's limit for a table logged to a run (`wandb.Table.MAX_ROWS`,
10,000 rows): a larger table would be silently truncated by wandb.

Why over 400 lines: the row builders (plain Python, tested without wandb), their `wandb.Table` /
`wandb.Histogram` wrappers and the logging entry points for one result type live together; reranking tables
are in their own module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hf_search_wandb.core.data.inputs import Qrels
from hf_search_wandb.tracking.log_keys import STEP_KEY
from hf_search_wandb.tracking.multi_vector_config import token_histograms
from hf_search_wandb.tracking.sparse_config import sparsity_histograms
from hf_search_wandb.tracking.wandb_api import active_run, require_wandb

if TYPE_CHECKING:
    from hf_search_wandb.core.evaluation.results import RetrievalResult

#: wandb truncates a table logged to a run beyond this many rows (`wandb.Table.MAX_ROWS`).
TABLE_ROW_LIMIT = 10_000
#: Default cap on error-analysis rows (the worst misses are kept).
DEFAULT_MAX_ERROR_ROWS = 500

EXAMPLE_COLUMNS = ["query", "rank", "document", "score", "relevant"]
ERROR_COLUMNS = ["query", "expected_doc", "top1_doc", "top1_score", "expected_rank"]
REGRESSION_COLUMNS = [
    "query",
    "relevant_doc",
    "old_rank",
    "new_rank",
    "displaced_by",
    "before",
    "after",
    "delta",
]


def make_table(columns: list[str], rows: list[list[Any]], *, allow_mixed_types: bool = False) -> Any:
    """A `wandb.Table` of `rows`, whose column types wandb infers and checks on the first row only.

    `wandb.Table(data=rows)` re-derives the column types row by row (about 50 µs a row, most of the
    media cost); the builders here produce one Python type per column (a mixed column is declared
    with `allow_mixed_types`), so checking the first row is enough and the rest are appended as is.
    """
    wandb = require_wandb()
    table = wandb.Table(columns=list(columns), data=rows[:1], allow_mixed_types=allow_mixed_types)
    table.data.extend(rows[1:])
    return table


def shorten(text: str, max_chars: int = 200) -> str:
    """`text` cut to at most `max_chars` characters, ending in "…" when it was cut.

    Example:
        >>> shorten("a long document about cells", 10)
        'a long do…'
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}.")
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def sample_query_ids(query_ids: Sequence[str], num_examples: int, *, seed: int = 0) -> list[str]:
    """A fixed, seeded sample of `num_examples` query ids.

    The sample depends only on the *set* of ids and the seed, never on their order, so every
    evaluation of the same query set shows the same queries and tables compare across steps.

    Example:
        >>> ids = [f"q{i}" for i in range(100)]
        >>> sample_query_ids(ids, 3) == sample_query_ids(list(reversed(ids)), 3)
        True
    """
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}.")
    pool = sorted(set(query_ids))
    if num_examples >= len(pool):
        return pool
    picked = np.random.default_rng(seed).choice(len(pool), size=num_examples, replace=False)
    return [pool[i] for i in sorted(picked.tolist())]


def _check_k(name: str, k: int, limit: int) -> int:
    if k < 1:
        raise ValueError(f"{name} must be >= 1, got {k}.")
    return min(k, limit)


def retrieval_example_rows(
    result: RetrievalResult,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    qrels: Qrels,
    *,
    num_examples: int = 20,
    k: int = 5,
    seed: int = 0,
    max_chars: int = 200,
) -> list[list[Any]]:
    """Rows `[query, rank, document, score, relevant]`: the top `k` of a seeded sample of queries.

    Args:
        result: The evaluation to read (its `top_indices` / `top_scores`).
        queries: `{query_id: text}`.
        corpus: `{doc_id: text}`; documents are cut to `max_chars` characters.
        qrels: `{query_id: {doc_id: grade}}`; `relevant` is True when the grade is > 0.
        num_examples: How many queries (a fixed sample, see `sample_query_ids`).
        k: How many ranked documents per query (at most the evaluated depth).
        seed: Seed of the query sample.
        max_chars: Longest query / document text kept.

    Returns:
        At most `min(num_examples * k, TABLE_ROW_LIMIT)` rows, queries in id order, ranks 1..k.

    Example:
        >>> import numpy as np
        >>> from hf_search_wandb.core.evaluation.results import RetrievalResult
        >>> result = RetrievalResult(
        ...     metrics={}, query_ids=["q1"], doc_ids=["d1", "d2", "d3"],
        ...     top_indices=np.array([[1, 0, 2]]), top_scores=np.array([[0.75, 0.5, 0.25]], dtype=np.float32),
        ...     relevant_ranks={"q1": {"d1": 2}}, positive_scores=np.array([0.5], dtype=np.float32),
        ...     negative_scores=np.array([0.75, 0.25], dtype=np.float32), timings={})
        >>> queries = {"q1": "what causes diabetes?"}
        >>> corpus = {"d1": "Insulin resistance ...", "d2": "Obesity and sleep ...", "d3": "Stem cells ..."}
        >>> for row in retrieval_example_rows(result, queries, corpus, {"q1": {"d1": 1}}, k=2):
        ...     print(row)
        ['what causes diabetes?', 1, 'Obesity and sleep ...', 0.75, False]
        ['what causes diabetes?', 2, 'Insulin resistance ...', 0.5, True]
    """
    k = _check_k("k", k, result.top_indices.shape[1])
    num_examples = min(num_examples, TABLE_ROW_LIMIT // k)
    position = {qid: i for i, qid in enumerate(result.query_ids)}
    chosen = sample_query_ids(result.query_ids, num_examples, seed=seed)
    rows_idx = np.fromiter((position[q] for q in chosen), dtype=np.int64, count=len(chosen))
    indices = result.top_indices[rows_idx, :k].tolist()
    scores = result.top_scores[rows_idx, :k].astype(np.float64).tolist()
    doc_ids = result.doc_ids
    rows: list[list[Any]] = []
    for qid, q_indices, q_scores in zip(chosen, indices, scores, strict=True):
        query = shorten(queries.get(qid, ""), max_chars)
        judged = qrels.get(qid, {})
        for rank, (doc_index, score) in enumerate(zip(q_indices, q_scores, strict=True), 1):
            if doc_index < 0:  # fewer than k documents in the corpus
                break
            doc_id = doc_ids[doc_index]
            rows.append(
                [query, rank, shorten(corpus.get(doc_id, ""), max_chars), score, judged.get(doc_id, 0) > 0]
            )
    return rows


def _expected(qid: str, result: RetrievalResult, qrels: Qrels) -> tuple[str | None, int | None]:
    """The best-ranked relevant doc of `qid` and its true 1-based rank (None when unknown)."""
    ranks = result.relevant_ranks.get(qid, {})
    relevant = [d for d, grade in qrels.get(qid, {}).items() if grade > 0] or list(ranks)
    if not relevant:
        return None, None
    known = [(int(r), d) for d in relevant if (r := ranks.get(d)) is not None and r > 0]
    if known:
        rank, doc = min(known)
        return doc, rank
    return relevant[0], None


def error_analysis_rows(
    result: RetrievalResult,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    qrels: Qrels,
    *,
    error_k: int = 10,
    max_rows: int = DEFAULT_MAX_ERROR_ROWS,
    max_chars: int = 200,
) -> list[list[Any]]:
    """Rows `[query, expected_doc, top1_doc, top1_score, expected_rank]` for the misses.

    A query is a miss when none of its relevant documents ranks in the top `error_k`.
    `expected_doc` is its best-ranked relevant document and `expected_rank` that document's true
    1-based rank in the whole evaluated corpus (`result.relevant_ranks`), or the string
    `"not in top-N"` (N = the evaluated depth) when the rank is unknown. Rows are sorted worst
    first (unknown ranks first, then by descending rank) and capped at `max_rows`.

    Example:
        >>> import numpy as np
        >>> from hf_search_wandb.core.evaluation.results import RetrievalResult
        >>> result = RetrievalResult(
        ...     metrics={}, query_ids=["q1"], doc_ids=["d1", "d2", "d3"],
        ...     top_indices=np.array([[1, 0, 2]]), top_scores=np.array([[0.75, 0.5, 0.25]], dtype=np.float32),
        ...     relevant_ranks={"q1": {"d1": 2}}, positive_scores=np.array([0.5], dtype=np.float32),
        ...     negative_scores=np.array([0.75, 0.25], dtype=np.float32), timings={})
        >>> queries = {"q1": "what causes diabetes?"}
        >>> corpus = {"d1": "Insulin resistance ...", "d2": "Obesity and sleep ...", "d3": "Stem cells ..."}
        >>> error_analysis_rows(result, queries, corpus, {"q1": {"d1": 1}}, error_k=1)
        [['what causes diabetes?', 'Insulin resistance ...', 'Obesity and sleep ...', 0.75, 2]]
    """
    depth = result.top_indices.shape[1]
    error_k = _check_k("error_k", error_k, TABLE_ROW_LIMIT)
    max_rows = min(max(max_rows, 0), TABLE_ROW_LIMIT)
    misses: list[tuple[float, int, str, str, int | None]] = []
    relevant_ranks = result.relevant_ranks
    for i, qid in enumerate(result.query_ids):
        ranks = relevant_ranks.get(qid)
        if ranks and min(ranks.values()) <= error_k:
            continue  # a hit: the common case, decided without looking at the qrels
        doc, rank = _expected(qid, result, qrels)
        if doc is None or (rank is not None and rank <= error_k):
            continue
        misses.append((-(rank if rank is not None else np.inf), i, qid, doc, rank))
    misses.sort()
    rows: list[list[Any]] = []
    for _, i, qid, doc, rank in misses[:max_rows]:
        top_index = int(result.top_indices[i, 0])
        top1 = corpus.get(result.doc_ids[top_index], "") if top_index >= 0 else ""
        rows.append(
            [
                shorten(queries.get(qid, ""), max_chars),
                shorten(corpus.get(doc, ""), max_chars),
                shorten(top1, max_chars),
                float(result.top_scores[i, 0]),
                rank if rank is not None else f"not in top-{depth}",
            ]
        )
    return rows


def regression_rows(
    result: RetrievalResult,
    before_ranks: Mapping[str, Mapping[str, int]],
    before: np.ndarray,
    after: np.ndarray,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    *,
    max_rows: int = DEFAULT_MAX_ERROR_ROWS,
    max_chars: int = 200,
) -> list[list[Any]]:
    """Rows `[query, relevant_doc, old_rank, new_rank, displaced_by, before, after, delta]`: the queries whose
    value of one measure dropped most since an earlier evaluation (the baseline), worst first.

    `before` / `after` hold the measure per query of `result.query_ids` at the baseline and now (NaN: not
    compared). `relevant_doc` is the relevant document the baseline ranked best (from `before_ranks`, the
    baseline's `relevant_ranks`), `old_rank` / `new_rank` its true rank then and now ("not in top-N" when
    unknown), `displaced_by` the document now at its old rank (the new top-1 when the old rank is beyond the
    kept depth). Capped at `max_rows` (the error-analysis cap).

    Example:
        >>> import numpy as np
        >>> from hf_search_wandb.core.evaluation.results import RetrievalResult
        >>> now = RetrievalResult(
        ...     metrics={}, query_ids=["q1", "q2"], doc_ids=["d1", "d2", "d3"],
        ...     top_indices=np.array([[1, 0, 2], [2, 1, 0]]), top_scores=np.ones((2, 3), dtype=np.float32),
        ...     relevant_ranks={"q1": {"d1": 2}, "q2": {"d3": 1}}, positive_scores=np.ones(2),
        ...     negative_scores=np.ones(4), timings={})
        >>> corpus = {"d1": "Insulin ...", "d2": "Obesity ...", "d3": "Stem cells ..."}
        >>> regression_rows(now, {"q1": {"d1": 1}, "q2": {"d3": 1}}, np.array([1.0, 1.0]), np.array([0.5, 1.0]),
        ...                 {"q1": "what causes diabetes?", "q2": "stem cells"}, corpus)
        [['what causes diabetes?', 'Insulin ...', 1, 2, 'Obesity ...', 1.0, 0.5, -0.5]]
    """
    before, after = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if before.shape != (len(result.query_ids),) or after.shape != before.shape:
        raise ValueError(
            f"before/after need one value per query of the result ({len(result.query_ids)}), got "
            f"{before.shape} and {after.shape}"
        )
    max_rows = min(max(max_rows, 0), TABLE_ROW_LIMIT)
    with np.errstate(invalid="ignore"):
        delta = after - before
    dropped = np.flatnonzero(np.isfinite(delta) & (delta < -1e-12))
    worst = dropped[np.argsort(delta[dropped], kind="stable")][:max_rows]
    depth = result.top_indices.shape[1] if result.top_indices.ndim == 2 else 0
    unknown = f"not in top-{depth}"
    rows: list[list[Any]] = []
    for i in worst.tolist():
        qid = result.query_ids[i]
        known = [(int(r), d) for d, r in before_ranks.get(qid, {}).items() if r is not None and int(r) > 0]
        old_rank, doc = min(known) if known else (None, None)
        new_rank = result.relevant_ranks.get(qid, {}).get(doc) if doc is not None else None
        at = old_rank - 1 if old_rank is not None and old_rank <= depth else 0
        index = int(result.top_indices[i, at]) if depth else -1
        displaced = result.doc_ids[index] if index >= 0 else None
        rows.append(
            [
                shorten(queries.get(qid, qid), max_chars),
                shorten(corpus.get(doc, doc), max_chars) if doc is not None else "",
                old_rank if old_rank is not None else unknown,
                int(new_rank) if new_rank is not None else unknown,
                shorten(corpus.get(displaced, displaced), max_chars) if displaced is not None else "",
                float(before[i]),
                float(after[i]),
                float(delta[i]),
            ]
        )
    return rows


def regressions_table(
    result: RetrievalResult,
    before_ranks: Mapping[str, Mapping[str, int]],
    before: np.ndarray,
    after: np.ndarray,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    *,
    max_rows: int = DEFAULT_MAX_ERROR_ROWS,
    max_chars: int = 200,
) -> Any:
    """`wandb.Table` with columns `query, relevant_doc, old_rank, new_rank, displaced_by, before, after, delta`
    (see `regression_rows`; the rank columns are mixed: ints and "not in top-N")."""
    rows = regression_rows(result, before_ranks, before, after, queries, corpus, max_rows=max_rows,
                           max_chars=max_chars)  # fmt: skip
    return make_table(REGRESSION_COLUMNS, rows, allow_mixed_types=True)


def retrieval_examples_table(
    result: RetrievalResult,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    qrels: Qrels,
    *,
    num_examples: int = 20,
    k: int = 5,
    seed: int = 0,
    max_chars: int = 200,
) -> Any:
    """`wandb.Table` with columns `query, rank, document, score, relevant` (see `retrieval_example_rows`).

    Example:
        >>> from sentence_transformers import SentenceTransformer
        >>> from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
        >>> ev = RetrievalEvaluator.from_beir("data/scifact", "test", max_queries=10, corpus_sample=200)
        >>> _ = ev(SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2"))
        >>> table = retrieval_examples_table(ev.last_result, ev.queries, ev.corpus, ev.qrels, num_examples=4, k=5)
        >>> table.columns, len(table.data)
        (['query', 'rank', 'document', 'score', 'relevant'], 20)
    """
    rows = retrieval_example_rows(
        result, queries, corpus, qrels, num_examples=num_examples, k=k, seed=seed, max_chars=max_chars
    )
    return make_table(EXAMPLE_COLUMNS, rows)


def error_analysis_table(
    result: RetrievalResult,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    qrels: Qrels,
    *,
    error_k: int = 10,
    max_rows: int = DEFAULT_MAX_ERROR_ROWS,
    max_chars: int = 200,
) -> Any:
    """`wandb.Table` with columns `query, expected_doc, top1_doc, top1_score, expected_rank`.

    `expected_rank` holds ints and, for unknown ranks, the string "not in top-N" (a mixed column).
    See `error_analysis_rows`.

    Example:
        >>> from sentence_transformers import SentenceTransformer
        >>> from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
        >>> ev = RetrievalEvaluator.from_beir("data/scifact", "test", max_queries=10, corpus_sample=200)
        >>> _ = ev(SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2"))
        >>> table = error_analysis_table(ev.last_result, ev.queries, ev.corpus, ev.qrels, error_k=1)
        >>> table.columns
        ['query', 'expected_doc', 'top1_doc', 'top1_score', 'expected_rank']
    """
    rows = error_analysis_rows(
        result, queries, corpus, qrels, error_k=error_k, max_rows=max_rows, max_chars=max_chars
    )
    return make_table(ERROR_COLUMNS, rows, allow_mixed_types=True)


def score_histograms(result: RetrievalResult, *, num_bins: int = 64) -> dict[str, Any]:
    """`wandb.Histogram`s of the kept scores.

    `score_distribution`: every score in the evaluated top `depth`; `positive_scores`: the score of
    every (query, relevant document) pair; `negative_scores`: the non-relevant documents in each
    query's top `depth`. Non-finite scores are dropped; an empty series is left out.

    Example:
        >>> from sentence_transformers import SentenceTransformer
        >>> from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
        >>> ev = RetrievalEvaluator.from_beir("data/scifact", "test", max_queries=10, corpus_sample=200)
        >>> _ = ev(SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2"))
        >>> sorted(score_histograms(ev.last_result))
        ['negative_scores', 'positive_scores', 'score_distribution']
    """
    wandb = require_wandb()
    series = {
        "score_distribution": result.all_scores,
        "positive_scores": result.positive_scores,
        "negative_scores": result.negative_scores,
    }
    out: dict[str, Any] = {}
    for key, values in series.items():
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size:
            out[key] = wandb.Histogram(np_histogram=np.histogram(values, bins=num_bins))
    return out


def _texts(evaluator: Any, queries: Any, corpus: Any, qrels: Any) -> tuple[Any, Any, Any]:
    if evaluator is not None:
        queries = evaluator.queries if queries is None else queries
        corpus = evaluator.corpus if corpus is None else corpus
        qrels = evaluator.qrels if qrels is None else qrels
    if queries is None or corpus is None or qrels is None:
        raise ValueError(
            "Pass `evaluator=` (a RetrievalEvaluator) or all of `queries`, `corpus` and `qrels`."
        )
    return queries, corpus, qrels


def log_row(run: Any, payload: dict[str, Any], step: int | None) -> None:
    """Log `payload` to `run` as one history row, at `step` on the callback's step axis (`STEP_KEY`) when given."""
    run.log(payload if step is None else {**payload, STEP_KEY: int(step)})


def log_retrieval_examples(
    run: Any,
    result: RetrievalResult | None = None,
    evaluator: Any = None,
    *,
    queries: Mapping[str, str] | None = None,
    corpus: Mapping[str, str] | None = None,
    qrels: Qrels | None = None,
    step: int | None = None,
    num_examples: int = 20,
    k: int = 5,
    seed: int = 0,
    max_chars: int = 200,
    key: str = "retrieval_examples",
) -> Any:
    """Log the retrieval-examples table to `run` (outside a trainer too) and return it.

    Args:
        run: A wandb run; None uses the active `wandb.run`. Nothing is logged (and None returned)
            when there is no run or it is disabled.
        result: The evaluation; None takes `evaluator.last_result`.
        evaluator: A `RetrievalEvaluator`, for its `queries`, `corpus`, `qrels` (and `last_result`).
        queries, corpus, qrels: The texts and judgements, when no evaluator is passed.
        step: Logged as `train/global_step` with the table (the callback's step axis).
        num_examples, k, seed, max_chars: See `retrieval_example_rows`.
        key: The history key.

    Example:
        >>> from sentence_transformers import SentenceTransformer
        >>> from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
        >>> ev = RetrievalEvaluator.from_beir("data/scifact", "test", max_queries=10, corpus_sample=200)
        >>> _ = ev(SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2"))
        >>> import tempfile, wandb
        >>> with wandb.init(project="search-model-training", mode="offline", dir=tempfile.mkdtemp()) as run:
        ...     logged = log_retrieval_examples(run, evaluator=ev, num_examples=3)
        >>> type(logged).__name__
        'Table'
    """
    run = active_run(run)
    if run is None:
        return None
    result = result if result is not None else getattr(evaluator, "last_result", None)
    if result is None:
        raise ValueError("No result to log: pass `result=` or an evaluator that has been run.")
    queries, corpus, qrels = _texts(evaluator, queries, corpus, qrels)
    table = retrieval_examples_table(
        result, queries, corpus, qrels, num_examples=num_examples, k=k, seed=seed, max_chars=max_chars
    )
    log_row(run, {key: table}, step)
    return table


def log_evaluation_media(
    run: Any,
    result: RetrievalResult,
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
    """Log `retrieval_examples`, `error_analysis` and the three score histograms in one history row.

    `namespace` puts the keys under it (`test/retrieval_examples`): for one of several evaluators, or an
    evaluation after training.

    This is what `SearchWandbCallback` calls after each evaluation it logs media for. `result` is the
    evaluator's kept result (`evaluator.last_result`); no model is run. `num_examples=0` leaves the
    examples table out, `error_k=0` the error table, `histograms=False` the histograms.

    Returns:
        What was logged, by key (empty when `run` is None/disabled and there is no active run).

    Example:
        >>> from sentence_transformers import SentenceTransformer
        >>> from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
        >>> ev = RetrievalEvaluator.from_beir("data/scifact", "test", max_queries=10, corpus_sample=200)
        >>> _ = ev(SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2"))
        >>> import tempfile, wandb
        >>> with wandb.init(project="search-model-training", mode="offline", dir=tempfile.mkdtemp()) as run:
        ...     logged = log_evaluation_media(run, ev.last_result, ev, step=500)
        >>> sorted(logged)
        ['error_analysis', 'negative_scores', 'positive_scores', 'retrieval_examples', 'score_distribution']
    """
    run = active_run(run)
    if run is None:
        return {}
    queries, corpus, qrels = _texts(evaluator, None, None, None)
    payload: dict[str, Any] = {}
    if num_examples > 0:
        payload["retrieval_examples"] = retrieval_examples_table(
            result, queries, corpus, qrels, num_examples=num_examples, k=k, seed=seed
        )
    if error_k > 0:
        payload["error_analysis"] = error_analysis_table(result, queries, corpus, qrels, error_k=error_k)
    if histograms:
        payload.update(score_histograms(result))
        payload.update(sparsity_histograms(result))  # a sparse evaluation: document lengths in active dims
        payload.update(token_histograms(result))  # a multi-vector evaluation: scored tokens per text
    if namespace:
        payload = {f"{namespace}/{key}": value for key, value in payload.items()}
    if payload:
        log_row(run, payload, step)
    return payload

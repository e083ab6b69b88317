"""First-stage candidates for reranking: from a run dict, a TREC run file, a `RetrievalResult`, or BM25.

Whatever the source, each query's candidates are ordered the way trec_eval orders a run (score
descending, ties by doc id descending) and cut to `depth`, so the first-stage metrics the reranking
evaluator reports equal `score_run(qrels, run)` (and trec_eval) on the same run cut to `depth`.

BM25 candidates come from `core.data.bm25` (the index hard-negative mining builds too; `bm25s` lazily).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hf_search_wandb.core.data.bm25 import BM25Index
from hf_search_wandb.core.data.inputs import id_keyed

Run = Mapping[str, Mapping[str, float]]


def trec_order(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """`(doc_id, score)` pairs in trec_eval's order: score descending, then doc id descending.

    Example:
        >>> trec_order({"d1": 0.5, "d3": 0.9, "d2": 0.5})
        [('d3', 0.9), ('d2', 0.5), ('d1', 0.5)]
    """
    return sorted(((str(d), float(s)) for d, s in docs.items()), key=lambda x: (x[1], x[0]), reverse=True)


def candidates_from_run(run: Run, depth: int) -> dict[str, list[tuple[str, float]]]:
    """`{query_id: [(doc_id, score), ...]}`: each query's top `depth` docs of `run`, in trec_eval's order.

    Ids are read as text, the way `score_run` and the loaders read them (`normalize_id`): an int id
    becomes its decimal text, so it matches the string ids of the qrels and corpus.

    Raises:
        TypeError: `run` is not a `{query_id: {doc_id: score}}` mapping, or an id is neither a string nor an
            integer (a float id `1.0` would never match `"1"`).
        ValueError: a score is not a finite number, two ids are the same once read as text (`1` and `"1"`),
            an id is blank, or `depth < 1`.

    Example:
        >>> candidates_from_run({"q1": {"d1": 0.2, "d2": 0.7, "d3": 0.1}}, depth=2)
        {'q1': [('d2', 0.7), ('d1', 0.2)]}
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}.")
    if not isinstance(run, Mapping):
        raise TypeError(f"A run must be a mapping {{query_id: {{doc_id: score}}}}, got {type(run).__name__}.")
    out: dict[str, list[tuple[str, float]]] = {}
    for qid, docs in id_keyed(run, "run").items():
        if not isinstance(docs, Mapping):
            raise TypeError(
                f"run[{qid!r}] must be a mapping {{doc_id: score}}, got {type(docs).__name__}."
            )
        docs = id_keyed(docs, f"run[{qid!r}]")
        try:
            ordered = trec_order(docs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"run[{qid!r}] has a score that is not a number ({err}).") from err
        if any(not np.isfinite(s) for _, s in ordered):
            raise ValueError(f"run[{qid!r}] has a non-finite score (nan or inf): scores must be finite.")
        out[qid] = ordered[:depth]
    return out


def read_trec_run(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """Read a TREC run file (`qid Q0 docid rank score tag`, whitespace-separated) into a run dict.

    The rank column is ignored, as trec_eval ignores it: documents are ordered by score. A document
    listed twice for a query keeps its last score.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "bm25.run"
        >>> _ = p.write_text("q1 Q0 d2 1 7.5 bm25\\nq1 Q0 d1 2 3.0 bm25\\n")
        >>> read_trec_run(p)
        {'q1': {'d2': 7.5, 'd1': 3.0}}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No TREC run file at {path}.")
    run: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(
                    f"{path}:{line_no}: a TREC run line has 6 columns (qid Q0 docid rank score tag), "
                    f"got {len(parts)}: {line.strip()!r}"
                )
            qid, _, did, _, score, _ = parts
            try:
                run.setdefault(qid, {})[did] = float(score)
            except ValueError:
                raise ValueError(f"{path}:{line_no}: the score {score!r} is not a number.") from None
    if not run:
        raise ValueError(f"The TREC run file {path} is empty.")
    return run


def write_trec_run(run: Run, path: str | os.PathLike[str], tag: str = "run") -> Path:
    """Write a run dict as a TREC run file (trec_eval's order, ranks from 1) and return the path."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as handle:
        for qid, docs in run.items():
            for rank, (did, score) in enumerate(trec_order(docs), 1):
                handle.write(f"{qid} Q0 {did} {rank} {score!r} {tag}\n")
    return path


def candidates_from_result(result: Any, depth: int) -> dict[str, list[tuple[str, float]]]:
    """The top `depth` of a bi-encoder's `RetrievalResult` (`RetrievalEvaluator.last_result`).

    Raises:
        ValueError: the result keeps fewer than `depth` docs per query (evaluate with a larger `depth`).
    """
    if result.depth < depth and result.depth < len(result.doc_ids):
        raise ValueError(
            f"The RetrievalResult keeps {result.depth} docs per query, fewer than the {depth} to rerank: "
            f"evaluate the bi-encoder with RetrievalEvaluator(depth={depth}) or rerank fewer."
        )
    return candidates_from_run(result.run(), depth)


def bm25_candidates(
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    depth: int,
    *,
    stopwords: str | list[str] | None = "en",
    stemmer: Any = None,
    show_progress: bool = False,
) -> dict[str, list[tuple[str, float]]]:
    """BM25 (`bm25s`) top `depth` of `corpus` for every query: the index is built once, here.

    Documents with a BM25 score of 0 (no query term) are kept when fewer than `depth` scored
    higher: BM25 ranks them last, in trec_eval's tie order.

    Example:
        >>> found = bm25_candidates({"q1": "insulin mice"}, {"d1": "insulin in mice", "d2": "sleep", "d3": "mice"}, 2)
        >>> [doc for doc, _ in found["q1"]]
        ['d1', 'd3']
    """
    index = BM25Index(corpus, stopwords=stopwords, stemmer=stemmer, show_progress=show_progress)
    qids = list(queries)
    top, scores = index.top_k([queries[q] for q in qids], depth)
    run = {
        qid: {index.doc_ids[i]: float(s) for i, s in zip(top[row].tolist(), scores[row].tolist(), strict=True)}
        for row, qid in enumerate(qids)
    }
    return candidates_from_run(run, min(len(index.doc_ids), depth))


def as_candidates(
    source: Any, queries: Mapping[str, str], corpus: Mapping[str, str], depth: int
) -> tuple[dict[str, list[tuple[str, float]]], str]:
    """Candidates from any supported source, and the source's name (for logs and the model card).

    `source`: None or `"bm25"` (BM25 over `corpus`), a run dict, a TREC run file path, or a `RetrievalResult`.
    """
    if source is None or (isinstance(source, str) and source == "bm25"):
        return bm25_candidates(queries, corpus, depth), "bm25"
    if isinstance(source, (str, os.PathLike)):
        return candidates_from_run(read_trec_run(source), depth), f"run:{Path(source).name}"
    if hasattr(source, "top_indices") and hasattr(source, "run"):
        return candidates_from_result(source, depth), "retrieval_result"
    if isinstance(source, Mapping):
        return candidates_from_run(source, depth), "run"
    raise TypeError(
        f"candidates must be None or 'bm25' (BM25 over the corpus), a run dict {{query_id: {{doc_id: score}}}}, "
        f"a TREC run file path, or a RetrievalResult; got {type(source).__name__}."
    )


def doc_index(candidates: Mapping[str, Sequence[tuple[str, float]]]) -> dict[str, int]:
    """Position of every candidate doc id in a stable list of the docs any query retrieved."""
    index: dict[str, int] = {}
    for docs in candidates.values():
        for did, _ in docs:
            index.setdefault(did, len(index))
    return index

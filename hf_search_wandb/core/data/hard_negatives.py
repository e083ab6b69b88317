"""Hard-negative mining as a data step: BM25 (`bm25s`) or a dense model, with false-negative filtering.

Both miners turn BEIR-shaped data (`queries`, `corpus`, `qrels`) into a `datasets.Dataset` in
sentence-transformers' n-tuple format, one row per (query, positive) pair::

    anchor | positive | negative_1 | ... | negative_n

ready for `MultipleNegativesRankingLoss` (in-batch negatives plus these hard ones). A document judged
relevant for the query (grade > 0) is never used as its negative, nor is a document whose text equals one
of its positives. Pairs for which fewer than `num_negatives` candidates survive are dropped and counted.

The result also carries what the dataset artifact records: `negative_sampling` (`"bm25_hard"` or
`"dense_hard"`) and `num_hard_negatives`, e.g.
`log_dataset_artifact(run, dataset_name="scifact", train=mined.dataset, metadata=mined.metadata)`.

BM25 is `core.data.bm25` (`bm25s`, imported lazily: `pip install "hf-search-wandb[hard-negatives]"`);
`datasets` is a dependency.

Why over 400 lines: BM25 and dense mining share the pair building, the false-negative filter, the sampling and
the `HardNegatives` result; each miner is a short function over them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from hf_search_wandb.core.data.bm25 import BM25Index, require_bm25s
from hf_search_wandb.core.data.inputs import Qrels

logger = logging.getLogger(__name__)


@dataclass
class HardNegatives:
    """Mined training data and how it was made.

    Attributes:
        dataset: `datasets.Dataset` with columns `anchor`, `positive`, `negative_1` ... `negative_n`.
        negative_sampling: `"bm25_hard"` or `"dense_hard"` (the dataset artifact's metadata value).
        num_hard_negatives: n, the negatives per row.
        pair_ids: `(query_id, positive_doc_id)` of each row.
        negative_ids: the negative doc ids of each row, hardest first.
        num_pairs_skipped: (query, positive) pairs dropped because too few negatives survived filtering.
        num_false_negatives_removed: candidates dropped because they were judged relevant for the query
            or duplicated a positive's text.
        seconds: wall time of the mining.
        params: the mining settings, recorded in `metadata`.
    """

    dataset: Any
    negative_sampling: str
    num_hard_negatives: int
    pair_ids: list[tuple[str, str]] = field(default_factory=list)
    negative_ids: list[list[str]] = field(default_factory=list)
    num_pairs_skipped: int = 0
    num_false_negatives_removed: int = 0
    seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def metadata(self) -> dict[str, Any]:
        """Metadata for `log_dataset_artifact`: `negative_sampling`, `num_hard_negatives` and the settings."""
        return {
            "negative_sampling": self.negative_sampling,
            "num_hard_negatives": self.num_hard_negatives,
            "num_pairs_skipped": self.num_pairs_skipped,
            "num_false_negatives_removed": self.num_false_negatives_removed,
            "mining_seconds": round(self.seconds, 3),
            **self.params,
        }

    def __len__(self) -> int:
        return len(self.pair_ids)


def _check(queries: Mapping[str, str], corpus: Mapping[str, str], qrels: Qrels, num_negatives: int) -> None:
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1:
        raise ValueError(f"num_negatives must be an integer >= 1, got {num_negatives!r}.")
    for name, value in (("queries", queries), ("corpus", corpus), ("qrels", qrels)):
        if not isinstance(value, Mapping) or not value:
            raise ValueError(
                f"{name} is empty: give a non-empty mapping (see hf_search_wandb.core.data.beir.load_beir)."
            )
    if len(corpus) <= num_negatives:
        raise ValueError(
            f"The corpus has {len(corpus)} documents: too few for {num_negatives} negatives per query."
        )


def _pairs(queries: Mapping[str, str], corpus: Mapping[str, str], qrels: Qrels) -> dict[str, list[str]]:
    """`{query_id: [positive doc ids]}` for judged queries that have text and positives in the corpus."""
    pairs: dict[str, list[str]] = {}
    missing_docs = 0
    for qid, judged in qrels.items():
        if qid not in queries:
            continue
        positives = [d for d, grade in judged.items() if grade > 0]
        present = [d for d in positives if d in corpus]
        missing_docs += len(positives) - len(present)
        if present:
            pairs[qid] = present
    if missing_docs:
        logger.warning(
            "%d relevant documents of the qrels are not in the corpus; those pairs are skipped.", missing_docs
        )
    if not pairs:
        raise ValueError(
            "No (query, positive) pair: no qrels query with a relevant document (grade > 0) has both its text "
            "in `queries` and a relevant document in `corpus`. Check that the ids match."
        )
    return pairs


def _select(
    candidates: Sequence[int],
    scores: Sequence[float],
    *,
    doc_ids: Sequence[str],
    blocked: set[str],
    blocked_texts: set[str],
    corpus: Mapping[str, str],
    range_min: int,
    keep: Callable[[float], bool],
) -> tuple[list[str], int]:
    """Candidates in rank order without false negatives, after skipping the top `range_min` survivors."""
    chosen: list[str] = []
    removed = 0
    rank = 0
    for index, score in zip(candidates, scores, strict=True):
        doc = doc_ids[index]
        if doc in blocked or corpus[doc] in blocked_texts:
            removed += 1
            continue
        rank += 1
        if rank <= range_min or not keep(float(score)):
            continue
        chosen.append(doc)
    return chosen, removed


def _build(
    pairs: dict[str, list[str]],
    candidates: dict[str, list[str]] | Callable[[str, str], list[str]],
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    *,
    num_negatives: int,
    sampling: str,
    seed: int,
) -> tuple[Any, list[tuple[str, str]], list[list[str]], int]:
    from datasets import Dataset

    rng = random.Random(seed)
    columns: dict[str, list[str]] = {"anchor": [], "positive": []}
    columns.update({f"negative_{i + 1}": [] for i in range(num_negatives)})
    pair_ids: list[tuple[str, str]] = []
    negative_ids: list[list[str]] = []
    skipped = 0
    for qid, positives in pairs.items():
        for pos in positives:
            pool = candidates(qid, pos) if callable(candidates) else candidates[qid]
            if len(pool) < num_negatives:
                skipped += 1
                continue
            negs = (
                pool[:num_negatives]
                if sampling == "top"
                else sorted(rng.sample(pool, num_negatives), key=pool.index)
            )
            columns["anchor"].append(queries[qid])
            columns["positive"].append(corpus[pos])
            for i, doc in enumerate(negs):
                columns[f"negative_{i + 1}"].append(corpus[doc])
            pair_ids.append((qid, pos))
            negative_ids.append(list(negs))
    if skipped:
        logger.warning(
            "%d (query, positive) pairs had fewer than %d negatives after filtering and were dropped.",
            skipped,
            num_negatives,
        )
    return Dataset.from_dict(columns), pair_ids, negative_ids, skipped


def _check_sampling(sampling: str, range_min: int) -> None:
    if sampling not in ("top", "random"):
        raise ValueError(f"sampling must be 'top' or 'random', got {sampling!r}.")
    if range_min < 0:
        raise ValueError(f"range_min must be >= 0, got {range_min}.")


def mine_bm25_negatives(
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    qrels: Qrels,
    *,
    num_negatives: int = 5,
    max_candidates: int = 100,
    range_min: int = 0,
    sampling: Literal["top", "random"] = "top",
    stopwords: str | list[str] | None = "en",
    stemmer: Any = None,
    seed: int = 0,
    show_progress: bool = False,
) -> HardNegatives:
    """Mine hard negatives with BM25 (`bm25s`) over the whole corpus.

    Args:
        queries: `{query_id: text}`.
        corpus: `{doc_id: text}` (the candidates).
        qrels: `{query_id: {doc_id: grade}}`; grade > 0 makes a positive, and a doc that is never a negative.
        num_negatives: negatives per row (`num_hard_negatives`).
        max_candidates: BM25 top-k retrieved per query to choose from.
        range_min: skip this many top candidates (after false-negative filtering): a guard against
            unjudged relevant documents at the very top.
        sampling: `"top"`: the hardest n; `"random"`: n at random from the candidates (kept in rank order).
        stopwords: bm25s stop-word setting (`"en"`, a list, or None).
        stemmer: optional stemmer for `bm25s.tokenize` (e.g. `Stemmer.Stemmer("english")` from PyStemmer).
        seed: for `sampling="random"`.
        show_progress: bm25s progress bars.

    Returns:
        `HardNegatives` with `negative_sampling="bm25_hard"`. Candidates with a BM25 score of 0 (no term
        in common with the query) are not hard negatives and are never used.

    Example:
        >>> mined = mine_bm25_negatives(
        ...     {"q1": "insulin resistance in mice"},
        ...     {"d1": "insulin resistance in obese mice", "d2": "insulin dose in mice", "d3": "sleep", "d4": "mice"},
        ...     {"q1": {"d1": 1}}, num_negatives=2)
        >>> mined.negative_ids, mined.dataset.column_names
        ([['d2', 'd4']], ['anchor', 'positive', 'negative_1', 'negative_2'])
    """
    _check(queries, corpus, qrels, num_negatives)
    _check_sampling(sampling, range_min)
    require_bm25s()
    start = time.perf_counter()
    pairs = _pairs(queries, corpus, qrels)
    index = BM25Index(corpus, stopwords=stopwords, stemmer=stemmer, show_progress=show_progress)
    doc_ids = index.doc_ids
    qids = list(pairs)
    k = max_candidates + range_min + max(len(p) for p in pairs.values())
    top, top_scores = index.top_k([queries[q] for q in qids], k)

    pools: dict[str, list[str]] = {}
    removed = 0
    for row, qid in enumerate(qids):
        blocked = {d for d, grade in qrels[qid].items() if grade > 0}
        pools[qid], n_removed = _select(
            top[row].tolist(),
            top_scores[row].tolist(),
            doc_ids=doc_ids,
            blocked=blocked,
            blocked_texts={corpus[d] for d in pairs[qid]},
            corpus=corpus,
            range_min=range_min,
            keep=lambda score: score > 0,
        )
        pools[qid] = pools[qid][:max_candidates]
        removed += n_removed
    dataset, pair_ids, negative_ids, skipped = _build(
        pairs, pools, queries, corpus, num_negatives=num_negatives, sampling=sampling, seed=seed
    )
    return HardNegatives(
        dataset=dataset,
        negative_sampling="bm25_hard",
        num_hard_negatives=num_negatives,
        pair_ids=pair_ids,
        negative_ids=negative_ids,
        num_pairs_skipped=skipped,
        num_false_negatives_removed=removed,
        seconds=time.perf_counter() - start,
        params={
            "miner": "bm25s",
            "max_candidates": max_candidates,
            "range_min": range_min,
            "sampling": sampling,
        },
    )


def _encode(model: Any, texts: list[str], batch_size: int, show_progress: bool) -> np.ndarray:
    if not hasattr(model, "encode"):
        raise TypeError(
            f"mine_dense_negatives needs a model with .encode(texts) (a SentenceTransformer), got {type(model).__name__}."
        )
    emb = model.encode(
        texts,
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=show_progress,
    )
    return np.asarray(emb, dtype=np.float32)


def _top_k(query_emb: np.ndarray, doc_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine scores per query, in query chunks so no full queries x corpus matrix is held."""
    chunk = max(1, (1 << 24) // max(1, doc_emb.shape[0]))
    indices = np.empty((query_emb.shape[0], k), dtype=np.int64)
    scores = np.empty((query_emb.shape[0], k), dtype=np.float32)
    for start in range(0, query_emb.shape[0], chunk):
        block = query_emb[start : start + chunk] @ doc_emb.T
        part = (
            np.argpartition(-block, k - 1, axis=1)[:, :k]
            if k < block.shape[1]
            else np.tile(np.arange(k), (len(block), 1))
        )
        part_scores = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-part_scores, axis=1, kind="stable")
        indices[start : start + chunk] = np.take_along_axis(part, order, axis=1)
        scores[start : start + chunk] = np.take_along_axis(part_scores, order, axis=1)
    return indices, scores


def mine_dense_negatives(
    model: Any,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    qrels: Qrels,
    *,
    num_negatives: int = 5,
    max_candidates: int = 100,
    range_min: int = 0,
    margin: float | None = None,
    max_score: float | None = None,
    sampling: Literal["top", "random"] = "top",
    batch_size: int = 64,
    seed: int = 0,
    show_progress: bool = False,
) -> HardNegatives:
    """Mine hard negatives with a dense model: the nearest documents by cosine similarity.

    The corpus and the queries are each encoded once (normalised embeddings) and searched in chunks.

    Args:
        model: a `SentenceTransformer` (anything with `.encode(texts, ...)`).
        queries: `{query_id: text}`.
        corpus: `{doc_id: text}`.
        qrels: `{query_id: {doc_id: grade}}`; grade > 0 makes a positive, and a doc that is never a negative.
        num_negatives: negatives per row (`num_hard_negatives`).
        max_candidates: nearest documents per query to choose from.
        range_min: skip this many top candidates (after false-negative filtering).
        margin: drop a candidate whose score is above `score(query, positive) - margin` (the NV-Retriever
            style guard against unjudged positives; 0 keeps only negatives scored below the positive).
        max_score: drop candidates with a cosine similarity above this.
        sampling: `"top"` (hardest n) or `"random"` (n at random among the candidates, in rank order).
        batch_size: encoding batch size.
        seed: for `sampling="random"`.
        show_progress: encoding progress bars.

    Returns:
        `HardNegatives` with `negative_sampling="dense_hard"`.

    Example:
        >>> from sentence_transformers import SentenceTransformer
        >>> from hf_search_wandb.core.data.beir import load_beir
        >>> train = load_beir("data/scifact", "train")
        >>> queries = dict(list(train.queries.items())[:8])
        >>> qrels = {q: train.qrels[q] for q in queries}
        >>> corpus = dict(list(train.corpus.items())[:300]) | {d: train.corpus[d] for r in qrels.values() for d in r}
        >>> mined = mine_dense_negatives(SentenceTransformer("all-MiniLM-L6-v2"), queries, corpus, qrels,
        ...                              num_negatives=5, margin=0.05)
        >>> mined.dataset.column_names[:3]
        ['anchor', 'positive', 'negative_1']
    """
    _check(queries, corpus, qrels, num_negatives)
    _check_sampling(sampling, range_min)
    start = time.perf_counter()
    pairs = _pairs(queries, corpus, qrels)
    doc_ids = list(corpus)
    doc_row = {d: i for i, d in enumerate(doc_ids)}
    qids = list(pairs)
    doc_emb = _encode(model, [corpus[d] for d in doc_ids], batch_size, show_progress)
    query_emb = _encode(model, [queries[q] for q in qids], batch_size, show_progress)
    k = min(len(doc_ids), max_candidates + range_min + max(len(p) for p in pairs.values()))
    top, top_scores = _top_k(query_emb, doc_emb, k)
    row_of = {q: i for i, q in enumerate(qids)}
    removed: dict[str, int] = {}  # per query: the same candidates are filtered for each of its positives

    def pool(qid: str, positive: str) -> list[str]:
        row = row_of[qid]
        ceiling = np.inf if max_score is None else max_score
        if margin is not None:
            ceiling = min(ceiling, float(query_emb[row] @ doc_emb[doc_row[positive]]) - margin)
        chosen, n_removed = _select(
            top[row].tolist(),
            top_scores[row].tolist(),
            doc_ids=doc_ids,
            blocked={d for d, grade in qrels[qid].items() if grade > 0},
            blocked_texts={corpus[d] for d in pairs[qid]},
            corpus=corpus,
            range_min=range_min,
            keep=lambda score: score <= ceiling,
        )
        removed[qid] = n_removed
        return chosen[:max_candidates]

    dataset, pair_ids, negative_ids, skipped = _build(
        pairs, pool, queries, corpus, num_negatives=num_negatives, sampling=sampling, seed=seed
    )
    return HardNegatives(
        dataset=dataset,
        negative_sampling="dense_hard",
        num_hard_negatives=num_negatives,
        pair_ids=pair_ids,
        negative_ids=negative_ids,
        num_pairs_skipped=skipped,
        num_false_negatives_removed=sum(removed.values()),
        seconds=time.perf_counter() - start,
        params={
            "miner": type(model).__name__,
            "max_candidates": max_candidates,
            "range_min": range_min,
            "margin": margin,
            "max_score": max_score,
            "sampling": sampling,
        },
    )

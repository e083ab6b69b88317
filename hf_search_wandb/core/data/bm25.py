"""BM25 over a corpus with `bm25s`: the index built once, each query's top k in trec_eval's order.

Both BM25 users go through `BM25Index`: hard-negative mining (`core.data.hard_negatives`) and the reranking
evaluator's first stage (`core.data.candidates.bm25_candidates`), so they tokenise, stem and rank alike.
`bm25s` is imported lazily (`pip install "hf-search-wandb[hard-negatives]"`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

INSTALL_HINT = 'pip install "hf-search-wandb[hard-negatives]"  (or: pip install bm25s)'
#: bm25s breaks ties arbitrarily: this many documents past the k-th are retrieved too, so that trec_eval's
#: order (score descending, then doc id descending) decides among the documents tied at the cut-off.
TIE_MARGIN = 64


def require_bm25s() -> Any:
    """Import `bm25s`, or raise an `ImportError` with the install command."""
    try:
        import bm25s
    except ImportError as err:
        raise ImportError(
            f"BM25 (hard-negative mining, reranking candidates) needs the bm25s package: {INSTALL_HINT}"
        ) from err
    return bm25s


class BM25Index:
    """A `bm25s.BM25` index of `corpus` (built here, once) and its top-k search.

    Args:
        corpus: `{doc_id: text}`; `doc_ids` keeps its order (the rows `top_k` returns).
        stopwords: bm25s stop-word setting (`"en"`, a list, or None).
        stemmer: optional stemmer for `bm25s.tokenize` (e.g. `Stemmer.Stemmer("english")` from PyStemmer).
        show_progress: bm25s progress bars.

    Example:
        >>> index = BM25Index({"d1": "insulin in mice", "d2": "sleep", "d3": "mice", "d4": "mice"})
        >>> rows, scores = index.top_k(["insulin mice"], 3)
        >>> [index.doc_ids[r] for r in rows[0]]  # d3 and d4 tie: the larger id first, as trec_eval orders them
        ['d1', 'd4', 'd3']
    """

    def __init__(
        self,
        corpus: Mapping[str, str],
        *,
        stopwords: str | list[str] | None = "en",
        stemmer: Any = None,
        show_progress: bool = False,
    ) -> None:
        self.bm25s = require_bm25s()
        self.doc_ids = list(corpus)
        self.stopwords = stopwords
        self.stemmer = stemmer
        self.show_progress = show_progress
        self.retriever = self.bm25s.BM25()
        corpus_tokens = self.bm25s.tokenize(
            [corpus[d] for d in self.doc_ids],
            stopwords=stopwords,
            stemmer=stemmer,
            show_progress=show_progress,
        )
        self.retriever.index(corpus_tokens, show_progress=show_progress)

    def top_k(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each query's `k` best documents (at most the corpus): `(rows, scores)`, both `(len(queries), k)`.

        `rows` index `doc_ids`; each query's row is in trec_eval's order: BM25 score descending, ties by doc
        id descending. Documents without a query term score 0 and come last.
        """
        k = min(k, len(self.doc_ids))
        query_tokens = self.bm25s.tokenize(
            list(queries),
            stopwords=self.stopwords,
            stemmer=self.stemmer,
            return_ids=False,
            show_progress=self.show_progress,
        )
        fetched = min(len(self.doc_ids), k + TIE_MARGIN)
        top, scores = self.retriever.retrieve(query_tokens, k=fetched, show_progress=self.show_progress)
        rows = np.empty((len(top), k), dtype=np.int64)
        kept = np.empty((len(top), k), dtype=scores.dtype)
        for i, (found, found_scores) in enumerate(zip(top.tolist(), scores.tolist(), strict=True)):
            order = sorted(
                range(len(found)), key=lambda j: (found_scores[j], self.doc_ids[found[j]]), reverse=True
            )[:k]
            rows[i] = [found[j] for j in order]
            kept[i] = [found_scores[j] for j in order]
        return rows, kept

"""What every measure's kernel reads: the relevant hits of a batch of rankings, computed once.

`RankedHits` wraps the kernel input (a `(n_queries, depth)` matrix of grades by rank, each query's
positive judged grades, and for bpref which ranks hold a judged non-relevant document) and derives, on
first use only, the arrays several measures share: where the relevant documents were found, the rank of
the first one, DCG gains, precision at each hit, the ideal DCG. A measure's kernel (`core/metrics/measures.py`)
is then a line or two of `bincount`s over the hits.

The work is proportional to the number of relevant (and, for bpref, judged non-relevant) documents
retrieved, not to n_queries x depth, after one `np.nonzero` pass over the matrix.

This module imports numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np


class RankedHits:
    """The relevant documents of a batch of rankings, with the per-query arrays the kernels share.

    Args:
        ranked: `(n_queries, depth)` grades of the document at each rank (already cut to depth); a
            document is relevant when its grade is > 0.
        judged: for each query, the grades > 0 of all its judged documents (their count is R, the
            number of relevant documents; their values give the ideal DCG).
        num_nonrelevant: for each query, how many judged documents have grade 0 (bpref's N), or None.
        nonrelevant: (rows, columns) of the ranks that hold a judged non-relevant document (grade 0;
            unjudged documents excluded), in row-major order as `np.nonzero` gives them, or None when no
            measure needs them.

    Raises:
        ValueError: when a row holds more relevant documents than its query has relevant grades.
    """

    def __init__(
        self,
        ranked: np.ndarray,
        judged: Sequence[np.ndarray],
        num_nonrelevant: np.ndarray | None = None,
        nonrelevant: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.ranked = ranked
        self.judged = judged
        self.n = ranked.shape[0]
        self.depth = ranked.shape[1]
        self.num_rel = np.fromiter((a.size for a in judged), dtype=np.float64, count=self.n)
        self.safe_rel = np.maximum(self.num_rel, 1.0)
        self.num_nonrelevant = num_nonrelevant
        self.nonrelevant = nonrelevant
        self.rows, self.cols = np.nonzero(ranked > 0)  # row-major: each query's hits in rank order
        self.found = np.bincount(self.rows, minlength=self.n)
        too_many = np.flatnonzero(self.found > self.num_rel)
        if too_many.size:
            i = int(too_many[0])
            raise ValueError(
                f"Query {i} has {int(self.found[i])} relevant documents in ranked_relevance but only "
                f"{int(self.num_rel[i])} relevant grades in judged_relevance[{i}]: they must describe the "
                "same judgments."
            )

    def count_top(self, k: int, weights: np.ndarray | None = None) -> np.ndarray:
        """Per query, the number (or the sum of `weights`, one per hit) of relevant documents in the top k."""
        if k >= self.depth:
            return np.bincount(self.rows, weights=weights, minlength=self.n).astype(np.float64)
        keep = self.cols < k
        w = None if weights is None else weights[keep]
        return np.bincount(self.rows[keep], weights=w, minlength=self.n).astype(np.float64)

    @cached_property
    def first(self) -> np.ndarray:
        """0-based rank of each query's first relevant document (int64 max when none was retrieved)."""
        first = np.full(self.n, np.iinfo(np.int64).max)
        np.minimum.at(first, self.rows, self.cols)
        return first

    @cached_property
    def nth_hit(self) -> np.ndarray:
        """For each hit, 1 for its query's first relevant document, 2 for the second, ..."""
        starts = np.concatenate(([0], np.cumsum(self.found)[:-1]))
        return np.arange(self.rows.size) - starts[self.rows] + 1.0

    @cached_property
    def gain(self) -> np.ndarray:
        """DCG gain of each hit: `grade / log2(rank + 1)` (rank 1-based)."""
        return self.ranked[self.rows, self.cols].astype(np.float64) / np.log2(self.cols + 2.0)

    @cached_property
    def precision_at_hit(self) -> np.ndarray:
        """Precision at the rank of each hit."""
        return self.nth_hit / (self.cols + 1.0)

    @cached_property
    def _ideal_order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(owner query, 0-based position, gain) of every positive judged grade, each query's sorted descending."""
        lengths = self.num_rel.astype(np.int64)
        if lengths.sum() == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        flat = np.concatenate(self.judged)
        owner = np.repeat(np.arange(self.n), lengths)
        order = np.lexsort((-flat, owner))
        flat, owner = flat[order], owner[order]
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        position = np.arange(flat.size) - starts[owner]
        return owner, position, flat / np.log2(position + 2.0)

    def ideal_dcg(self, k: int) -> np.ndarray:
        """Ideal DCG@k of every query: its positive judged grades sorted descending, cut at k."""
        owner, position, gain = self._ideal_order
        keep = position < k
        return np.bincount(owner[keep], weights=gain[keep], minlength=self.n)

    def _nonrelevant_input(self) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        if self.nonrelevant is None or self.num_nonrelevant is None:
            raise ValueError(
                "bpref needs to tell judged non-relevant documents (grade 0) from unjudged ones: pass "
                "ranked_judged= (True where the document at a rank is in the qrels) to score_ranked / "
                "ranked_report, or use score_run."
            )
        return self.nonrelevant, self.num_nonrelevant

    @cached_property
    def nonrelevant_total(self) -> np.ndarray:
        """For each query, how many of its judged documents are non-relevant (grade 0; bpref's N).

        Raises:
            ValueError: when the input did not say which documents are judged non-relevant.
        """
        return np.asarray(self._nonrelevant_input()[1], dtype=np.float64)

    @cached_property
    def nonrelevant_above(self) -> np.ndarray:
        """For each hit, how many judged non-relevant documents are ranked above it (bpref).

        Raises:
            ValueError: when the input did not say which ranks hold judged non-relevant documents.
        """
        non_rows, non_cols = self._nonrelevant_input()[0]
        width = self.depth + 1
        # row-major keys are sorted, so the number of non-relevant keys below a hit's key, minus those
        # of the rows before it, is the number of non-relevant documents above it in its own row.
        before = np.searchsorted(non_rows * width + non_cols, self.rows * width + self.cols)
        row_start = np.searchsorted(non_rows, self.rows)
        return (before - row_start).astype(np.float64)

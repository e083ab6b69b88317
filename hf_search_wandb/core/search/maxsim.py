"""Exact late-interaction (ColBERT MaxSim) scoring over token vectors kept flat, and its top-k search.

`TokenVectors` holds many texts' token vectors as ONE `(tokens, dim)` matrix plus row offsets: no padding is
stored. `maxsim_scores` scores queries against documents the way sentence-transformers' `maxsim` does
(`sum_i max_j q_i . d_j`; a document without a scored token gets -1e9; `meanmaxsim` divides by the query's
scored tokens), but by chunked matrix products: the query tokens of a block are one flat matrix (never padded
to the longest query), each document block is padded to its own longest document by REPEATING the document's
first token (an exact no-op for a max, so no masking pass), and the `(query tokens x document tokens)`
intermediate stays under `chunk_elements`. `maxsim_pairs` scores given (query, document) pairs only, the same
way (re-scoring a first stage's candidates). `rank_scores` ranks a `(queries x documents)` score matrix with the
dense search's tie rule and shard merge (`core.search.dense.search_blocks`), so `RetrievalEvaluator.score_hits`
reads its hits unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hf_search_wandb.core.search.dense import SearchHits, search_blocks

#: sentence-transformers' score of a document with no scored token (`util.similarity._EMPTY_DOCUMENT_SCORE`)
EMPTY_DOCUMENT_SCORE = -1e9
#: the two late-interaction similarities of `MultiVectorEncoder.similarity_fn_name`
SIMILARITIES = ("maxsim", "meanmaxsim")


@dataclass
class TokenVectors:
    """Token vectors of `n` texts as one flat matrix.

    Attributes:
        vectors: `(tokens, dim)` every text's scored token vectors, text after text (any float dtype).
        offsets: `(n + 1,)` int64: text `i` owns `vectors[offsets[i]:offsets[i + 1]]`.

    Example:
        >>> tv = TokenVectors.from_list([torch.ones(2, 3), torch.zeros(0, 3), torch.ones(1, 3)])
        >>> len(tv), tv.lengths.tolist(), tuple(tv.vectors.shape)
        (3, [2, 0, 1], (3, 3))
    """

    vectors: torch.Tensor
    offsets: torch.Tensor

    @classmethod
    def from_list(cls, items: list[torch.Tensor], dim: int | None = None) -> TokenVectors:
        """One text per `(tokens_i, dim)` tensor (e.g. `MultiVectorEncoder.encode_query`'s output)."""
        if not items:
            return cls(torch.zeros((0, dim or 0)), torch.zeros(1, dtype=torch.int64))
        lengths = torch.tensor([len(item) for item in items], dtype=torch.int64)
        offsets = torch.zeros(len(items) + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=offsets[1:])
        return cls(torch.cat(items).contiguous(), offsets.to(items[0].device))

    def __len__(self) -> int:
        return int(self.offsets.numel() - 1)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def lengths(self) -> torch.Tensor:
        """`(n,)` int64 scored tokens of each text."""
        return self.offsets[1:] - self.offsets[:-1]

    @property
    def nbytes(self) -> int:
        """Bytes of the token vectors (the index size; offsets not counted)."""
        return int(self.vectors.numel() * self.vectors.element_size())

    def item(self, i: int) -> torch.Tensor:
        """Text `i`'s `(tokens_i, dim)` vectors (a view)."""
        return self.vectors[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def take(self, order: torch.Tensor) -> TokenVectors:
        """The texts at `order` (int64 indices), in that order (a copy)."""
        order = order.to(self.offsets.device)
        lengths = self.lengths[order]
        offsets = torch.zeros(order.numel() + 1, dtype=torch.int64, device=order.device)
        torch.cumsum(lengths, 0, out=offsets[1:])
        total = int(offsets[-1].item())
        within = torch.arange(total, device=order.device) - torch.repeat_interleave(
            offsets[:-1], lengths, output_size=total
        )
        source = torch.repeat_interleave(self.offsets[:-1][order], lengths, output_size=total) + within
        return TokenVectors(self.vectors[source.to(self.vectors.device)], offsets)


def _padded_index(starts: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """`(n, width)` row indices into the flat vectors: each text's tokens, then its FIRST token repeated (for
    a max over documents: a repeat changes nothing; an empty text points at row 0 and is masked by the
    caller)."""
    positions = torch.arange(width, device=starts.device)
    within = torch.where(
        positions[None, :] < lengths[:, None], positions[None, :], torch.zeros_like(positions)
    )
    return starts[:, None] + within


def _doc_blocks(lengths: list[int], query_tokens: int, budget: int) -> list[tuple[int, int, int]]:
    """Greedy `(start, end, width)` blocks of length-sorted documents whose `(query_tokens x docs x width)`
    intermediate stays under `budget` elements (at least one document per block)."""
    blocks: list[tuple[int, int, int]] = []
    start, width = 0, 0
    for i, length in enumerate(lengths):
        wider = max(width, length, 1)
        if i > start and query_tokens * wider * (i - start + 1) > budget:
            blocks.append((start, i, width))
            start, wider = i, max(length, 1)
        width = wider
    if start < len(lengths):
        blocks.append((start, len(lengths), max(width, 1)))
    return blocks


@torch.inference_mode()
def maxsim_scores(
    queries: TokenVectors,
    docs: TokenVectors,
    *,
    similarity: str = "maxsim",
    chunk_elements: int = 1 << 25,
) -> torch.Tensor:
    """`(n_queries, n_docs)` float32 late-interaction scores, exact, in bounded memory.

    Equal (to float rounding) to sentence-transformers' `maxsim(q, d, length_normalize=...)` on the same
    per-text token vectors: the token products run in the vectors' dtype, the per-token maxima are summed in
    float32, a document without a scored token scores -1e9, and `meanmaxsim` divides by the query's scored
    token count (at least 1).

    Args:
        queries / docs: flat token vectors on one device, same `dim`.
        similarity: `"maxsim"` or `"meanmaxsim"`.
        chunk_elements: elements of the largest intermediate (query tokens x padded document tokens).

    Example:
        >>> q = TokenVectors.from_list([torch.tensor([[1.0, 0.0], [0.0, 1.0]])])
        >>> d = TokenVectors.from_list([torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]])])
        >>> maxsim_scores(q, d).tolist(), maxsim_scores(q, d, similarity="meanmaxsim").tolist()
        ([[1.0, 3.0]], [[0.5, 1.5]])
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}.")
    device = docs.vectors.device
    n_q, n_d = len(queries), len(docs)
    out = torch.empty((n_q, n_d), dtype=torch.float32, device=device)
    if n_q == 0 or n_d == 0:
        return out
    if queries.dim != docs.dim:
        raise ValueError(f"Query token vectors have {queries.dim} dims, document ones {docs.dim}.")
    q_vectors = queries.vectors.to(device=device, dtype=docs.vectors.dtype)
    q_offsets, q_lengths = queries.offsets.cpu(), queries.lengths.cpu()
    d_lengths = docs.lengths.cpu()
    order = torch.argsort(d_lengths, stable=True)  # similar lengths side by side: little padding
    sorted_lengths = d_lengths[order].tolist()
    starts = docs.offsets[:-1].to(device)
    order_dev = order.to(device)
    longest = max(max(sorted_lengths), 1)
    # query blocks: whole queries whose tokens x (the longest document) fit the budget
    q_blocks: list[tuple[int, int]] = []
    qs = 0
    while qs < n_q:
        qe = qs + 1
        while qe < n_q and int(q_offsets[qe + 1] - q_offsets[qs]) * longest <= chunk_elements:
            qe += 1
        q_blocks.append((qs, qe))
        qs = qe
    for qs, qe in q_blocks:
        t0, t1 = int(q_offsets[qs]), int(q_offsets[qe])
        block_q = q_vectors[t0:t1]
        lengths = q_lengths[qs:qe]
        width_q = max(int(lengths.max()), 1)
        # each query's token rows in the per-token maxima, padded with a zero row (index t1 - t0)
        q_index = _padded_index(q_offsets[qs:qe] - t0, lengths, width_q)
        q_index = torch.where(torch.arange(width_q)[None, :] < lengths[:, None], q_index, t1 - t0).to(device)
        counts = lengths.clamp(min=1).to(device=device, dtype=torch.float32)
        for ds, de, width in _doc_blocks(sorted_lengths, max(t1 - t0, 1), chunk_elements):
            rows = order_dev[ds:de]
            block_lengths = d_lengths[order[ds:de]].to(device)
            padded = docs.vectors[_padded_index(starts[rows], block_lengths, width)]
            token_scores = block_q @ padded.reshape(-1, docs.dim).T  # (query tokens, docs x width)
            best = token_scores.view(t1 - t0, de - ds, width).amax(dim=2).float()
            best = torch.cat([best, best.new_zeros((1, de - ds))])
            # each query's maxima summed in float32, token after token: the same additions in the same order
            # whatever the block (a reduction kernel's order would depend on the block's shape)
            scores = best[q_index[:, 0]]
            for j in range(1, width_q):
                scores += best[q_index[:, j]]
            scores.masked_fill_((block_lengths == 0)[None, :], EMPTY_DOCUMENT_SCORE)
            if similarity == "meanmaxsim":
                scores = scores / counts[:, None]
            out[qs:qe, rows] = scores
            del padded, token_scores, best, scores  # freed before the next block allocates its own
    return out


@torch.inference_mode()
def maxsim_pairs(
    queries: TokenVectors,
    docs: TokenVectors,
    pair_queries: torch.Tensor,
    pair_docs: torch.Tensor,
    *,
    similarity: str = "maxsim",
    chunk_elements: int = 1 << 25,
) -> torch.Tensor:
    """`(n_pairs,)` float32 late-interaction scores of given (query, document) pairs only: what
    `maxsim_scores(queries, docs)[pair_queries, pair_docs]` holds, without scoring the other pairs.

    For re-scoring a first stage (each query's few candidates out of many documents). The pairs are taken in
    blocks of similar document lengths; each block is one batched product of `(pairs, query tokens, dim)` by
    `(pairs, dim, document tokens)`, padded as `maxsim_scores` pads (a query with zero rows, whose maxima are 0;
    a document with its first token repeated), the per-token maxima summed in float32 token after token, an
    empty document scored -1e9. The largest intermediate (pairs x query tokens x document tokens, or the
    gathered vectors) stays under `chunk_elements`.

    Example:
        >>> q = TokenVectors.from_list([torch.tensor([[1.0, 0.0], [0.0, 1.0]])])
        >>> d = TokenVectors.from_list([torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.0], [0.0, 2.0]])])
        >>> maxsim_pairs(q, d, torch.tensor([0, 0]), torch.tensor([1, 0])).tolist()
        [3.0, 1.0]
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}.")
    device = docs.vectors.device
    n_pairs = int(pair_queries.numel())
    out = torch.empty(n_pairs, dtype=torch.float32, device=device)
    if n_pairs == 0:
        return out
    if queries.dim != docs.dim:
        raise ValueError(f"Query token vectors have {queries.dim} dims, document ones {docs.dim}.")
    dim = docs.dim
    # the query vectors with one zero row after them: a padded query position points there
    q_vectors = torch.cat([queries.vectors.to(device=device, dtype=docs.vectors.dtype), docs.vectors.new_zeros((1, dim))])
    zero_row = int(queries.vectors.shape[0])
    q_starts, q_lengths = queries.offsets[:-1].to(device), queries.lengths.to(device)
    d_starts, d_lengths = docs.offsets[:-1].to(device), docs.lengths.to(device)
    pair_queries, pair_docs = pair_queries.to(device), pair_docs.to(device)
    pair_q_len, pair_d_len = q_lengths[pair_queries], d_lengths[pair_docs]
    order = torch.argsort(pair_d_len, stable=True)  # similar document lengths side by side: little padding
    sorted_d = pair_d_len[order].tolist()
    sorted_q = pair_q_len[order].tolist()
    start = 0
    while start < n_pairs:
        width_q, width_d, end = max(sorted_q[start], 1), max(sorted_d[start], 1), start + 1
        while end < n_pairs:
            wq, wd = max(width_q, sorted_q[end], 1), max(width_d, sorted_d[end], 1)
            if (end - start + 1) * max(wq * wd, (wq + wd) * dim) > chunk_elements:
                break
            width_q, width_d, end = wq, wd, end + 1
        rows = order[start:end]
        pq, pd = pair_queries[rows], pair_docs[rows]
        q_index = _padded_index(q_starts[pq], q_lengths[pq], width_q)
        positions = torch.arange(width_q, device=device)
        q_index = torch.where(positions[None, :] < q_lengths[pq][:, None], q_index, zero_row)
        d_block = docs.vectors[_padded_index(d_starts[pd], d_lengths[pd], width_d)]  # (pairs, width_d, dim)
        token_scores = torch.bmm(q_vectors[q_index], d_block.transpose(1, 2))  # (pairs, width_q, width_d)
        best = token_scores.amax(dim=2).float()
        scores = best[:, 0].clone()
        for j in range(1, width_q):  # float32, token after token: the additions of `maxsim_scores`
            scores += best[:, j]
        scores.masked_fill_(d_lengths[pd] == 0, EMPTY_DOCUMENT_SCORE)
        if similarity == "meanmaxsim":
            scores = scores / q_lengths[pq].clamp(min=1).to(torch.float32)
        out[rows] = scores
        del d_block, token_scores, best
        start = end
    return out


@torch.inference_mode()
def rank_scores(
    scores: torch.Tensor,
    doc_ties: torch.Tensor,
    k: int,
    *,
    pair_queries: torch.Tensor | None = None,
    pair_docs: torch.Tensor | None = None,
    chunk_elements: int = 1 << 25,
    distributed: bool = True,
) -> SearchHits:
    """Top-`k` of a `(n_queries, n_local_docs)` float32 score matrix with the dense search's tie rule (score
    descending, then doc id descending), plus the true rank of given pairs, merged over the ranks' shards
    (see `core.search.dense.search`)."""
    n_q, n_d = scores.shape
    q_block = max(1, min(n_q, 4096))
    d_block = max(1, min(max(n_d, 1), chunk_elements // q_block))
    return search_blocks(
        lambda qs, qe, ds, de: scores[qs:qe, ds:de],
        n_q,
        n_d,
        doc_ties,
        k,
        q_block=q_block,
        d_block=d_block,
        device=scores.device,
        pair_queries=pair_queries,
        pair_docs=pair_docs,
        distributed=distributed,
    )


def maxsim_search(
    queries: TokenVectors,
    docs: TokenVectors,
    doc_ties: torch.Tensor,
    k: int,
    *,
    similarity: str = "maxsim",
    pair_queries: torch.Tensor | None = None,
    pair_docs: torch.Tensor | None = None,
    chunk_elements: int = 1 << 25,
    distributed: bool = True,
) -> SearchHits:
    """Exact late-interaction top-`k` of every query over this rank's documents (`maxsim_scores`, then
    `rank_scores`).

    Example:
        >>> q = TokenVectors.from_list([torch.tensor([[1.0, 0.0]])])
        >>> d = TokenVectors.from_list([torch.tensor([[0.5, 0.0]]), torch.tensor([[0.2, 0.9]])] * 2)
        >>> from hf_search_wandb.core.search.dense import key_ties
        >>> key_ties(maxsim_search(q, d, torch.arange(4), 3).top_keys).tolist()
        [[2, 0, 3]]
    """
    scores = maxsim_scores(queries, docs, similarity=similarity, chunk_elements=chunk_elements)
    return rank_scores(
        scores, doc_ties, k, pair_queries=pair_queries, pair_docs=pair_docs,
        chunk_elements=chunk_elements, distributed=distributed,
    )  # fmt: skip


def token_counts(vectors: TokenVectors) -> np.ndarray:
    """Scored tokens of each text as an int64 numpy array."""
    return vectors.lengths.cpu().numpy().astype(np.int64)


__all__ = [
    "EMPTY_DOCUMENT_SCORE",
    "SIMILARITIES",
    "TokenVectors",
    "maxsim_pairs",
    "maxsim_scores",
    "maxsim_search",
    "rank_scores",
]

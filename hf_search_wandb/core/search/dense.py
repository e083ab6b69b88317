"""Exact top-k search over embeddings by chunked matrix products, with deterministic ties.

Memory stays O(corpus x dim + chunk): the `(queries x corpus)` score matrix is never built; each
`(query block x doc block)` tile is scored, reduced to its top-k and dropped.

Ties: every score is packed with the doc's position in the ascending doc-id order into one int64 key
(`score_keys`), so `topk` over keys ranks by score descending, then doc id descending — trec_eval's own
order. Rankings are therefore identical whatever the chunking, the device or the number of processes,
and trec_eval on the returned run reproduces the metrics exactly.

The same pass also yields each relevant doc's TRUE rank in the whole corpus (1 + the number of docs whose
key is larger), for error analysis.

Distributed: each rank searches its own corpus shard with all queries; `search` gathers the shard
top-k lists, merges them, and all-reduces the rank counts, so every rank returns the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from hf_search_wandb.core.distributed import all_gather_rows, all_reduce

_LOW_MASK = (1 << 32) - 1
_MISSING = torch.iinfo(torch.int64).min


def score_keys(scores: torch.Tensor, tie: torch.Tensor) -> torch.Tensor:
    """Pack float32 `scores` `(..., n)` and tie positions `(n,)` (0 <= tie < 2**32) into sortable int64.

    A larger key means a better rank: higher score, or the same score and a larger tie position.

    Example:
        >>> keys = score_keys(torch.tensor([[0.5, 0.5, -1.0]]), torch.tensor([0, 1, 2]))
        >>> torch.argsort(keys, descending=True).tolist()
        [[1, 0, 2]]
    """
    bits = (scores.float() + 0.0).contiguous().view(torch.int32)  # + 0.0 turns -0.0 into +0.0
    ordered = torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF).to(torch.int64)
    return (ordered << 32) + tie.to(torch.int64)


def key_scores(keys: torch.Tensor) -> torch.Tensor:
    """The float32 scores packed in `keys` (inverse of `score_keys`).

    Example:
        >>> key_scores(score_keys(torch.tensor([0.25, -2.0]), torch.tensor([3, 4]))).tolist()
        [0.25, -2.0]
    """
    ordered = (keys >> 32).to(torch.int32)
    bits = torch.where(ordered >= 0, ordered, ordered ^ 0x7FFFFFFF)
    return bits.view(torch.float32)


def key_ties(keys: torch.Tensor) -> torch.Tensor:
    """The tie positions packed in `keys`."""
    return keys & _LOW_MASK


def tie_positions(doc_ids: list[str]) -> np.ndarray:
    """Each doc's position in ascending id order (int64): the tie-breaker of `score_keys`.

    Example:
        >>> tie_positions(["b", "c", "a"]).tolist()
        [1, 2, 0]
    """
    order = np.array(sorted(range(len(doc_ids)), key=doc_ids.__getitem__), dtype=np.int64)
    positions = np.empty(len(doc_ids), dtype=np.int64)
    positions[order] = np.arange(len(doc_ids), dtype=np.int64)
    return positions


def _blocks(n_queries: int, n_docs: int, chunk_elements: int) -> tuple[int, int]:
    q_block = max(1, min(n_queries, 4096))
    d_block = max(1, min(n_docs, chunk_elements // q_block))
    return q_block, d_block


@dataclass
class SearchHits:
    """The merged answer of `search` (identical on every rank).

    Attributes:
        top_keys: `(n_queries, k)` int64 keys, best first (decode with `key_scores` / `key_ties`).
        pair_keys: `(n_pairs,)` key of each (query, relevant doc) pair (`int64 min` if the doc is in no shard).
        pair_ranks: `(n_pairs,)` 1-based rank of each pair's doc in the whole corpus (0 if missing).
    """

    top_keys: torch.Tensor
    pair_keys: torch.Tensor
    pair_ranks: torch.Tensor


@torch.inference_mode()
def search(
    queries: torch.Tensor,
    docs: torch.Tensor,
    doc_ties: torch.Tensor,
    k: int,
    *,
    pair_queries: torch.Tensor | None = None,
    pair_docs: torch.Tensor | None = None,
    chunk_elements: int = 1 << 25,
    distributed: bool = True,
) -> SearchHits:
    """Top-`k` docs for every query by inner product, plus the true rank of given (query, doc) pairs.

    Args:
        queries: `(n_queries, dim)` float embeddings (normalise them first for cosine).
        docs: `(n_local_docs, dim)` this rank's corpus shard, on the same device.
        doc_ties: `(n_local_docs,)` global tie positions of the shard's docs (`tie_positions`).
        k: docs to keep per query (capped by the total corpus size over all ranks).
        pair_queries: `(n_pairs,)` query row of each relevant pair.
        pair_docs: `(n_pairs,)` LOCAL doc row of each pair on this rank, -1 where another rank holds it.
        chunk_elements: scores held at once (query block x doc block); bounds the memory.
        distributed: merge with the other ranks of the process group (a no-op without one); False searches
            this process's docs only, even inside a process group.

    Returns:
        `SearchHits`, the same on every rank.

    Example:
        >>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> d = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5]])
        >>> hits = search(q, d, torch.arange(3), 2, pair_queries=torch.tensor([0]), pair_docs=torch.tensor([2]))
        >>> key_ties(hits.top_keys).tolist(), hits.pair_ranks.tolist()
        ([[0, 2], [1, 2]], [2])
    """
    queries, docs = queries.float(), docs.float()
    q_block, d_block = _blocks(queries.shape[0], docs.shape[0], chunk_elements)
    return search_blocks(
        lambda qs, qe, ds, de: queries[qs:qe] @ docs[ds:de].T,
        queries.shape[0],
        docs.shape[0],
        doc_ties,
        k,
        q_block=q_block,
        d_block=d_block,
        device=queries.device,
        pair_queries=pair_queries,
        pair_docs=pair_docs,
        distributed=distributed,
    )


ScoreBlock = Callable[[int, int, int, int], torch.Tensor]


@torch.inference_mode()
def search_blocks(
    score: ScoreBlock,
    n_queries: int,
    n_docs: int,
    doc_ties: torch.Tensor,
    k: int,
    *,
    q_block: int,
    d_block: int,
    device: torch.device,
    pair_queries: torch.Tensor | None = None,
    pair_docs: torch.Tensor | None = None,
    distributed: bool = True,
) -> SearchHits:
    """`search` over any scorer: `score(qs, qe, ds, de)` returns the float32 `(qe - qs, de - ds)` scores of
    queries `qs:qe` against local docs `ds:de`; blocks start at multiples of `q_block` / `d_block`.

    The tie rule, the shard merge and the true ranks are those of `search` (the sparse evaluator ranks
    through this same function, so dense and sparse rankings follow one rule).
    """
    if pair_queries is None or pair_docs is None:
        pair_queries = torch.zeros(0, dtype=torch.int64, device=device)
        pair_docs = torch.zeros(0, dtype=torch.int64, device=device)
    pair_queries, pair_docs = pair_queries.to(device), pair_docs.to(device)
    gather = all_gather_rows if distributed else (lambda t: [t])
    reduce = all_reduce if distributed else (lambda t, op="sum": t)
    total_docs = int(reduce(torch.tensor([n_docs], dtype=torch.int64)).item())
    k = min(k, total_docs)
    doc_ties = doc_ties.to(device)

    # Pass 1: local top-k and the key of every pair this rank owns.
    pair_keys = torch.full((pair_queries.numel(),), _MISSING, dtype=torch.int64, device=device)
    top_rows = []
    for qs in range(0, n_queries, q_block):
        qe = min(qs + q_block, n_queries)
        candidates = []
        in_block = (pair_queries >= qs) & (pair_queries < qe) & (pair_docs >= 0)
        for ds in range(0, n_docs, d_block):
            de = min(ds + d_block, n_docs)
            keys = score_keys(score(qs, qe, ds, de), doc_ties[ds:de])
            candidates.append(torch.topk(keys, min(k, de - ds), dim=1).values)
            here = torch.nonzero(in_block & (pair_docs >= ds) & (pair_docs < de)).squeeze(1)
            if here.numel():
                pair_keys[here] = keys[pair_queries[here] - qs, pair_docs[here] - ds]
        if candidates:
            merged = torch.cat(candidates, dim=1)
            top_rows.append(torch.topk(merged, min(k, merged.shape[1]), dim=1).values)
        else:
            top_rows.append(torch.full((qe - qs, 0), _MISSING, dtype=torch.int64, device=device))
    local_top = torch.cat(top_rows) if top_rows else torch.zeros((0, 0), dtype=torch.int64, device=device)

    # Merge the shards' lists (a no-op in one process) and share the pair keys.
    shards = [s.T for s in gather(local_top.T.contiguous())]
    merged = torch.cat(shards, dim=1)
    top_keys = torch.topk(merged, k, dim=1).values if merged.shape[1] else merged
    pair_keys = reduce(pair_keys, "max")

    # True ranks: inside the top-k the position says it; otherwise count larger keys (pass 2).
    found = pair_keys != _MISSING
    pair_ranks = torch.zeros_like(pair_keys)
    if pair_keys.numel() and k:
        row_top = top_keys[pair_queries]
        in_top = (row_top == pair_keys[:, None]) & found[:, None]
        pair_ranks = torch.where(in_top.any(dim=1), in_top.int().argmax(dim=1) + 1, pair_ranks)
    need = found & (pair_ranks == 0)
    if bool(reduce(need.any().to(torch.int64).reshape(1), "max").item()):
        counts = torch.zeros_like(pair_keys)
        todo = torch.nonzero(need).squeeze(1)
        for qs in range(0, n_queries, q_block):
            qe = min(qs + q_block, n_queries)
            rows = todo[(pair_queries[todo] >= qs) & (pair_queries[todo] < qe)]
            if not rows.numel():
                continue
            for ds in range(0, n_docs, d_block):
                de = min(ds + d_block, n_docs)
                keys = score_keys(score(qs, qe, ds, de), doc_ties[ds:de])
                counts[rows] += (keys[pair_queries[rows] - qs] > pair_keys[rows, None]).sum(dim=1)
        counts = reduce(counts, "sum")
        pair_ranks = torch.where(need, counts + 1, pair_ranks)
    return SearchHits(top_keys=top_keys, pair_keys=pair_keys, pair_ranks=pair_ranks)

"""Exact top-k by sparse dot product: query rows x an inverted index of each document chunk.

The documents are cut into chunks of `d_block` rows; each chunk is stored transposed as a CSR matrix
(`vocabulary x docs`: per vocabulary id, the docs holding it and their weights — an inverted index).
A block of sparse query rows times that index (`torch` CSR @ CSR, i.e. term-at-a-time accumulation over
the posting lists of the query's terms only) gives the exact `(queries x docs)` score tile, which
`search.search_blocks` packs with the tie positions, reduces to its top-k and drops: the same keys, tie
rule, shard merge and true ranks as the dense search. Nothing of size corpus x vocabulary, nor
queries x corpus, is ever built; memory is the non-zeros plus one tile of at most `chunk_elements`.

Why an inverted index and not `docs_csr @ dense_queries.T` (SpMM): SpMM multiplies every stored document
value by every query of the block, most of them zero; the inverted index touches only the
(query term, posting) pairs that meet, i.e. about `FLOPS x queries x docs` multiplications. Measured in
`benchmarks/bench_sparse.py` (docs/sparse.md).
"""

from __future__ import annotations

from typing import Literal

import torch

from hf_search_wandb.core.search import SearchHits, search_blocks
from hf_search_wandb.core.sparse_encoding import SparseRows

Kernel = Literal["inverted", "spmm"]


def sparse_blocks(n_queries: int, n_docs: int, chunk_elements: int) -> tuple[int, int]:
    """(query block, doc block) so that one dense score tile holds at most `chunk_elements` scores."""
    q_block = max(1, min(n_queries, 1024))
    d_block = max(1, min(n_docs, chunk_elements // q_block))
    return q_block, d_block


@torch.inference_mode()
def sparse_search(
    queries: SparseRows,
    docs: SparseRows,
    doc_ties: torch.Tensor,
    k: int,
    *,
    pair_queries: torch.Tensor | None = None,
    pair_docs: torch.Tensor | None = None,
    chunk_elements: int = 1 << 24,
    distributed: bool = True,
    kernel: Kernel = "inverted",
) -> SearchHits:
    """Top-`k` docs of every query by sparse dot product, plus the true rank of given (query, doc) pairs.

    Args:
        queries: all query rows (every rank holds all of them).
        docs: this rank's corpus shard (local rows), on the same device as `queries`.
        doc_ties: `(n_local_docs,)` global tie positions of the shard's docs (`search.tie_positions`).
        k: docs kept per query (capped by the corpus size over all ranks).
        pair_queries / pair_docs: see `search.search`.
        chunk_elements: scores held at once (one query block x doc block tile).
        distributed: merge with the other ranks of the process group (see `search.search`).
        kernel: `"inverted"` (default; CSR queries @ CSR inverted index) or `"spmm"` (CSR docs @ dense query
            block; kept for the benchmark that chose the default).

    Returns:
        `search.SearchHits`, the same on every rank.

    Example:
        >>> from hf_search_wandb.core.search import key_ties
        >>> q = SparseRows.from_dense(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]))
        >>> d = SparseRows.from_dense(torch.tensor([[0.5, 0.0, 0.0], [0.0, 1.0, 1.0], [2.0, 0.0, 0.0]]))
        >>> key_ties(sparse_search(q, d, torch.arange(3), 2).top_keys).tolist()
        [[2, 0], [1, 2]]
    """
    if kernel not in ("inverted", "spmm"):
        raise ValueError(f"kernel must be 'inverted' or 'spmm', got {kernel!r}.")
    if queries.dim != docs.dim:
        raise ValueError(
            f"Queries have {queries.dim} dimensions and documents {docs.dim}: encode both with the same model."
        )
    device = queries.values.device
    n_queries, n_docs = len(queries), len(docs)
    q_block, d_block = sparse_blocks(n_queries, n_docs, chunk_elements)
    doc_chunks = [docs.slice(ds, min(ds + d_block, n_docs)) for ds in range(0, n_docs, d_block)]
    query_blocks: dict[int, torch.Tensor] = {}
    if kernel == "inverted":
        indexes = [chunk.inverted() for chunk in doc_chunks]

        def score(qs: int, qe: int, ds: int, de: int) -> torch.Tensor:
            if qs not in query_blocks:
                query_blocks.clear()  # one query block at a time
                query_blocks[qs] = queries.slice(qs, qe).to_csr()
            return (query_blocks[qs] @ indexes[ds // d_block]).to_dense()

    else:
        doc_csr = [chunk.to_csr() for chunk in doc_chunks]

        def score(qs: int, qe: int, ds: int, de: int) -> torch.Tensor:
            if qs not in query_blocks:
                query_blocks.clear()
                query_blocks[qs] = queries.slice(qs, qe).to_dense().T.contiguous()
            return torch.sparse.mm(doc_csr[ds // d_block], query_blocks[qs]).T

    return search_blocks(
        score,
        n_queries,
        n_docs,
        doc_ties,
        k,
        q_block=q_block,
        d_block=d_block,
        device=device,
        pair_queries=pair_queries,
        pair_docs=pair_docs,
        distributed=distributed,
    )

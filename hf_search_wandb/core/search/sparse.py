"""Exact top-k by sparse dot product over CSR document chunks, with the dense search's tie rule.

The documents are cut into chunks of `d_block` CSR rows. Two exact kernels score a block of queries
against a chunk:

* `"spmm"` (default): CSR docs @ a dense `(vocabulary x query block)` matrix — sparse x dense, one vectorised
  pass over the chunk's non-zeros per query block; the query block is capped at 8M floats (274 queries at
  a 30k vocabulary), so memory stays bounded by the vocabulary times that cap, never by the corpus.
* `"inverted"`: each chunk stored transposed (`vocabulary x docs`: an inverted index) and CSR queries @ that
  index (CSR x CSR: term-at-a-time over the posting lists of the query's own terms). It does ~50x fewer
  multiplications (`FLOPS x queries x docs` instead of `nnz(docs) x queries`) but scattered ones, and its
  sparse output is nearly dense for a SPLADE vocabulary's frequent ids: measured 2.2x slower on CPU
  (`benchmarks/bench_sparse.py`, docs/sparse.md), hence not the default.

Either tile goes through `search.search_blocks`: packed with the tie positions, reduced to its top-k and
dropped — the same keys, tie rule, shard merge and true ranks as the dense search. Nothing of size
corpus x vocabulary, nor queries x corpus, is ever built.
"""

from __future__ import annotations

from typing import Literal

import torch

from hf_search_wandb.core.models.sparse import SparseRows
from hf_search_wandb.core.search.dense import SearchHits, search_blocks

Kernel = Literal["inverted", "spmm"]


#: the dense query block of the "spmm" kernel holds at most this many floats (vocabulary x queries)
DENSE_QUERY_ELEMENTS = 1 << 23


def sparse_blocks(n_queries: int, n_docs: int, chunk_elements: int, dim: int = 1) -> tuple[int, int]:
    """(query block, doc block): a dense score tile of at most `chunk_elements` scores, a dense query block
    of at most `DENSE_QUERY_ELEMENTS` values."""
    q_block = max(1, min(n_queries, 1024, DENSE_QUERY_ELEMENTS // max(dim, 1)))
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
    kernel: Kernel = "spmm",
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
        kernel: `"spmm"` (default; CSR docs @ dense query block) or `"inverted"` (CSR queries @ an inverted
            index per doc chunk); same results, see the module docstring for the measured choice.

    Returns:
        `search.SearchHits`, the same on every rank.

    Example:
        >>> from hf_search_wandb.core.search.dense import key_ties
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
    q_block, d_block = sparse_blocks(n_queries, n_docs, chunk_elements, queries.dim)
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

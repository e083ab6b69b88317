"""The sparse (SPLADE) backend of `RetrievalEvaluator`; what it keeps is `results.SparseRetrievalResult`.

`RetrievalEvaluator.evaluate` sends a `SparseEncoder` here. Same machinery as the dense backend (texts
tokenised once and cached, token-budget batches cut from length-sorted texts, the one precision rule,
corpus sharded over ranks), but every batch's `(batch, vocabulary)` output becomes `SparseRows` at once,
ranking is `core.search.sparse.sparse_search` (exact, same tie rule), and the SPLADE health figures are added
to the metrics: `query_active_dims`, `corpus_active_dims` (mean non-zeros per text) and `flops`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hf_search_wandb.core.distributed import all_gather_rows, all_reduce
from hf_search_wandb.core.evaluation.base import EvaluationPass
from hf_search_wandb.core.evaluation.batching import plan_batches, run_batches
from hf_search_wandb.core.evaluation.precision import query_dtype, synchronize
from hf_search_wandb.core.evaluation.results import RetrievalResult, SparseRetrievalResult
from hf_search_wandb.core.metrics.measures import SPARSITY_METRICS
from hf_search_wandb.core.models.base import Kind, Tokenized, features_to_device
from hf_search_wandb.core.models.sparse import SparseEncoderAdapter, SparseRows, flops
from hf_search_wandb.core.search.sparse import sparse_search

if TYPE_CHECKING:
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

#: default padded tokens per batch on GPU: a SPLADE batch holds `tokens x vocabulary` logits
SPARSE_GPU_BATCH_TOKENS = 16384


def evaluate_sparse(
    evaluator: RetrievalEvaluator, encoder: SparseEncoderAdapter, step: EvaluationPass
) -> SparseRetrievalResult:
    """`RetrievalEvaluator.evaluate` for a `SparseEncoder`: encode sparse, rank exactly, add the sparsity."""
    device, timings, shard = encoder.device, step.timings, step.shard
    tick = time.perf_counter()
    q_tokens = evaluator.tokens(encoder, "query")
    d_tokens = evaluator.tokens(encoder, "document")
    timings["tokenize_s"] = time.perf_counter() - tick
    dtype = evaluator.precision_dtype(getattr(encoder, "dtype", torch.float32), device, "sparse", step)
    budget = evaluator.batch_tokens or (SPARSE_GPU_BATCH_TOKENS if device.type == "cuda" else 2048)

    def run(kind: Kind, tokens: Tokenized) -> tuple[SparseRows, np.ndarray]:
        batches = plan_batches(tokens.lengths, budget, evaluator.max_batch_size)[step.rank :: step.world]
        rows = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
        tick = time.perf_counter()
        kind_dtype = query_dtype(dtype) if kind == "query" else dtype  # queries exact: precision.query_dtype
        encoded = _embed_sparse(evaluator, encoder, kind, tokens, batches, device, kind_dtype)
        synchronize(device)
        timings["encode_queries_s" if kind == "query" else "encode_corpus_s"] = time.perf_counter() - tick
        return encoded, rows

    doc_emb, doc_rows = run("document", d_tokens)
    query_emb, query_rows = run("query", q_tokens)
    dim = max(doc_emb.dim, query_emb.dim)
    if shard:
        dim = int(all_reduce(torch.tensor([dim]), "max").item())
        counts = torch.cat(all_gather_rows(query_emb.active_dims))
        cols = torch.cat(all_gather_rows(query_emb.cols))
        values = torch.cat(all_gather_rows(query_emb.values))
        rows = torch.cat(all_gather_rows(torch.from_numpy(query_rows).to(torch.int64)))
        query_emb = SparseRows.from_counts(counts.to(device), cols.to(device), values.to(device), dim)
        query_order = torch.argsort(rows)
    else:
        query_order = torch.from_numpy(np.argsort(query_rows, kind="stable"))
    query_emb = query_emb.take(query_order.to(device))
    query_emb.dim = doc_emb.dim = dim
    stats = _sparsity(evaluator, query_emb, doc_emb, doc_rows, shard)
    similarity = evaluator.similarity or encoder.similarity
    if similarity == "cosine":
        query_emb, doc_emb = query_emb.normalized(), doc_emb.normalized()
    tick = time.perf_counter()
    pair_queries, pair_docs, ties = evaluator.pair_inputs(doc_rows)
    hits = sparse_search(
        query_emb, doc_emb, ties, evaluator.depth, pair_queries=pair_queries, pair_docs=pair_docs,
        chunk_elements=min(evaluator.chunk_elements, 1 << 24), distributed=shard,
    )  # fmt: skip
    base = evaluator.score_hits(hits)
    timings["search_s"] = time.perf_counter() - tick
    base.metrics.update({key: stats[key] for key in SPARSITY_METRICS})
    return SparseRetrievalResult(
        **{f: getattr(base, f) for f in RetrievalResult.__dataclass_fields__},
        query_active_dims=stats["query_lengths"],
        doc_active_dims=stats["doc_lengths"],
        flops=stats["flops"],
    )


def _embed_sparse(
    evaluator: RetrievalEvaluator,
    encoder: SparseEncoderAdapter,
    kind: Kind,
    tokens: Tokenized,
    batches: list[np.ndarray],
    device: torch.device,
    dtype: torch.dtype | None,
) -> SparseRows:
    """Each batch's `(batch, vocabulary)` output kept as `SparseRows` at once (never a dense corpus)."""

    def forward(batch: np.ndarray) -> torch.Tensor:
        return encoder.forward(features_to_device(tokens, batch, device, encoder.padding_side), kind)

    parts: list[SparseRows] = []
    dim = encoder.vocabulary_size or 0
    noun = "queries" if kind == "query" else "documents"
    for _, emb in run_batches(
        forward, batches, device=device, dtype=dtype, who=type(encoder.model).__name__, kind=kind,
        width="vocabulary", progress=evaluator.progress_label(f"encoding {noun}"),
    ):  # fmt: skip
        dim = int(emb.shape[1])
        parts.append(SparseRows.from_dense(emb))
    return SparseRows.cat(parts, dim, device)


def _sparsity(
    evaluator: RetrievalEvaluator, queries: SparseRows, docs: SparseRows, doc_rows: np.ndarray, shard: bool
) -> dict[str, Any]:
    """Mean active dims, FLOPS and per-text lengths; documents summed over the shards."""
    query_lengths = queries.active_dims.cpu().numpy().astype(np.int64)
    doc_counts = docs.count_vector().cpu()
    local_lengths = docs.active_dims.cpu()
    if shard:
        doc_counts = all_reduce(doc_counts, "sum")
        lengths = torch.cat(all_gather_rows(local_lengths))
        rows = torch.cat(all_gather_rows(torch.from_numpy(doc_rows).to(torch.int64)))
    else:
        lengths, rows = local_lengths, torch.from_numpy(doc_rows).to(torch.int64)
    doc_lengths = np.zeros(len(evaluator.doc_ids), dtype=np.int64)
    doc_lengths[rows.numpy()] = lengths.numpy()
    n_queries, n_docs = len(query_lengths), len(doc_lengths)
    return {
        "query_active_dims": float(query_lengths.mean()) if n_queries else 0.0,
        "corpus_active_dims": float(doc_lengths.mean()) if n_docs else 0.0,
        "flops": flops(queries.count_vector().cpu(), n_queries, doc_counts, n_docs),
        "query_lengths": query_lengths,
        "doc_lengths": doc_lengths,
    }

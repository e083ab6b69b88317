"""The dense backend of `RetrievalEvaluator`: one embedding per text, exact top-k by matrix products.

Queries and documents are encoded in token-budget batches (`batching.run_batches`), the corpus sharded over
ranks when the evaluation is distributed; cosine similarity normalises both; `core.search.dense.search` ranks
exactly with the shared tie rule; Matryoshka sizes are scored on slices of the same embeddings.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hf_search_wandb.core.distributed import all_gather_rows, all_reduce
from hf_search_wandb.core.evaluation.base import EvaluationPass
from hf_search_wandb.core.evaluation.batching import as_tensor, plan_batches, run_batches
from hf_search_wandb.core.evaluation.matryoshka import (
    check_sizes,
    normalizes,
    slice_embeddings,
    suffixed,
)
from hf_search_wandb.core.evaluation.precision import precision_name, query_dtype, synchronize
from hf_search_wandb.core.evaluation.results import RetrievalResult
from hf_search_wandb.core.models.base import Kind, TokenEncoder, Tokenized, features_to_device
from hf_search_wandb.core.search.dense import search

if TYPE_CHECKING:
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

#: default padded tokens per batch: large on a GPU; on a CPU small batches stay in cache (fp32), twice that
#: under bf16 autocast (AMX: 10% less CPU time than 2,048 on MiniLM, 100 SciFact queries x 1,000 docs; 6,144 is
#: slower again)
GPU_BATCH_TOKENS, CPU_BATCH_TOKENS, CPU_HALF_BATCH_TOKENS = 65536, 2048, 4096


def evaluate_dense(evaluator: RetrievalEvaluator, encoder: Any, step: EvaluationPass) -> RetrievalResult:
    """Encode both sides, rank exactly, score; Matryoshka sizes from the same embeddings."""
    query_emb, doc_emb, doc_rows, device = _encode_all(evaluator, encoder, step)
    similarity = evaluator.similarity or getattr(encoder, "similarity", "cosine")
    if similarity == "cosine":
        query_emb = torch.nn.functional.normalize(query_emb, p=2, dim=1)
        doc_emb = torch.nn.functional.normalize(doc_emb, p=2, dim=1)
    tick = time.perf_counter()
    result = _search_and_score(evaluator, query_emb, doc_emb, doc_rows, step.shard)
    synchronize(device)
    step.timings["search_s"] = time.perf_counter() - tick
    if evaluator.truncate_dims:
        renormalize = similarity == "cosine" or normalizes(encoder)
        _score_dims(evaluator, result, query_emb, doc_emb, doc_rows, step.shard, renormalize)
    return result


def _search_and_score(
    evaluator: RetrievalEvaluator, query_emb: torch.Tensor, doc_emb: torch.Tensor, doc_rows: np.ndarray, shard: bool
) -> RetrievalResult:
    pair_queries, pair_docs, ties = evaluator.pair_inputs(doc_rows)
    hits = search(
        query_emb, doc_emb, ties, evaluator.depth, pair_queries=pair_queries, pair_docs=pair_docs,
        chunk_elements=evaluator.chunk_elements, distributed=shard,
    )  # fmt: skip
    return evaluator.score_hits(hits)


def _score_dims(
    evaluator: RetrievalEvaluator,
    result: RetrievalResult,
    query_emb: torch.Tensor,
    doc_emb: torch.Tensor,
    doc_rows: np.ndarray,
    shard: bool,
    renormalize: bool,
) -> None:
    """Score every Matryoshka size on slices of the embeddings already computed (no encoding)."""
    width = int(query_emb.shape[1])
    check_sizes(evaluator.truncate_dims, width)
    full = dict(result.metrics)
    evaluator.last_dim_results = {}
    for dim in evaluator.truncate_dims:
        if dim == width:
            part = result
        else:
            part = _search_and_score(
                evaluator,
                slice_embeddings(query_emb, dim, normalize=renormalize),
                slice_embeddings(doc_emb, dim, normalize=renormalize),
                doc_rows,
                shard,
            )
        evaluator.last_dim_results[dim] = part
        result.metrics.update(suffixed(full if part is result else part.metrics, dim))


def _encode_all(
    evaluator: RetrievalEvaluator, encoder: Any, step: EvaluationPass
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, torch.device]:
    timings = step.timings
    queries: list[str] = []  # the texts themselves only for an `Encoder` of texts; token ids are cached
    docs: list[str] = []
    q_tokens: Tokenized | None = None
    d_tokens: Tokenized | None = None
    if isinstance(encoder, TokenEncoder):
        device = encoder.device
        tick = time.perf_counter()
        q_tokens = evaluator.tokens(encoder, "query")
        d_tokens = evaluator.tokens(encoder, "document")
        timings["tokenize_s"] = time.perf_counter() - tick
        dtype = evaluator.precision_dtype(getattr(encoder, "dtype", torch.float32), device, "dense", step)
        q_lengths, d_lengths = q_tokens.lengths, d_tokens.lengths
        cpu_budget = CPU_BATCH_TOKENS if dtype is None else CPU_HALF_BATCH_TOKENS
        budget = evaluator.batch_tokens or (GPU_BATCH_TOKENS if device.type == "cuda" else cpu_budget)
    else:  # an `Encoder` of texts: the batch is cut by text count
        device = torch.device(getattr(encoder, "device", "cpu"))
        queries, docs = evaluator.texts("query"), evaluator.texts("document")
        timings["tokenize_s"] = 0.0
        dtype = None  # the encoder runs its own forward pass, in its weights' precision
        step.precision = precision_name(None, getattr(encoder, "dtype", torch.float32))
        q_lengths = np.array([len(t) for t in queries], dtype=np.int64)
        d_lengths = np.array([len(t) for t in docs], dtype=np.int64)
        budget = max(q_lengths.max(initial=1), d_lengths.max(initial=1)) * evaluator.max_batch_size

    def run(kind: Kind, texts: list[str], tokens: Tokenized | None, lengths: np.ndarray):
        batches = plan_batches(lengths, budget, evaluator.max_batch_size)[step.rank :: step.world]
        rows = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
        tick = time.perf_counter()
        kind_dtype = query_dtype(dtype) if kind == "query" else dtype  # queries exact: precision.query_dtype
        emb = _embed(evaluator, encoder, kind, texts, tokens, batches, device, kind_dtype)
        synchronize(device)
        timings["encode_queries_s" if kind == "query" else "encode_corpus_s"] = time.perf_counter() - tick
        return emb, rows

    doc_emb, doc_rows = run("document", docs, d_tokens, d_lengths)
    query_emb, query_rows = run("query", queries, q_tokens, q_lengths)
    if step.shard:
        dim = int(all_reduce(torch.tensor([query_emb.shape[1] if query_emb.numel() else 0]), "max").item())
        if query_emb.numel() == 0:
            query_emb = torch.zeros((0, dim), device=device)
        if doc_emb.numel() == 0:
            doc_emb = torch.zeros((0, dim), device=device)
        gathered = all_gather_rows(query_emb)
        rows = all_gather_rows(torch.from_numpy(query_rows).to(torch.int64))
        full = torch.empty((len(evaluator.query_ids), dim), device=device, dtype=query_emb.dtype)
        for part, idx in zip(gathered, rows, strict=True):
            full[idx.to(device)] = part.to(device)
        query_emb = full
    else:
        order = torch.from_numpy(np.argsort(query_rows, kind="stable")).to(device)
        query_emb = query_emb[order]
    return query_emb, doc_emb, doc_rows, device


def _embed(
    evaluator: RetrievalEvaluator,
    encoder: Any,
    kind: Kind,
    texts: list[str],
    tokens: Tokenized | None,
    batches: list[np.ndarray],
    device: torch.device,
    dtype: torch.dtype | None,
) -> torch.Tensor:
    """One float32 embedding per text of `batches`, in batch order."""

    def forward(batch: np.ndarray) -> torch.Tensor:
        if tokens is None:
            return as_tensor(encoder.encode_texts([texts[i] for i in batch.tolist()], kind), device)
        return encoder.forward(features_to_device(tokens, batch, device, encoder.padding_side), kind)

    total = sum(len(b) for b in batches)
    out: torch.Tensor | None = None
    filled = 0
    noun = "queries" if kind == "query" else "documents"
    for batch, emb in run_batches(
        forward, batches, device=device, dtype=dtype, who=type(encoder).__name__, kind=kind, width="dim",
        progress=evaluator.progress_label(f"encoding {noun}"),
    ):  # fmt: skip
        if out is None:
            out = torch.empty((total, emb.shape[1]), dtype=torch.float32, device=device)
        out[filled : filled + len(batch)] = emb.float()
        filled += len(batch)
    if out is None:
        return torch.zeros((0, 0), device=device)
    return out


__all__ = ["evaluate_dense"]

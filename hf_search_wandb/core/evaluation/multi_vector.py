"""The multi-vector (ColBERT-style late interaction) backend of `RetrievalEvaluator`.

`RetrievalEvaluator.evaluate` sends a sentence-transformers `MultiVectorEncoder` here. Same machinery as the
dense backend (texts tokenised once and cached, token-budget batches of length-sorted texts, the trainer's
precision, the corpus sharded over ranks), but a text is the vectors of its scored tokens
(`core.models.multi_vector`), kept flat with offsets (`core.search.maxsim.TokenVectors`) in the evaluation
precision. The queries are encoded first; the documents are then STREAMED: each few thousand documents'
token vectors are scored against every query (`maxsim_scores`: exact MaxSim / MeanMaxSim by chunked matrix
products) and dropped, so memory holds the queries' vectors, one chunk of documents' and the
`(queries x documents)` float32 scores, never the corpus's token vectors. The scores are ranked with the
dense search's tie rule (`rank_scores`). Added to the metrics: `query_tokens` and `corpus_tokens` (mean scored
tokens per text) and `index_mb` (the corpus's token vectors in the evaluation precision, in MiB).

`rescore_multi_vector` is the same model's path through `RerankingEvaluator`: a first stage's candidates
(BM25, a run, a `RetrievalResult`) re-scored by exact MaxSim, for corpora too big for the exact search.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from hf_search_wandb.core.distributed import all_gather_rows
from hf_search_wandb.core.evaluation.base import EvaluationPass
from hf_search_wandb.core.evaluation.batching import plan_batches, run_batches
from hf_search_wandb.core.evaluation.precision import query_dtype, synchronize
from hf_search_wandb.core.evaluation.results import MultiVectorRetrievalResult, RetrievalResult
from hf_search_wandb.core.models.base import Kind, Tokenized, features_to_device
from hf_search_wandb.core.models.multi_vector import MultiVectorEncoderAdapter
from hf_search_wandb.core.search.maxsim import TokenVectors, maxsim_pairs, maxsim_scores, rank_scores

if TYPE_CHECKING:
    from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

#: figures a multi-vector evaluation adds to the metrics
MULTI_VECTOR_METRICS: tuple[str, ...] = ("query_tokens", "corpus_tokens", "index_mb")
#: default padded tokens per forward batch (as the dense backend)
GPU_BATCH_TOKENS, CPU_BATCH_TOKENS = 65536, 2048


def evaluate_multi_vector(
    evaluator: RetrievalEvaluator, encoder: MultiVectorEncoderAdapter, step: EvaluationPass
) -> MultiVectorRetrievalResult:
    """`RetrievalEvaluator.evaluate` for a `MultiVectorEncoder`: token vectors, exact MaxSim, token figures."""
    if evaluator.truncate_dims:
        raise ValueError(
            "truncate_dims (Matryoshka sizes) does not apply to a MultiVectorEncoder: its token vectors have "
            "one size. Evaluate it without truncate_dims."
        )
    if evaluator.similarity is not None:
        raise ValueError(
            f"similarity={evaluator.similarity!r} is for single-vector models; a MultiVectorEncoder scores by "
            "its own similarity_fn_name ('maxsim' or 'meanmaxsim'). Leave similarity=None and set "
            "model.similarity_fn_name instead."
        )
    device, timings = encoder.device, step.timings
    tick = time.perf_counter()
    q_tokens = evaluator.tokens(encoder, "query")
    d_tokens = evaluator.tokens(encoder, "document")
    timings["tokenize_s"] = time.perf_counter() - tick
    dtype, store, budget = _precision(evaluator, encoder, step)
    # every rank encodes every query (a small share of the work); the corpus is sharded
    queries = _encode_queries(evaluator, encoder, q_tokens, budget, dtype, store, timings)

    tick, search_s = time.perf_counter(), 0.0
    d_batches = plan_batches(d_tokens.lengths, budget, evaluator.max_batch_size)[step.rank :: step.world]
    doc_rows = np.concatenate(d_batches) if d_batches else np.zeros(0, dtype=np.int64)
    scores = torch.empty((len(queries), doc_rows.size), dtype=torch.float32, device=device)
    doc_lengths = np.zeros(doc_rows.size, dtype=np.int64)
    scoring_elements = max(1, evaluator.chunk_elements // 4)
    done = 0
    chunks = _document_chunks(evaluator, encoder, d_tokens, d_batches, dtype, store, scoring_elements, queries.dim)
    for _, chunk in chunks:
        start = time.perf_counter()
        scores[:, done : done + len(chunk)] = maxsim_scores(
            queries, chunk, similarity=encoder.similarity, chunk_elements=scoring_elements
        )
        doc_lengths[done : done + len(chunk)] = chunk.lengths.cpu().numpy()
        done += len(chunk)
        search_s += time.perf_counter() - start
    synchronize(device)
    timings["encode_corpus_s"] = time.perf_counter() - tick - search_s

    tick = time.perf_counter()
    pair_queries, pair_docs, ties = evaluator.pair_inputs(doc_rows)
    hits = rank_scores(
        scores, ties, evaluator.depth, pair_queries=pair_queries, pair_docs=pair_docs,
        chunk_elements=evaluator.chunk_elements, distributed=step.shard,
    )  # fmt: skip
    base = evaluator.score_hits(hits)
    timings["search_s"] = search_s + time.perf_counter() - tick

    query_lengths = queries.lengths.cpu().numpy().astype(np.int64)
    all_lengths = _gather_lengths(len(evaluator.doc_ids), doc_lengths, doc_rows, step.shard)
    element = torch.empty(0, dtype=store).element_size()
    index_bytes = int(all_lengths.sum()) * queries.dim * element
    base.metrics.update(
        {
            "query_tokens": float(query_lengths.mean()) if query_lengths.size else 0.0,
            "corpus_tokens": float(all_lengths.mean()) if all_lengths.size else 0.0,
            "index_mb": index_bytes / 2**20,
        }
    )
    return MultiVectorRetrievalResult(
        **{f: getattr(base, f) for f in RetrievalResult.__dataclass_fields__},
        query_tokens=query_lengths,
        doc_tokens=all_lengths,
        token_dim=queries.dim,
        index_bytes=index_bytes,
        similarity=encoder.similarity,
    )


def rescore_multi_vector(
    evaluator: RerankingEvaluator, encoder: MultiVectorEncoderAdapter, step: EvaluationPass
) -> tuple[np.ndarray, dict[str, float]]:
    """`RerankingEvaluator.run` for a `MultiVectorEncoder`: the late-interaction score of every candidate pair
    it scores (nan for the others, as the cross-encoder path), and the token figures of what was encoded.

    For a corpus too big for exact search: only the queries and the candidate documents of scored pairs are
    encoded, each once (a document that is a candidate of several queries too), and only the candidate pairs
    are scored (`maxsim_pairs`), never the `(queries x corpus)` matrix. The documents are sharded over the
    ranks and streamed as in `evaluate_multi_vector`: each chunk's token vectors score the pairs of its
    documents and are dropped; the scores are gathered. The figures: `query_tokens`, `corpus_tokens` (mean
    scored tokens per query / per candidate document) and `index_mb` (the candidate documents' token vectors).
    """
    device, timings = encoder.device, step.timings
    scores = np.full(evaluator.num_candidates, np.nan, dtype=np.float32)
    pairs, pair_rows, pair_docs = evaluator.scored_pairs()
    if pairs.size == 0:  # no query has a relevant candidate: nothing to score (the same on every rank)
        timings["tokenize_s"] = timings["encode_queries_s"] = timings["score_s"] = 0.0
        return scores, {}
    q_rows, q_of_pair = np.unique(pair_rows, return_inverse=True)
    d_rows, d_of_pair = np.unique(pair_docs, return_inverse=True)
    tick = time.perf_counter()
    q_tokens = evaluator.text_tokens(encoder, "query", q_rows)
    d_tokens = evaluator.text_tokens(encoder, "document", d_rows)
    timings["tokenize_s"] = time.perf_counter() - tick
    dtype, store, budget = _precision(evaluator, encoder, step)
    queries = _encode_queries(evaluator, encoder, q_tokens, budget, dtype, store, timings)

    # the scored pairs grouped by document: a chunk of documents finds its pairs by slicing
    by_doc = np.argsort(d_of_pair, kind="stable")
    first_pair = np.searchsorted(d_of_pair[by_doc], np.arange(d_rows.size + 1))
    d_batches = plan_batches(d_tokens.lengths, budget, evaluator.max_batch_size)[step.rank :: step.world]
    local_pairs: list[np.ndarray] = []
    local_scores: list[torch.Tensor] = []
    local_lengths: list[np.ndarray] = []
    scoring_elements = (1 << 25) // 4  # as `evaluate_multi_vector` with RetrievalEvaluator's default chunk_elements
    tick, score_s = time.perf_counter(), 0.0
    chunks = _document_chunks(evaluator, encoder, d_tokens, d_batches, dtype, store, scoring_elements, queries.dim)
    for docs, chunk in chunks:
        start = time.perf_counter()
        which = np.concatenate([by_doc[first_pair[d] : first_pair[d + 1]] for d in docs.tolist()])
        position = np.empty(d_rows.size, dtype=np.int64)
        position[docs] = np.arange(docs.size)
        local_scores.append(
            maxsim_pairs(
                queries, chunk, torch.from_numpy(q_of_pair[which]), torch.from_numpy(position[d_of_pair[which]]),
                similarity=encoder.similarity, chunk_elements=scoring_elements,
            )
        )  # fmt: skip
        local_pairs.append(which)
        local_lengths.append(np.stack([docs, chunk.lengths.cpu().numpy()]))
        score_s += time.perf_counter() - start
    synchronize(device)
    timings["encode_corpus_s"] = time.perf_counter() - tick - score_s
    timings["score_s"] = score_s

    found = torch.cat(local_scores) if local_scores else torch.zeros(0, device=device)
    scored = torch.from_numpy(np.concatenate(local_pairs) if local_pairs else np.zeros(0, dtype=np.int64))
    lengths = torch.from_numpy(np.concatenate(local_lengths, axis=1) if local_lengths else np.zeros((2, 0), np.int64))
    if step.shard:
        gathered = zip(all_gather_rows(found), all_gather_rows(scored), strict=True)
        for part, idx in gathered:
            scores[pairs[idx.numpy()]] = part.cpu().numpy()
        lengths = torch.cat(all_gather_rows(lengths.T.contiguous())).T
    else:
        scores[pairs[scored.numpy()]] = found.cpu().numpy()
    doc_lengths = np.zeros(d_rows.size, dtype=np.int64)
    doc_lengths[lengths[0].numpy()] = lengths[1].numpy()
    query_lengths = queries.lengths.cpu().numpy()
    element = torch.empty(0, dtype=store).element_size()
    return scores, {
        "query_tokens": float(query_lengths.mean()),
        "corpus_tokens": float(doc_lengths.mean()),
        "index_mb": int(doc_lengths.sum()) * queries.dim * element / 2**20,
    }


def _precision(
    evaluator: RetrievalEvaluator | RerankingEvaluator, encoder: MultiVectorEncoderAdapter, step: EvaluationPass
) -> tuple[torch.dtype | None, torch.dtype, int]:
    """The documents' autocast dtype, the dtype token vectors are stored in, and the tokens per batch."""
    dtype = evaluator.precision_dtype(encoder.dtype, encoder.device, "multi_vector", step)
    store = dtype if dtype in (torch.bfloat16, torch.float16) else torch.float32
    budget = evaluator.batch_tokens or (GPU_BATCH_TOKENS if encoder.device.type == "cuda" else CPU_BATCH_TOKENS)
    return dtype, store, budget


def _encode_queries(
    evaluator: RetrievalEvaluator | RerankingEvaluator,
    encoder: MultiVectorEncoderAdapter,
    tokens: Tokenized,
    budget: int,
    dtype: torch.dtype | None,
    store: torch.dtype,
    timings: dict[str, float],
) -> TokenVectors:
    """Every query's token vectors in `tokens`' order: encoded exactly (`precision.query_dtype`) and stored in
    the documents' precision, to be scored against them."""
    tick, device = time.perf_counter(), encoder.device
    batches = plan_batches(tokens.lengths, budget, evaluator.max_batch_size)
    parts = [v for _, v in _encode(evaluator, encoder, "query", tokens, batches, device, query_dtype(dtype), store)]
    order = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    queries = _cat(parts, encoder.token_dim or 0, device, store)
    queries = queries.take(torch.from_numpy(np.argsort(order, kind="stable")).to(device))
    synchronize(device)
    timings["encode_queries_s"] = time.perf_counter() - tick
    return queries


def _document_chunks(
    evaluator: RetrievalEvaluator | RerankingEvaluator,
    encoder: MultiVectorEncoderAdapter,
    tokens: Tokenized,
    batches: list[np.ndarray],
    dtype: torch.dtype | None,
    store: torch.dtype,
    scoring_elements: int,
    dim: int,
) -> Iterator[tuple[np.ndarray, TokenVectors]]:
    """The documents of `batches` encoded and joined into chunks: `(rows, their token vectors)`, a chunk once it
    holds `scoring_elements` vector elements (so the vectors held before scoring stay within the same bound as
    the scoring block), the rest at the end. The caller scores each chunk and drops it: the corpus's vectors are
    never held at once."""
    flush_tokens = max(1, scoring_elements // max(dim, 1))
    pending: list[tuple[np.ndarray, TokenVectors]] = []
    waiting = 0
    for rows, vectors in _encode(evaluator, encoder, "document", tokens, batches, encoder.device, dtype, store):
        pending.append((rows, vectors))
        waiting += int(vectors.vectors.shape[0])
        if waiting >= flush_tokens:
            yield np.concatenate([r for r, _ in pending]), _cat([v for _, v in pending], dim, encoder.device, store)
            pending, waiting = [], 0
    if pending:
        yield np.concatenate([r for r, _ in pending]), _cat([v for _, v in pending], dim, encoder.device, store)


def _encode(
    evaluator: RetrievalEvaluator | RerankingEvaluator,
    encoder: MultiVectorEncoderAdapter,
    kind: Kind,
    tokens: Tokenized,
    batches: list[np.ndarray],
    device: torch.device,
    dtype: torch.dtype | None,
    store: torch.dtype,
):
    """Yield `(batch rows, TokenVectors of the batch's scored tokens in `store` dtype)` per batch."""
    masks: list[torch.Tensor] = []

    def forward(batch: np.ndarray) -> torch.Tensor:
        features = features_to_device(tokens, batch, device, encoder.padding_side)
        vectors, mask = encoder.forward_tokens(features, kind)
        masks.append(mask)
        return vectors.flatten(1)  # (batch, tokens x dim): the batch loop's shape check

    noun = "queries" if kind == "query" else "documents"
    for batch, flat in run_batches(
        forward, batches, device=device, dtype=dtype, who=type(encoder.model).__name__, kind=kind,
        width="tokens x dim", progress=evaluator.progress_label(f"encoding {noun}"),
    ):  # fmt: skip
        mask = masks.pop()
        vectors = flat.view(mask.shape[0], mask.shape[1], -1)
        counts = mask.sum(dim=1)
        offsets = torch.zeros(len(batch) + 1, dtype=torch.int64, device=vectors.device)
        torch.cumsum(counts, 0, out=offsets[1:])
        yield batch, TokenVectors(vectors[mask].to(store), offsets)


def _cat(parts: list[TokenVectors], dim: int, device: torch.device, store: torch.dtype) -> TokenVectors:
    """The texts of `parts`, one after the other."""
    if not parts:
        return TokenVectors(
            torch.zeros((0, dim), dtype=store, device=device), torch.zeros(1, dtype=torch.int64)
        )
    lengths = torch.cat([p.lengths for p in parts])
    offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64, device=lengths.device)
    torch.cumsum(lengths, 0, out=offsets[1:])
    vectors = parts[0].vectors if len(parts) == 1 else torch.cat([p.vectors for p in parts])
    return TokenVectors(vectors, offsets)


def _gather_lengths(n_docs: int, lengths: np.ndarray, rows: np.ndarray, shard: bool) -> np.ndarray:
    """Scored tokens of every document in `doc_ids` order, gathered over the shards."""
    local = torch.from_numpy(lengths)
    local_rows = torch.from_numpy(rows.astype(np.int64))
    if shard:
        local = torch.cat(all_gather_rows(local))
        local_rows = torch.cat(all_gather_rows(local_rows))
    out = np.zeros(n_docs, dtype=np.int64)
    out[local_rows.numpy()] = local.numpy()
    return out


__all__ = ["MULTI_VECTOR_METRICS", "evaluate_multi_vector", "rescore_multi_vector"]

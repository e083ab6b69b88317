"""`RetrievalEvaluator`: a fast, exact dense-retrieval evaluator for training loops.

It is a sentence-transformers evaluator (`evaluator=` in `SentenceTransformerTrainer`), and the callback
runs it for a plain `transformers.Trainer`. Per evaluation it encodes the corpus and the queries once,
ranks by chunked matrix products and scores the ranking with `metrics.score_ranked`. What makes it fast
(see docs/performance.md): texts are tokenised once and the token ids reused by every evaluation;
batches are cut from length-sorted texts by a token budget; the forward pass runs under autocast in the
trainer's precision with `inference_mode`; embeddings never leave the device.

Why over 400 lines: construction (validation, reduction, id normalisation), the tokenise-once encode loop and
the distributed search and merge work on the same private state; the sparse, Matryoshka and reranking paths
already live in their own modules.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from hf_search_wandb.core.data import inputs
from hf_search_wandb.core.data.hub_layouts import to_plain_data
from hf_search_wandb.core.distributed import (
    all_gather_rows,
    all_reduce,
    get_rank,
    get_world_size,
    is_distributed,
)
from hf_search_wandb.core.evaluation.matryoshka import (
    check_sizes,
    normalizes,
    slice_embeddings,
    suffixed,
    validate_dims,
)
from hf_search_wandb.core.evaluation.results import RetrievalResult
from hf_search_wandb.core.evaluation.sparse import evaluate_sparse
from hf_search_wandb.core.metrics.measures import parse_metric, parse_metrics
from hf_search_wandb.core.metrics.scoring import DEFAULT_METRICS, ranked_report
from hf_search_wandb.core.models.base import Encoder, Kind, TokenEncoder, Tokenized, features_to_device
from hf_search_wandb.core.models.factory import as_encoder
from hf_search_wandb.core.search.dense import SearchHits, key_scores, key_ties, search, tie_positions

try:  # sentence-transformers >= 6: BaseEvaluator (SentenceEvaluator is its deprecated alias)
    from sentence_transformers.base.evaluation import BaseEvaluator as SentenceEvaluator
except ImportError:  # sentence-transformers 3-5
    from sentence_transformers.evaluation import SentenceEvaluator  # type: ignore[no-redef]

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _examples(ids: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:n])
    return f"[{shown}{', ...' if len(ids) > n else ''}]"


def plan_batches(lengths: np.ndarray, batch_tokens: int, max_batch_size: int) -> list[np.ndarray]:
    """Cut length-sorted texts (longest first) into batches of at most `batch_tokens` padded tokens.

    Example:
        >>> [b.tolist() for b in plan_batches(np.array([2, 8, 4, 4]), batch_tokens=8, max_batch_size=8)]
        [[1], [2, 3], [0]]
    """
    order = np.lexsort((np.arange(lengths.size), -lengths))
    batches: list[np.ndarray] = []
    start = 0
    while start < order.size:
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, min(max_batch_size, batch_tokens // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


class RetrievalEvaluator(SentenceEvaluator):
    """Dense- or sparse-retrieval metrics (MRR, nDCG, recall, MAP, hit, precision) of a model on a query/corpus set.

    Args:
        queries: `{query_id: text}`, or a `datasets.Dataset` with BEIR columns `_id`, `text`.
        corpus: `{doc_id: text}`, or a `datasets.Dataset` with `_id`, `title` (optional), `text`.
        qrels: `{query_id: {doc_id: grade}}`, or a `datasets.Dataset` with `query-id`, `corpus-id`, `score`;
            grade > 0 is relevant (graded for nDCG). See `from_datasets` for `DatasetDict`s.
        name: key prefix: metrics come back as `{name}_{metric}` (e.g. `val_mrr@10`).
        metrics: metric names (`metrics.parse_metric`); the primary one is added if missing.
        depth: docs ranked per query (the run `map` and `recall@k` see); every k must be <= depth.
        primary_metric: the metric `SentenceTransformerTrainer` reports as primary (`{name}_` prepended).
        similarity: `"cosine"` or `"dot"`; default: the model's own (SentenceTransformer) or cosine.
        precision: `"auto"` (the weights' half dtype, or accelerate's mixed precision when a trainer runs,
            else fp32), `"fp32"`, `"bf16"` or `"fp16"` (autocast, on GPU and CPU).
        batch_tokens: padded tokens per forward batch (default 65,536 on GPU, 2,048 on CPU, where small batches stay in cache).
        max_batch_size: texts per batch at most.
        corpus_sample: evaluate on the judged docs of the evaluated queries plus this many other docs
            sampled with `seed` (None: the whole corpus). Metrics are then OPTIMISTIC: fewer distractors.
        max_queries: evaluate at most this many queries, sampled with `seed`.
        seed: seed of both samples.
        missing: what to do with qrels ids absent from `queries` / `corpus`: `"error"` (raise, default),
            `"drop"` (remove them from the qrels) or `"keep"` (absent docs stay in the qrels, count in the
            ideal DCG and recall, and can never be retrieved, as BEIR scores them).
        query_prompt / corpus_prompt: text prepended to queries / docs (default: the model's own prompts).
        pooling / normalize / tokenizer: used when `evaluate` receives a plain transformers model (see
            `encoders.as_encoder`).
        max_length: evaluation truncation in tokens, for any model (None: a SentenceTransformer's own
            `max_seq_length`, or the tokenizer's limit). Lets a model train on short inputs and still be
            evaluated at full length.
        distributed: shard the work over the `torch.distributed` ranks (None: when a process group with
            several processes runs; every rank must then call the evaluator).
        chunk_elements: scores held in memory at once during the search.
        show_progress_bar: a tqdm bar per encoding pass (documents, then queries), on rank 0 only.
        truncate_dims: Matryoshka sizes, e.g. `[256, 128, 64]`: each is scored on the first `dim` columns of the
            SAME embeddings (one encoding pass; re-normalised for cosine or a normalising model), returned as
            `{name}_{metric}@dim{dim}` next to the full-size metrics (`core.matryoshka`).

    Example:
        >>> from hf_search_wandb.core.data.beir import BUNDLED_SCIFACT
        >>> evaluator = RetrievalEvaluator.from_beir(BUNDLED_SCIFACT, "test", max_queries=20, corpus_sample=200)
        >>> evaluator.primary_metric, len(evaluator.queries)
        ('val_mrr@10', 20)
    """

    def __init__(
        self,
        queries: Mapping[str, str],
        corpus: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        *,
        name: str = "val",
        metrics: Sequence[str] = DEFAULT_METRICS,
        depth: int = 100,
        primary_metric: str = "mrr@10",
        similarity: str | None = None,
        precision: Precision = "auto",
        batch_tokens: int | None = None,
        max_batch_size: int = 256,
        corpus_sample: int | None = None,
        max_queries: int | None = None,
        seed: int = 0,
        missing: Literal["error", "drop", "keep"] = "error",
        query_prompt: str | None = None,
        corpus_prompt: str | None = None,
        pooling: str = "mean",
        normalize: bool = False,
        tokenizer: Any = None,
        max_length: int | None = None,
        distributed: bool | None = None,
        chunk_elements: int = 1 << 25,
        show_progress_bar: bool = False,
        truncate_dims: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if precision not in ("auto", *_DTYPES):
            raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}.")
        if similarity not in (None, "cosine", "dot"):
            raise ValueError(f"similarity must be 'cosine', 'dot' or None (the model's), got {similarity!r}.")
        if missing not in ("error", "drop", "keep"):
            raise ValueError(f"missing must be 'error', 'drop' or 'keep', got {missing!r}.")
        for label, value in (
            ("batch_tokens", batch_tokens),
            ("corpus_sample", corpus_sample),
            ("max_queries", max_queries),
        ):
            if value is not None and (
                not isinstance(value, int) or value < (0 if label == "corpus_sample" else 1)
            ):
                raise ValueError(f"{label} must be a positive integer or None, got {value!r}.")
        primary = parse_metric(primary_metric).name
        names = [parse_metric(m).name for m in inputs.string_list(metrics, "metrics")]
        if primary not in names:
            names.append(primary)
        self.metrics = names
        self.depth = depth
        parse_metrics(names, depth)  # every k <= depth, depth >= 1
        self.name = name
        self.primary_metric = f"{name}_{primary}" if name else primary
        self.greater_is_better = True
        self.similarity = similarity
        self.precision = precision
        self.batch_tokens = batch_tokens
        self.max_batch_size = max_batch_size
        self.query_prompt, self.corpus_prompt = query_prompt, corpus_prompt
        self.pooling, self.normalize, self.tokenizer, self.max_length = (
            pooling,
            normalize,
            tokenizer,
            max_length,
        )
        self.distributed = distributed
        self.chunk_elements = chunk_elements
        self.show_progress_bar = show_progress_bar
        self.truncate_dims = validate_dims(truncate_dims)
        self.last_dim_results: dict[int, RetrievalResult] = {}
        self.corpus_sample, self.max_queries, self.seed, self.missing = (
            corpus_sample,
            max_queries,
            seed,
            missing,
        )
        queries, corpus, qrels = to_plain_data(queries, corpus, qrels)
        self.queries, self.corpus, self.qrels = self._prepare(queries, corpus, qrels)
        self._query_ids = list(self.queries)
        self._doc_ids = list(self.corpus)
        self._doc_ties = tie_positions(self._doc_ids)
        self._tie_to_doc = np.argsort(self._doc_ties)
        self._pairs = self._relevant_pairs()
        self._token_cache: dict[Hashable, Tokenized] = {}
        self.last_result: RetrievalResult | None = None

    # ------------------------------------------------------------------ data
    @classmethod
    def from_beir(
        cls, source: str | os.PathLike[str], split: str = "test", **kwargs: Any
    ) -> RetrievalEvaluator:
        """Build from a BEIR folder (or Hub dataset name) via `data.load_beir`; `kwargs` go to `__init__`.

        Example:
            >>> from hf_search_wandb.core.data.beir import BUNDLED_SCIFACT
            >>> RetrievalEvaluator.from_beir(BUNDLED_SCIFACT, "test").primary_metric
            'val_mrr@10'
        """
        from hf_search_wandb.core.data.beir import load_beir

        data = load_beir(Path(source), split)
        return cls(data.queries, data.corpus, data.qrels, **kwargs)

    @classmethod
    def from_datasets(
        cls, corpus: Any, queries: Any, qrels: Any, split: str = "test", **kwargs: Any
    ) -> RetrievalEvaluator:
        """Build from `datasets` objects as the Hub holds them (BEIR or MTEB layout); `kwargs` go to `__init__`.

        Args:
            corpus: `load_dataset(name, "corpus")` (a `DatasetDict` with one split, or that split).
            queries: `load_dataset(name, "queries")`.
            qrels: the qrels `DatasetDict` (`load_dataset("mteb/...", "default")` or
                `load_dataset("BeIR/...-qrels")`) or one split of it.
            split: the qrels split to evaluate on when `qrels` holds several.

        Example:
            >>> from datasets import Dataset, DatasetDict
            >>> corpus = Dataset.from_dict({"_id": ["d1", "d2"], "title": ["", ""], "text": ["cells", "mice"]})
            >>> queries = Dataset.from_dict({"_id": ["q1"], "text": ["cell growth"]})
            >>> qrels = DatasetDict(test=Dataset.from_dict({"query-id": ["q1"], "corpus-id": ["d1"], "score": [1]}))
            >>> len(RetrievalEvaluator.from_datasets(corpus, queries, qrels, "test").corpus)
            2
        """
        from hf_search_wandb.core.data.hub_layouts import is_hf_dataset, qrels_from_dataset

        return cls(
            queries, corpus, qrels_from_dataset(qrels, split) if is_hf_dataset(qrels) else qrels, **kwargs
        )

    def _prepare(
        self, queries: Mapping[str, str], corpus: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]]
    ) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
        if not corpus:
            raise ValueError("The corpus is empty: give {doc_id: text} with at least one document.")
        if not queries:
            raise ValueError("There are no queries: give {query_id: text} with at least one query.")
        if not qrels:
            raise ValueError("The qrels are empty: give {query_id: {doc_id: relevance}}.")
        # one id normalisation for all three (1 and "1" are one id; both at once are refused), real texts,
        # integer grades: see core.inputs
        queries, corpus = inputs.texts(queries, "queries"), inputs.texts(corpus, "corpus")
        qrels = inputs.qrels(qrels)
        lost_queries = [q for q in qrels if q not in queries]
        lost_docs = sorted({d for docs in qrels.values() for d in docs if d not in corpus})
        if (lost_queries or lost_docs) and self.missing == "error":
            parts = []
            if lost_queries:
                parts.append(
                    f"{len(lost_queries):,} query ids of the qrels are not in `queries` "
                    f"(e.g. {_examples(lost_queries)})"
                )
            if lost_docs:
                parts.append(
                    f"{len(lost_docs):,} doc ids of the qrels are not in `corpus` (e.g. {_examples(lost_docs)})"
                )
            raise ValueError(
                "; ".join(parts)
                + ". Check that the ids match (strings, same split), or pass missing='drop' to "
                "remove them from the qrels (or missing='keep' to keep absent docs as unretrievable relevant docs)."
            )
        if lost_queries or lost_docs:
            logger.warning(
                "%s: %d qrels queries without text and %d judged docs not in the corpus (%s).",
                self.name,
                len(lost_queries),
                len(lost_docs),
                "dropped" if self.missing == "drop" else "queries dropped, docs kept as unretrievable",
            )
        lost = set(lost_docs) if self.missing == "drop" else set()
        kept = {
            q: {d: g for d, g in docs.items() if d not in lost} for q, docs in qrels.items() if q in queries
        }
        evaluable = [q for q, docs in kept.items() if any(g > 0 for g in docs.values())]
        if not evaluable:
            raise ValueError(
                "No query has a relevant document (grade > 0) in the qrels: nothing to evaluate."
            )
        rng = np.random.default_rng(self.seed)
        if self.max_queries is not None and len(evaluable) > self.max_queries:
            chosen = set(rng.choice(len(evaluable), self.max_queries, replace=False).tolist())
            evaluable = [q for i, q in enumerate(evaluable) if i in chosen]
        out_qrels = {q: kept[q] for q in evaluable}
        out_queries = {q: str(queries[q]) for q in evaluable}
        if self.corpus_sample is not None:
            judged = {d for docs in out_qrels.values() for d in docs}
            others = [d for d in corpus if d not in judged]
            take = min(self.corpus_sample, len(others))
            sampled = (
                {others[i] for i in rng.choice(len(others), take, replace=False).tolist()} if take else set()
            )
            keep_docs = judged | sampled
            out_corpus = {str(d): str(t) for d, t in corpus.items() if d in keep_docs}
            logger.info(
                "%s: corpus reduced to %d judged + %d sampled docs (of %d); metrics are optimistic.",
                self.name,
                len(judged & set(corpus)),
                take,
                len(corpus),
            )
        else:
            out_corpus = {str(d): str(t) for d, t in corpus.items()}
        return out_queries, out_corpus, out_qrels

    # ---------------------------------------------------------- sentence-transformers entry point
    def __call__(
        self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1
    ) -> dict[str, float]:
        """Evaluate `model`; returns `{f"{name}_{metric}": value}` (the trainer adds its `eval_` prefix).

        Example:
            >>> from sentence_transformers import SentenceTransformer
            >>> from hf_search_wandb.core.data.beir import BUNDLED_SCIFACT
            >>> ev = RetrievalEvaluator.from_beir(BUNDLED_SCIFACT, max_queries=5, corpus_sample=50)
            >>> sorted(ev(SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")))[:2]
            ['val_hit@10', 'val_map']
        """
        result = self.evaluate(model)
        prefix = f"{self.name}_" if self.name else ""
        metrics = {f"{prefix}{key}": value for key, value in result.metrics.items()}
        if output_path is not None and get_rank() == 0:
            self._append_csv(output_path, epoch, steps, result.metrics)
        if hasattr(model, "model_card_data"):
            with contextlib.suppress(Exception):  # model-card bookkeeping must never fail an evaluation
                self.store_metrics_in_model_card_data(model, metrics, epoch, steps)  # type: ignore[arg-type]
        return metrics

    def _append_csv(self, output_path: str, epoch: float, steps: int, metrics: dict[str, float]) -> None:
        append_metrics_csv(
            Path(output_path) / f"retrieval_evaluation_{self.name or 'results'}.csv", epoch, steps, metrics
        )

    def get_config_dict(self) -> dict[str, Any]:
        """What sentence-transformers records in the model card."""
        config: dict[str, Any] = {"depth": self.depth, "corpus_sample": self.corpus_sample}
        config["max_queries"] = self.max_queries
        if self.truncate_dims:
            config["truncate_dims"] = list(self.truncate_dims)
        return config

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: Any) -> RetrievalResult:
        """Encode, rank and score; the result is also kept as `self.last_result`.

        Args:
            model: a `SentenceTransformer`, a transformers model (with `tokenizer=` given to the evaluator or
                findable from its config), a module holding one, or an `Encoder`.

        Returns:
            A `RetrievalResult` (unprefixed metrics, rankings, true ranks, score samples, timings).
        """
        start = time.perf_counter()
        encoder = as_encoder(
            model, self.tokenizer, pooling=self.pooling, normalize=self.normalize, max_length=self.max_length
        )
        shard = self._use_distributed(model) and self._use_distributed(getattr(encoder, "model", None))
        rank, world = (get_rank(), get_world_size()) if shard else (0, 1)
        timings: dict[str, float] = {}
        module = getattr(encoder, "module", None)
        was_training = bool(module.training) if isinstance(module, torch.nn.Module) else False
        try:
            if isinstance(module, torch.nn.Module):
                module.eval()
            with torch.inference_mode():
                if getattr(encoder, "sparse", False):  # a SparseEncoder (SPLADE): core/evaluation/sparse.py
                    sparse = evaluate_sparse(self, encoder, rank, world, shard, timings)  # type: ignore[arg-type]
                    timings["total_s"] = time.perf_counter() - start
                    sparse.timings = timings
                    self.last_result = sparse
                    return sparse
                query_emb, doc_emb, doc_rows, device = self._encode_all(encoder, rank, world, shard, timings)
                similarity = self.similarity or getattr(encoder, "similarity", "cosine")
                if similarity == "cosine":
                    query_emb = torch.nn.functional.normalize(query_emb, p=2, dim=1)
                    doc_emb = torch.nn.functional.normalize(doc_emb, p=2, dim=1)
                tick = time.perf_counter()
                result = self._search_and_score(query_emb, doc_emb, doc_rows, device, shard)
                _sync(device)
                timings["search_s"] = time.perf_counter() - tick
                if self.truncate_dims:
                    renormalize = similarity == "cosine" or normalizes(encoder)
                    self._score_dims(result, query_emb, doc_emb, doc_rows, device, shard, renormalize)
                    timings["search_dims_s"] = time.perf_counter() - tick - timings["search_s"]
        finally:
            if isinstance(module, torch.nn.Module):
                module.train(was_training)
        timings["total_s"] = time.perf_counter() - start
        result.timings = timings
        self.last_result = result
        return result

    def _score_dims(
        self,
        result: RetrievalResult,
        query_emb: torch.Tensor,
        doc_emb: torch.Tensor,
        doc_rows: np.ndarray,
        device: torch.device,
        shard: bool,
        renormalize: bool,
    ) -> None:
        """Score every Matryoshka size on slices of the embeddings already computed (no encoding)."""
        width = int(query_emb.shape[1])
        check_sizes(self.truncate_dims, width)
        full = dict(result.metrics)
        self.last_dim_results = {}
        for dim in self.truncate_dims:
            if dim == width:
                part = result
            else:
                part = self._search_and_score(
                    slice_embeddings(query_emb, dim, normalize=renormalize),
                    slice_embeddings(doc_emb, dim, normalize=renormalize),
                    doc_rows,
                    device,
                    shard,
                )
            self.last_dim_results[dim] = part
            result.metrics.update(suffixed(full if part is result else part.metrics, dim))

    def _use_distributed(self, model: Any) -> bool:
        return evaluates_distributed(self.distributed, model)

    def _precision_dtype(self, encoder: Any, device: torch.device) -> torch.dtype | None:
        return evaluation_dtype(self.precision, getattr(encoder, "dtype", torch.float32), device)

    def _encode_all(
        self, encoder: Any, rank: int, world: int, shard: bool, timings: dict[str, float]
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, torch.device]:
        queries = [self.queries[q] for q in self._query_ids]
        docs = [self.corpus[d] for d in self._doc_ids]
        q_tokens: Tokenized | None = None
        d_tokens: Tokenized | None = None
        if isinstance(encoder, TokenEncoder):
            device = encoder.device
            tick = time.perf_counter()
            q_tokens = self._tokens(encoder, queries, "query", self.query_prompt)
            d_tokens = self._tokens(encoder, docs, "document", self.corpus_prompt)
            timings["tokenize_s"] = time.perf_counter() - tick
            dtype = self._precision_dtype(encoder, device)
            q_lengths, d_lengths = q_tokens.lengths, d_tokens.lengths
        else:
            device = torch.device(getattr(encoder, "device", "cpu"))
            timings["tokenize_s"] = 0.0
            dtype = None
            q_lengths = np.array([len(t) for t in queries], dtype=np.int64)
            d_lengths = np.array([len(t) for t in docs], dtype=np.int64)
        budget = self.batch_tokens or (65536 if device.type == "cuda" else 2048)
        if not isinstance(encoder, TokenEncoder):
            budget = max(q_lengths.max(initial=1), d_lengths.max(initial=1)) * self.max_batch_size

        def run(kind: Kind, texts: list[str], tokens: Tokenized | None, lengths: np.ndarray):
            batches = plan_batches(lengths, budget, self.max_batch_size)[rank::world]
            rows = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
            tick = time.perf_counter()
            emb = self._embed(encoder, kind, texts, tokens, batches, device, dtype)
            _sync(device)
            timings["encode_queries_s" if kind == "query" else "encode_corpus_s"] = time.perf_counter() - tick
            return emb, rows

        doc_emb, doc_rows = run("document", docs, d_tokens, d_lengths)
        query_emb, query_rows = run("query", queries, q_tokens, q_lengths)
        if shard:
            dim = int(
                all_reduce(torch.tensor([query_emb.shape[1] if query_emb.numel() else 0]), "max").item()
            )
            if query_emb.numel() == 0:
                query_emb = torch.zeros((0, dim), device=device)
            if doc_emb.numel() == 0:
                doc_emb = torch.zeros((0, dim), device=device)
            gathered = all_gather_rows(query_emb)
            rows = all_gather_rows(torch.from_numpy(query_rows).to(torch.int64))
            full = torch.empty((len(queries), dim), device=device, dtype=query_emb.dtype)
            for part, idx in zip(gathered, rows, strict=True):
                full[idx.to(device)] = part.to(device)
            query_emb = full
        else:
            order = torch.from_numpy(np.argsort(query_rows, kind="stable")).to(device)
            query_emb = query_emb[order]
        return query_emb, doc_emb, doc_rows, device

    def _tokens(self, encoder: TokenEncoder, texts: list[str], kind: Kind, prompt: str | None) -> Tokenized:
        prompt = prompt if prompt is not None else encoder.default_prompt(kind)
        key = (encoder.cache_key(kind, prompt), len(texts))
        if key not in self._token_cache:
            self._token_cache[key] = encoder.tokenize(texts, kind, prompt)
        return self._token_cache[key]

    def _embed(
        self,
        encoder: Any,
        kind: Kind,
        texts: list[str],
        tokens: Tokenized | None,
        batches: list[np.ndarray],
        device: torch.device,
        dtype: torch.dtype | None,
    ) -> torch.Tensor:
        out: torch.Tensor | None = None
        filled = 0
        total = sum(len(b) for b in batches)
        progress = None
        if self.show_progress_bar and get_rank() == 0:
            from tqdm.auto import tqdm

            noun = "queries" if kind == "query" else "documents"
            progress = tqdm(total=total, desc=f"{self.name}: encoding {noun}", unit=noun[:3], leave=False)
        for batch in batches:

            def run(batch: np.ndarray = batch) -> torch.Tensor:
                if tokens is None:
                    return _as_tensor(encoder.encode_texts([texts[i] for i in batch.tolist()], kind), device)
                features = features_to_device(tokens, batch, device, encoder.padding_side)
                with _autocast(device, dtype):
                    return encoder.forward(features, kind)

            emb = checked_batch(run, type(encoder).__name__, len(batch), kind, "dim")
            if out is None:
                out = torch.empty((total, emb.shape[1]), dtype=torch.float32, device=device)
            out[filled : filled + len(batch)] = emb.float()
            filled += len(batch)
            if progress is not None:
                progress.update(len(batch))
        if progress is not None:
            progress.close()
        if out is None:
            return torch.zeros((0, 0), device=device)
        if not bool(torch.isfinite(out).all()):
            hint = " (fp16 overflow? try precision='bf16' or 'fp32')" if dtype == torch.float16 else ""
            raise ValueError(f"{type(encoder).__name__} produced NaN or infinite {kind} embeddings{hint}.")
        return out

    def _relevant_pairs(self) -> tuple[list[int], list[int], list[tuple[str, str]]]:
        """(query row, doc row, (qid, doc id)) of every relevant judged doc present in the corpus."""
        doc_index = {d: i for i, d in enumerate(self._doc_ids)}
        pair_q, pair_d, pair_ids = [], [], []
        for qi, qid in enumerate(self._query_ids):
            for did, grade in self.qrels[qid].items():
                if grade > 0 and did in doc_index:
                    pair_q.append(qi)
                    pair_d.append(doc_index[did])
                    pair_ids.append((qid, did))
        return pair_q, pair_d, pair_ids

    def _search_and_score(
        self,
        query_emb: torch.Tensor,
        doc_emb: torch.Tensor,
        doc_rows: np.ndarray,
        device: torch.device,
        shard: bool,
    ) -> RetrievalResult:
        pair_queries, pair_docs, ties = self._pair_inputs(doc_rows)
        hits = search(
            query_emb,
            doc_emb,
            ties,
            self.depth,
            pair_queries=pair_queries,
            pair_docs=pair_docs,
            chunk_elements=self.chunk_elements,
            distributed=shard,
        )
        return self._result_from_hits(hits)

    def _pair_inputs(self, doc_rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(query row, LOCAL doc row or -1) of each relevant pair, and the tie positions of the local docs."""
        pair_q, pair_d, _ = self._pairs
        local_of = np.full(len(self._doc_ids), -1, dtype=np.int64)
        local_of[doc_rows] = np.arange(doc_rows.size)
        pair_local = local_of[np.asarray(pair_d, dtype=np.int64)] if pair_d else np.zeros(0, dtype=np.int64)
        ties = torch.from_numpy(self._doc_ties[doc_rows])
        return torch.tensor(pair_q, dtype=torch.int64), torch.from_numpy(pair_local), ties

    def _result_from_hits(self, hits: SearchHits) -> RetrievalResult:
        """Score the merged top-k against the qrels (trec_eval's order) and keep the rankings."""
        pair_ids = self._pairs[2]
        tie_to_doc = self._tie_to_doc
        top_keys = hits.top_keys.cpu()
        top_indices = tie_to_doc[key_ties(top_keys).numpy()]
        top_scores = key_scores(top_keys).numpy().astype(np.float32)
        grades = np.zeros(top_indices.shape, dtype=np.float64)
        in_qrels = np.zeros(top_indices.shape, dtype=bool)  # judged non-relevant vs unjudged, for bpref
        for qi, qid in enumerate(self._query_ids):
            judged = self.qrels[qid]
            for j, di in enumerate(top_indices[qi].tolist()):
                grade = judged.get(self._doc_ids[di])
                if grade is not None:
                    grades[qi, j] = grade
                    in_qrels[qi, j] = True
        judged_arrays = [np.fromiter(self.qrels[q].values(), dtype=np.float64) for q in self._query_ids]
        report = ranked_report(
            grades, judged_arrays, metrics=self.metrics, depth=self.depth, ranked_judged=in_qrels
        )
        pair_ranks = hits.pair_ranks.cpu().numpy()
        relevant_ranks: dict[str, dict[str, int]] = {}
        for (qid, did), rank in zip(pair_ids, pair_ranks.tolist(), strict=True):
            relevant_ranks.setdefault(qid, {})[did] = int(rank)
        return RetrievalResult(
            metrics=report.metrics,
            query_ids=list(self._query_ids),
            doc_ids=list(self._doc_ids),
            top_indices=top_indices.astype(np.int64),
            top_scores=top_scores,
            relevant_ranks=relevant_ranks,
            positive_scores=key_scores(hits.pair_keys.cpu()).numpy().astype(np.float32),
            negative_scores=top_scores[grades <= 0],
            timings={},
            per_query=report.per_query,
        )

    def __repr__(self) -> str:
        return (
            f"RetrievalEvaluator(name={self.name!r}, {len(self.queries):,} queries, {len(self.corpus):,} docs, "
            f"metrics={self.metrics}, depth={self.depth})"
        )


def _active_autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype of an enclosing autocast context on `device`, if any (torch >= 2.4 API, older fallback)."""
    try:
        if torch.is_autocast_enabled(device.type):
            return torch.get_autocast_dtype(device.type)
        return None
    except (TypeError, AttributeError):  # torch < 2.4: per-device functions without arguments
        if device.type == "cuda" and torch.is_autocast_enabled():
            return torch.get_autocast_gpu_dtype()
        if device.type == "cpu" and torch.is_autocast_cpu_enabled():
            return torch.get_autocast_cpu_dtype()
        return None


def evaluates_distributed(flag: bool | None, model: Any) -> bool:
    """Whether an evaluator shards its work over the process group: not when told not to, not outside one,
    and not under sentence-transformers >= 6.2, which calls evaluators on rank 0 only (other ranks wait in its
    own inference server, so collectives would hang: evaluate locally; the trainer broadcasts)."""
    if flag is False or not is_distributed():
        return False
    return getattr(model, "_distributed_inference", None) is None


def evaluation_dtype(precision: str, weights_dtype: torch.dtype, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an evaluation: the explicit `precision`, else an enclosing autocast, else None for
    half-precision weights, else accelerate's `mixed_precision` (the trainer's), else None (fp32)."""
    if precision != "auto":
        return _DTYPES[precision]
    active = _active_autocast_dtype(device)
    if active is not None:
        return active
    if weights_dtype in (torch.bfloat16, torch.float16):
        return None  # weights already in half precision
    try:
        from accelerate.state import AcceleratorState

        mixed = AcceleratorState._shared_state.get("_mixed_precision")
    except ImportError:  # pragma: no cover
        mixed = None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(mixed))


def append_metrics_csv(path: Path, epoch: float, steps: int, metrics: dict[str, float]) -> None:
    """Append one evaluation to `path` (sentence-transformers' evaluator CSV: epoch, steps, metrics)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["epoch", "steps", *metrics])
        writer.writerow([epoch, steps, *metrics.values()])


def checked_batch(run: Callable[[], torch.Tensor], who: str, n: int, kind: str, width: str) -> torch.Tensor:
    """`run()`'s embeddings of one batch of `n` texts, as a 2-D `(n, width)` tensor, or a clear error naming
    `who`: its own TypeError/ValueError as is, any other failure wrapped, a wrong shape refused."""
    try:
        emb = run()
    except (TypeError, ValueError):
        raise
    except Exception as err:
        raise RuntimeError(f"{who} failed to encode a batch of {n} {kind}s ({type(err).__name__}: {err}).") from err
    if emb.ndim != 2 or emb.shape[0] != n:
        raise ValueError(
            f"{who} returned embeddings of shape {tuple(emb.shape)} for {n} {kind}s; expected ({n}, {width})."
        )
    return emb


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def _as_tensor(value: Any, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    try:
        return torch.as_tensor(np.asarray(value, dtype=np.float32), device=device)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"encode_texts must return a (n, dim) tensor or array, got {type(value).__name__}."
        ) from err


__all__ = ["Encoder", "RetrievalEvaluator", "plan_batches"]

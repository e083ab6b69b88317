"""`RetrievalEvaluator`: a fast, exact retrieval evaluator for training loops, dense or sparse.

It is a sentence-transformers evaluator (`evaluator=` in `SentenceTransformerTrainer`), and the callback
runs it for a plain `transformers.Trainer`. Per evaluation it encodes the corpus and the queries once, ranks
exactly and scores the ranking with `core.metrics.scoring.score_ranked`. What makes it fast (see
docs/performance.md): texts are tokenised once and the token ids reused by every evaluation; batches are cut
from length-sorted texts by a token budget; the forward pass runs under autocast in the trainer's precision
with `inference_mode`; embeddings never leave the device.

This module holds what every retrieval family shares (the qrels' relevant pairs, the token cache, scoring a
search's hits); each model family is one backend module (`dense`, `sparse`) chosen by `BACKENDS`. What every
evaluator shares (validation, the input check, `__call__`, the CSV) is `base.SearchEvaluator`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from hf_search_wandb.core.evaluation.base import EvaluationPass, SearchEvaluator, examples
from hf_search_wandb.core.evaluation.dense import evaluate_dense
from hf_search_wandb.core.evaluation.matryoshka import validate_dims
from hf_search_wandb.core.evaluation.multi_vector import evaluate_multi_vector
from hf_search_wandb.core.evaluation.precision import Precision
from hf_search_wandb.core.evaluation.results import RetrievalResult
from hf_search_wandb.core.evaluation.sparse import evaluate_sparse
from hf_search_wandb.core.metrics.scoring import DEFAULT_METRICS, ranked_report
from hf_search_wandb.core.models.base import Encoder, Kind, TokenEncoder, Tokenized
from hf_search_wandb.core.models.factory import as_encoder
from hf_search_wandb.core.models.pooling_config import POOLING_MODES
from hf_search_wandb.core.search.dense import SearchHits, key_scores, key_ties, tie_positions

logger = logging.getLogger(__name__)

Backend = Callable[["RetrievalEvaluator", Any, EvaluationPass], RetrievalResult]
#: model family -> its backend: the first whose test accepts the adapted model runs the evaluation
BACKENDS: list[tuple[Callable[[Any], bool], Backend]] = [
    (lambda encoder: bool(getattr(encoder, "sparse", False)), evaluate_sparse),  # SPLADE: `sparse.py`
    (lambda encoder: bool(getattr(encoder, "multi_vector", False)), evaluate_multi_vector),  # ColBERT
    (lambda encoder: True, evaluate_dense),  # every dense encoder: `dense.py`
]


class RetrievalEvaluator(SearchEvaluator):
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
        precision: `"auto"` (an enclosing autocast, else the weights' half dtype, else accelerate's mixed
            precision when a trainer runs, else bf16 where the GPU or CPU computes it natively, else fp32),
            `"fp32"`, `"bf16"` or `"fp16"` (autocast); `core.evaluation.precision`. `last_result.precision`
            says which ran.
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
        pooling / normalize / tokenizer: used when `evaluate` receives a plain transformers model or a module
            holding one (`core.models.factory.as_encoder`). `pooling` (`"mean"`, `"cls"`, `"max"`, `"lasttoken"`,
            `"mean_sqrt_len_tokens"`, `"weightedmean"`) and `normalize` None (the default): what the model says
            it uses (sentence-transformers' Pooling config and Normalize module beside its weights, its config;
            `core.models.pooling_config`), else mean, unnormalised. Given ones win, with a warning when the
            model says otherwise. After `evaluate`, `pooling_used` / `normalize_used` say what was applied.
        max_length: evaluation truncation in tokens, for any model (None: a SentenceTransformer's own
            `max_seq_length`, or the tokenizer's limit). Lets a model train on short inputs and still be
            evaluated at full length.
        distributed: shard the work over the `torch.distributed` ranks (None: when a process group with
            several processes runs; every rank must then call the evaluator).
        chunk_elements: scores held in memory at once during the search.
        show_progress_bar: a tqdm bar per encoding pass (documents, then queries), on rank 0 only.
        truncate_dims: Matryoshka sizes, e.g. `[256, 128, 64]`: each is scored on the first `dim` columns of the
            SAME embeddings (one encoding pass; re-normalised for cosine or a normalising model), returned as
            `{name}_{metric}@dim{dim}` next to the full-size metrics (`core.evaluation.matryoshka`).

    Example:
        >>> evaluator = RetrievalEvaluator.from_beir("data/scifact", "test", max_queries=20, corpus_sample=200)
        >>> evaluator.primary_metric, len(evaluator.queries)
        ('val_mrr@10', 20)
    """


    csv_prefix = "retrieval_evaluation"

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
        pooling: str | None = None,
        normalize: bool | None = None,
        tokenizer: Any = None,
        max_length: int | None = None,
        distributed: bool | None = None,
        chunk_elements: int = 1 << 25,
        show_progress_bar: bool = False,
        truncate_dims: Sequence[int] | None = None,
    ) -> None:
        super().__init__(
            name=name, metrics=metrics, depth=depth, primary_metric=primary_metric, precision=precision,
            batch_tokens=batch_tokens, max_batch_size=max_batch_size, max_queries=max_queries, seed=seed,
            distributed=distributed, show_progress_bar=show_progress_bar,
        )  # fmt: skip
        if similarity not in (None, "cosine", "dot"):
            raise ValueError(f"similarity must be 'cosine', 'dot' or None (the model's), got {similarity!r}.")
        if pooling is not None and pooling not in POOLING_MODES:
            raise ValueError(
                f"pooling must be one of {POOLING_MODES} or None (what the model says it uses), got {pooling!r}."
            )
        if normalize is not None and not isinstance(normalize, bool):
            raise ValueError(
                f"normalize must be True, False or None (what the model says), got {normalize!r}."
            )
        if missing not in ("error", "drop", "keep"):
            raise ValueError(f"missing must be 'error', 'drop' or 'keep', got {missing!r}.")
        if corpus_sample is not None and (
            isinstance(corpus_sample, bool) or not isinstance(corpus_sample, int) or corpus_sample < 0
        ):
            raise ValueError(f"corpus_sample must be a positive integer or None, got {corpus_sample!r}.")
        self.similarity = similarity
        self.query_prompt, self.corpus_prompt = query_prompt, corpus_prompt
        self.pooling, self.normalize, self.tokenizer = pooling, normalize, tokenizer
        #: the pooling / normalisation of the last model evaluated (None before, or for a model without one)
        self.pooling_used: str | None = None
        self.normalize_used: bool | None = None
        self.max_length = max_length
        self.chunk_elements = chunk_elements
        self.truncate_dims = validate_dims(truncate_dims)
        self.last_dim_results: dict[int, RetrievalResult] = {}
        self.corpus_sample, self.missing = corpus_sample, missing
        self.queries, self.corpus, self.qrels = self._prepare(*self.checked_inputs(queries, corpus, qrels))
        self.query_ids = list(self.queries)
        self.doc_ids = list(self.corpus)
        self._doc_ties = tie_positions(self.doc_ids)
        self._tie_to_doc = np.argsort(self._doc_ties)
        self._pairs = self._relevant_pairs()
        self._token_cache: dict[Hashable, Tokenized] = {}

    # ------------------------------------------------------------------ data
    def _prepare(
        self, queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, dict[str, int]]
    ) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
        lost_queries = [q for q in qrels if q not in queries]
        lost_docs = sorted({d for docs in qrels.values() for d in docs if d not in corpus})
        if (lost_queries or lost_docs) and self.missing == "error":
            parts = []
            if lost_queries:
                parts.append(
                    f"{len(lost_queries):,} query ids of the qrels are not in `queries` "
                    f"(e.g. {examples(lost_queries)})"
                )
            if lost_docs:
                parts.append(
                    f"{len(lost_docs):,} doc ids of the qrels are not in `corpus` (e.g. {examples(lost_docs)})"
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
        rng = np.random.default_rng(self.seed)
        evaluable = self.evaluable_queries(queries, kept, rng)
        out_qrels = {q: kept[q] for q in evaluable}
        out_queries = {q: queries[q] for q in evaluable}
        if self.corpus_sample is None:
            return out_queries, corpus, out_qrels
        judged = {d for docs in out_qrels.values() for d in docs}
        others = [d for d in corpus if d not in judged]
        take = min(self.corpus_sample, len(others))
        sampled = {others[i] for i in rng.choice(len(others), take, replace=False).tolist()} if take else set()
        keep_docs = judged | sampled
        logger.info(
            "%s: corpus reduced to %d judged + %d sampled docs (of %d); metrics are optimistic.",
            self.name, len(judged & set(corpus)), take, len(corpus),
        )  # fmt: skip
        return out_queries, {d: t for d, t in corpus.items() if d in keep_docs}, out_qrels

    def get_config_dict(self) -> dict[str, Any]:
        """What sentence-transformers records in the model card."""
        config: dict[str, Any] = {"depth": self.depth, "corpus_sample": self.corpus_sample}
        config["max_queries"] = self.max_queries
        if self.truncate_dims:
            config["truncate_dims"] = list(self.truncate_dims)
        return config

    # ------------------------------------------------------------------ evaluation
    def adapt(self, model: Any) -> Encoder | TokenEncoder:
        """The encoder of `model`: a `SentenceTransformer`, a `SparseEncoder`, a transformers model (with
        `tokenizer=` given to the evaluator or findable from its config), a module holding one, or an
        `Encoder` (`core.models.factory.as_encoder`); `pooling_used` / `normalize_used` record its pooling."""
        encoder = as_encoder(
            model, self.tokenizer, pooling=self.pooling, normalize=self.normalize, max_length=self.max_length
        )
        pooling, normalize = getattr(encoder, "pooling", None), getattr(encoder, "normalize", None)
        self.pooling_used = pooling if isinstance(pooling, str) else None
        self.normalize_used = normalize if isinstance(normalize, bool) else None
        return encoder

    def run(self, adapter: Any, step: EvaluationPass) -> RetrievalResult:
        """Encode, rank and score with the backend of the model's family."""
        backend = next(run for accepts, run in BACKENDS if accepts(adapter))
        return backend(self, adapter, step)

    def evaluate(self, model: Any) -> RetrievalResult:
        """Encode, rank and score; the result is also kept as `self.last_result`.

        Args:
            model: a `SentenceTransformer`, a `SparseEncoder`, a transformers model (with `tokenizer=` given
                to the evaluator or findable from its config), a module holding one, or an `Encoder`.

        Returns:
            A `RetrievalResult` (unprefixed metrics, rankings, true ranks, score samples, timings); a
            `SparseRetrievalResult` for a sparse model.
        """
        return super().evaluate(model)

    # ------------------------------------------------------------------ what the backends share
    def texts(self, kind: Kind) -> list[str]:
        """The query (or document) texts in `query_ids` (or `doc_ids`) order."""
        if kind == "query":
            return [self.queries[q] for q in self.query_ids]
        return [self.corpus[d] for d in self.doc_ids]

    def tokens(self, encoder: TokenEncoder, kind: Kind) -> Tokenized:
        """The token ids of every query (or document) for `encoder`, tokenised once and cached."""
        prompt = self.query_prompt if kind == "query" else self.corpus_prompt
        prompt = prompt if prompt is not None else encoder.default_prompt(kind)
        key = (encoder.cache_key(kind, prompt), len(self.query_ids if kind == "query" else self.doc_ids))
        if key not in self._token_cache:  # the texts are gathered only to tokenise them, once
            self._token_cache[key] = encoder.tokenize(self.texts(kind), kind, prompt)
        return self._token_cache[key]

    def _relevant_pairs(self) -> tuple[list[int], list[int], list[tuple[str, str]]]:
        """(query row, doc row, (qid, doc id)) of every relevant judged doc present in the corpus."""
        doc_index = {d: i for i, d in enumerate(self.doc_ids)}
        pair_q, pair_d, pair_ids = [], [], []
        for qi, qid in enumerate(self.query_ids):
            for did, grade in self.qrels[qid].items():
                if grade > 0 and did in doc_index:
                    pair_q.append(qi)
                    pair_d.append(doc_index[did])
                    pair_ids.append((qid, did))
        return pair_q, pair_d, pair_ids

    def pair_inputs(self, doc_rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What a search needs to find the true rank of every relevant pair: (query row, LOCAL doc row or -1)
        of each pair, and the tie positions of the local docs (`doc_rows`: this shard's documents)."""
        pair_q, pair_d, _ = self._pairs
        local_of = np.full(len(self.doc_ids), -1, dtype=np.int64)
        local_of[doc_rows] = np.arange(doc_rows.size)
        pair_local = local_of[np.asarray(pair_d, dtype=np.int64)] if pair_d else np.zeros(0, dtype=np.int64)
        ties = torch.from_numpy(self._doc_ties[doc_rows])
        return torch.tensor(pair_q, dtype=torch.int64), torch.from_numpy(pair_local), ties

    def score_hits(self, hits: SearchHits) -> RetrievalResult:
        """Score a search's merged top-k against the qrels (trec_eval's order) and keep the rankings."""
        pair_ids = self._pairs[2]
        top_keys = hits.top_keys.cpu()
        top_indices = self._tie_to_doc[key_ties(top_keys).numpy()]
        top_scores = key_scores(top_keys).numpy().astype(np.float32)
        grades = np.zeros(top_indices.shape, dtype=np.float64)
        in_qrels = np.zeros(top_indices.shape, dtype=bool)  # judged non-relevant vs unjudged, for bpref
        for qi, qid in enumerate(self.query_ids):
            judged = self.qrels[qid]
            for j, di in enumerate(top_indices[qi].tolist()):
                grade = judged.get(self.doc_ids[di])
                if grade is not None:
                    grades[qi, j] = grade
                    in_qrels[qi, j] = True
        judged_arrays = [np.fromiter(self.qrels[q].values(), dtype=np.float64) for q in self.query_ids]
        report = ranked_report(
            grades, judged_arrays, metrics=self.metrics, depth=self.depth, ranked_judged=in_qrels
        )
        relevant_ranks: dict[str, dict[str, int]] = {}
        for (qid, did), rank in zip(pair_ids, hits.pair_ranks.cpu().numpy().tolist(), strict=True):
            relevant_ranks.setdefault(qid, {})[did] = int(rank)
        return RetrievalResult(
            metrics=report.metrics,
            query_ids=list(self.query_ids),
            doc_ids=list(self.doc_ids),
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


__all__ = ["BACKENDS", "RetrievalEvaluator"]

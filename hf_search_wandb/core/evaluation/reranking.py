"""`RerankingEvaluator`: rerank a fixed first stage with a cross-encoder (or re-score it with a multi-vector
model); trec_eval-exact metrics of both.

On the same base as `RetrievalEvaluator` (`base.SearchEvaluator`: a sentence-transformers evaluator,
`evaluator=` in `CrossEncoderTrainer`; run by the callback under a plain `Trainer`): `from_beir`,
`from_datasets`, `__call__(model) -> {"{name}_{metric}": value}`, `evaluate(model) -> RerankingResult`,
`last_result`, the same input check and the same batch loop. Per query it scores the (query, candidate) pairs, sorts
them by score (ties by doc id descending, as trec_eval), and scores the reranked list and the first stage
with `metrics.score_ranked` against the FULL qrels: a relevant document that is not among the candidates
counts as not retrieved, as trec_eval counts it. The first stage's metrics come back under
`first_stage/{metric}` (logged as `val/first_stage/ndcg@10`), next to the reranked `ndcg@10`.

Fast (see docs/rerankers.md): the candidate pairs are fixed, so they are tokenised once and the token ids
reused by every evaluation; batches are cut from length-sorted pairs by a token budget; the forward pass
runs under autocast in the precision `core.evaluation.precision` picks, with `inference_mode`; under DDP the batches are sharded
over the ranks and the scores gathered.

Given a sentence-transformers `MultiVectorEncoder` (ColBERT-style) instead of a cross-encoder, the same
candidates are re-scored by exact MaxSim (`core.evaluation.multi_vector.rescore_multi_vector`: each needed
query and candidate document encoded once, only the candidate pairs scored): the way to evaluate a late-interaction
model on a corpus too big for its exact search, reported as such (`first_stage/` metrics beside the re-scored
ones, `result.scorer`, the evaluator's `search`).

Not sentence-transformers' `RerankingEvaluator`, which reranks with a bi-encoder (SentenceTransformer) and
reports MAP/MRR/nDCG of that; this one scores (query, candidate) pairs with a cross-encoder over a fixed first
stage, as ST's `CrossEncoderRerankingEvaluator` does, with trec_eval-exact metrics of both stages.

Why over 300 lines: the candidates' flattening into pairs, the sharded token-budget scoring and the scoring
of both stages work on one private state; candidates, the pair scorer and the result are separate modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hf_search_wandb.core.data.candidates import as_candidates
from hf_search_wandb.core.distributed import all_gather_rows
from hf_search_wandb.core.evaluation.base import EvaluationPass, SearchEvaluator
from hf_search_wandb.core.evaluation.batching import plan_batches, run_batches
from hf_search_wandb.core.evaluation.multi_vector import rescore_multi_vector
from hf_search_wandb.core.evaluation.precision import Precision, synchronize
from hf_search_wandb.core.evaluation.results import FIRST_STAGE, RerankingResult, RetrievalResult
from hf_search_wandb.core.metrics.scoring import DEFAULT_METRICS, score_ranked
from hf_search_wandb.core.models.base import Kind, TokenEncoder, Tokenized, features_to_device, unwrap_model
from hf_search_wandb.core.models.cross_encoder import PairScorer
from hf_search_wandb.core.models.multi_vector import MultiVectorEncoderAdapter, is_multi_vector

logger = logging.getLogger(__name__)


class RerankingEvaluator(SearchEvaluator):
    """Reranking metrics of a cross-encoder over a fixed first stage, and the first stage's own.

    Not sentence-transformers' `RerankingEvaluator` (a bi-encoder reranking its own candidates): this one is
    the counterpart of ST's `CrossEncoderRerankingEvaluator`, with trec_eval-exact metrics of both stages.
    A `MultiVectorEncoder` given as the model re-scores the candidates by exact MaxSim (docs/multi_vector.md,
    "Corpora too big for exact search").

    Args:
        queries: `{query_id: text}`.
        corpus: `{doc_id: text}`: the texts of the candidates (and BM25's index when `candidates` is None).
        qrels: `{query_id: {doc_id: grade}}`; grade > 0 is relevant. Evaluated: the queries with text and a
            relevant document.
        candidates: the first stage: None or `"bm25"` (bm25s over `corpus`, built once, here), a run dict
            `{query_id: {doc_id: score}}`, a TREC run file path, or a bi-encoder's `RetrievalResult`.
            Each query's top `depth` (trec_eval's order) are reranked; a query absent from the run has no
            candidates and scores 0.
        depth: candidates reranked per query; every metric's k must be <= depth.
        name: key prefix: metrics come back as `{name}_{metric}` (e.g. `val_ndcg@10`, `val_first_stage/ndcg@10`).
        metrics: metric names (`metrics.parse_metric`); the primary one is added if missing.
        primary_metric: the metric the trainer reports as primary (`{name}_` prepended).
        precision: `"auto"` (an enclosing autocast, else the weights' half dtype, else accelerate's mixed
            precision when a trainer runs, else bf16 where the GPU or CPU computes it natively, else fp32),
            `"fp32"`, `"bf16"` or `"fp16"` (autocast); `core.evaluation.precision`. `last_result.precision`
            says which ran.
        batch_tokens: padded tokens per forward batch (default 65,536 on GPU, 4,096 on CPU).
        max_batch_size: pairs per batch at most.
        max_length: pair truncation in tokens (None: the model's own).
        prompt: text prepended to each query (None: a CrossEncoder's default prompt, if it has one; a
            MultiVectorEncoder's query prompt).
        tokenizer: the tokenizer of a plain transformers model (a CrossEncoder brings its own).
        label: the logit used as score for a model with several labels (default: the last).
        max_queries: evaluate at most this many queries, sampled with `seed`.
        seed: seed of the query sample.
        distributed: shard the pairs over the `torch.distributed` ranks (None: when a process group with
            several processes runs; every rank must then call the evaluator).
        show_progress_bar: a tqdm bar over the pairs, on rank 0 only.
        rerank_all: also score the candidates of queries that have no relevant candidate. Their metrics are 0
            whatever the order (every measure needs a relevant document retrieved), so by default (False)
            their pairs are never run through the model, as sentence-transformers'
            `CrossEncoderRerankingEvaluator` skips them; the metrics are identical either way. Such queries
            keep the first-stage order and scores in `last_result` (listed in `last_result.not_reranked`)
            and are left out of the example table and the score histograms. Set True for a reranked run of
            every query (e.g. to write it as a TREC run).

    Example:
        >>> ev = RerankingEvaluator.from_beir("data/scifact", "test", depth=20, metrics=["ndcg@10", "mrr@10"])
        >>> ev.primary_metric, len(ev.queries), round(ev.first_stage_metrics["ndcg@10"], 4)
        ('val_mrr@10', 300, 0.6617)
    """

    csv_prefix = "reranking_evaluation"

    def __init__(
        self,
        queries: Mapping[str, str],
        corpus: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        candidates: Any = None,
        *,
        depth: int = 100,
        name: str = "val",
        metrics: Sequence[str] = DEFAULT_METRICS,
        primary_metric: str = "mrr@10",
        precision: Precision = "auto",
        batch_tokens: int | None = None,
        max_batch_size: int = 256,
        max_length: int | None = None,
        prompt: str | None = None,
        tokenizer: Any = None,
        label: int | None = None,
        max_queries: int | None = None,
        seed: int = 0,
        distributed: bool | None = None,
        show_progress_bar: bool = False,
        rerank_all: bool = False,
    ) -> None:
        super().__init__(
            name=name, metrics=metrics, depth=depth, primary_metric=primary_metric, precision=precision,
            batch_tokens=batch_tokens, max_batch_size=max_batch_size, max_queries=max_queries, seed=seed,
            distributed=distributed, show_progress_bar=show_progress_bar,
        )  # fmt: skip
        self.max_length, self.prompt, self.tokenizer, self.label = max_length, prompt, tokenizer, label
        self.rerank_all = bool(rerank_all)
        queries, corpus, qrels = self.checked_inputs(queries, corpus, qrels)
        evaluable = self.evaluable_queries(queries, qrels, np.random.default_rng(seed))
        self.queries = {q: queries[q] for q in evaluable}
        self.qrels = {q: qrels[q] for q in evaluable}
        self.corpus = corpus
        tick = time.perf_counter()
        found, self.candidates_source = as_candidates(candidates, self.queries, corpus, depth)
        self.candidates_seconds = time.perf_counter() - tick
        self._build(found, corpus)
        self._token_cache: dict[Hashable, Tokenized] = {}

    def _build(self, found: Mapping[str, list[tuple[str, float]]], corpus: Mapping[str, str]) -> None:
        """Flatten the candidates into pairs and score the first stage once."""
        self._query_ids = list(self.queries)
        lost = sorted({d for q in self._query_ids for d, _ in found.get(q, []) if d not in corpus})
        if lost:
            raise ValueError(
                f"{len(lost):,} candidate doc ids are not in the corpus (e.g. {lost[:3]}): the corpus must hold "
                "the text of every candidate. Check that the run and the corpus use the same ids."
            )
        no_candidates = [q for q in self._query_ids if not found.get(q)]
        if len(no_candidates) == len(self._query_ids):
            raise ValueError(
                "The candidates share no query id with the qrels: the run must be {query_id: {doc_id: score}} "
                f"with the qrels' query ids (e.g. {self._query_ids[:3]})."
            )
        if no_candidates:
            logger.warning(
                "%s: %d of %d queries have no candidates; they score 0 (as trec_eval -c).",
                self.name, len(no_candidates), len(self._query_ids),
            )  # fmt: skip
        index: dict[str, int] = {}
        n, width = len(self._query_ids), max(len(found.get(q, [])) for q in self._query_ids)
        pair_of = np.full((n, width), -1, dtype=np.int64)  # (query row, first-stage rank) -> pair
        pair_doc: list[int] = []
        first_scores = np.full((n, width), np.nan, dtype=np.float32)
        for row, qid in enumerate(self._query_ids):
            for col, (did, score) in enumerate(found.get(qid, [])):
                pair_of[row, col] = len(pair_doc)
                pair_doc.append(index.setdefault(did, len(index)))
                first_scores[row, col] = score
        self._doc_ids = list(index)
        self._pair_of = pair_of
        self._pair_doc = np.asarray(pair_doc, dtype=np.int64)
        self._pair_query = np.repeat(np.arange(n), (pair_of >= 0).sum(axis=1))
        self._pair_grade = np.zeros(len(pair_doc), dtype=np.float64)
        self._pair_judged = np.zeros(len(pair_doc), dtype=bool)  # in the qrels (bpref: judged non-relevant)
        for p, (row, doc) in enumerate(zip(self._pair_query.tolist(), pair_doc, strict=True)):
            grade = self.qrels[self._query_ids[row]].get(self._doc_ids[doc])
            if grade is not None:
                self._pair_grade[p], self._pair_judged[p] = grade, True
        # doc ids in descending order -> a smaller key ranks first among equal scores (trec_eval's rule)
        order = sorted(range(len(self._doc_ids)), key=self._doc_ids.__getitem__, reverse=True)
        self._tie_key = np.empty(len(self._doc_ids), dtype=np.int64)
        self._tie_key[order] = np.arange(len(order))
        self._judged = [np.fromiter(self.qrels[q].values(), dtype=np.float64) for q in self._query_ids]
        # the queries whose candidates are reranked, and the pairs the model scores (all of them, or only
        # those of queries with a relevant candidate: any order of the others scores 0)
        reranked: np.ndarray = np.asarray((pair_of >= 0).any(axis=1), dtype=bool)
        if not self.rerank_all:
            answerable = np.zeros(n, dtype=bool)
            answerable[self._pair_query[self._pair_grade > 0]] = True
            reranked &= answerable
        self._reranked_rows = reranked
        self._scored_pairs = np.flatnonzero(reranked[self._pair_query])
        first_indices = np.where(pair_of >= 0, self._pair_doc[np.maximum(pair_of, 0)], -1)
        per_query = self._score(pair_of)
        self._first = (first_indices, first_scores, per_query, self._ranks(pair_of))

    def _grades(self, pair_matrix: np.ndarray) -> np.ndarray:
        grades = self._pair_grade[np.maximum(pair_matrix, 0)]
        grades[pair_matrix < 0] = 0.0
        return grades

    def _score(self, pair_matrix: np.ndarray) -> dict[str, np.ndarray]:
        in_qrels = (pair_matrix >= 0) & self._pair_judged[np.maximum(pair_matrix, 0)]
        return score_ranked(
            self._grades(pair_matrix), self._judged, metrics=self.metrics, depth=self.depth, per_query=True,
            ranked_judged=in_qrels,
        )  # fmt: skip

    def _ranks(self, pair_matrix: np.ndarray) -> dict[str, dict[str, int]]:
        """1-based rank of every relevant candidate in `pair_matrix`'s order."""
        rows, cols = np.nonzero((pair_matrix >= 0) & (self._grades(pair_matrix) > 0))
        ranks: dict[str, dict[str, int]] = {}
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            doc = self._doc_ids[int(self._pair_doc[pair_matrix[row, col]])]
            ranks.setdefault(self._query_ids[row], {})[doc] = col + 1
        return ranks

    @property
    def first_stage_metrics(self) -> dict[str, float]:
        """The first stage's metrics (computed once, at construction)."""
        return {m: float(np.nanmean(v)) for m, v in self._first[2].items()}

    @property
    def search(self) -> str:
        """How the ranking is made, for the run's config (`eval_search`): the first stage re-scored."""
        return f"{self.candidates_source} top {self.depth}, re-scored"

    @property
    def num_pairs(self) -> int:
        """(query, candidate) pairs the model scores per evaluation (see `rerank_all`)."""
        return int(self._scored_pairs.size)

    @property
    def num_candidates(self) -> int:
        """(query, candidate) pairs of the first stage, scored or not."""
        return int(self._pair_doc.size)

    def model_card_metrics(self, result: RetrievalResult) -> dict[str, float]:
        """A model card records the reranked metrics (not the first stage's)."""
        return dict(result.reranked_metrics) if isinstance(result, RerankingResult) else dict(result.metrics)

    def get_config_dict(self) -> dict[str, Any]:
        """What sentence-transformers records in the model card."""
        return {"depth": self.depth, "candidates": self.candidates_source, "max_queries": self.max_queries,
                "rerank_all": self.rerank_all}

    # ------------------------------------------------------------------ evaluation
    def adapt(self, model: Any) -> PairScorer | MultiVectorEncoderAdapter:
        """The `PairScorer` of `model` (a sentence-transformers `CrossEncoder`, a transformers
        sequence-classification model with `tokenizer=` given to the evaluator, or a `PairScorer`), or the
        `MultiVectorEncoderAdapter` of a sentence-transformers `MultiVectorEncoder` (MaxSim re-scoring)."""
        return self.adapt_model(model)

    def adapt_model(self, model: Any, tokenizer: Any = None) -> PairScorer | MultiVectorEncoderAdapter:
        """The scorer for `model` (a CrossEncoder, a transformers model with `tokenizer`, a MultiVectorEncoder)."""
        if isinstance(model, (PairScorer, MultiVectorEncoderAdapter)):
            return model
        if is_multi_vector(unwrap_model(model)):
            return MultiVectorEncoderAdapter(unwrap_model(model), max_length=self.max_length)
        tok = self.tokenizer if self.tokenizer is not None else tokenizer
        return PairScorer(model, tok, max_length=self.max_length, label=self.label)

    def run(self, adapter: PairScorer | MultiVectorEncoderAdapter, step: EvaluationPass) -> RerankingResult:
        """Score every candidate pair, rerank, and score both rankings."""
        figures: dict[str, float] = {}
        if isinstance(adapter, MultiVectorEncoderAdapter):
            scores, figures = rescore_multi_vector(self, adapter, step)
        else:
            scores = self._score_pairs(adapter, step)
        tick = time.perf_counter()
        result = self._rerank(scores)
        result.metrics.update(figures)
        result.scorer = adapter.similarity if isinstance(adapter, MultiVectorEncoderAdapter) else "cross-encoder"
        step.timings["rerank_s"] = time.perf_counter() - tick
        return result

    def evaluate(self, model: Any) -> RerankingResult:
        """Score every candidate pair, rerank, and score both rankings; kept as `self.last_result`.

        Args:
            model: a sentence-transformers `CrossEncoder`, a transformers sequence-classification model (with
                `tokenizer=` given to the evaluator), a `PairScorer`, or a `MultiVectorEncoder`.
        """
        result = super().evaluate(model)
        assert isinstance(result, RerankingResult)
        return result

    def _prompt(self, scorer: PairScorer) -> str | None:
        if self.prompt is not None:
            return self.prompt
        prompts = getattr(scorer.model, "prompts", None) or {}
        default = getattr(scorer.model, "default_prompt_name", None)
        return prompts.get(default) if default is not None else None

    def scored_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(pair index, query row, candidate doc index)` of every pair the model scores (see `rerank_all`):
        pair indices into the candidates, query rows into the queries, doc indices into the candidate docs."""
        scored = self._scored_pairs
        return scored, self._pair_query[scored], self._pair_doc[scored]

    def text_tokens(self, encoder: TokenEncoder, kind: Kind, rows: np.ndarray) -> Tokenized:
        """The token ids, for a text encoder, of the queries at query `rows` (`kind="query"`, with `prompt` or
        the encoder's query prompt) or of the candidate documents at doc indices `rows`; tokenised once and
        cached (the rows come from `scored_pairs`, fixed for the evaluator's life)."""
        prompt = self.prompt if kind == "query" and self.prompt is not None else encoder.default_prompt(kind)
        key = (encoder.cache_key(kind, prompt), kind, int(rows.size), self.num_pairs)
        if key not in self._token_cache:
            if kind == "query":
                texts = [self.queries[self._query_ids[r]] for r in rows.tolist()]
            else:
                texts = [self.corpus[self._doc_ids[d]] for d in rows.tolist()]
            self._token_cache[key] = encoder.tokenize(texts, kind, prompt)
        return self._token_cache[key]

    def _tokens(self, scorer: PairScorer, timings: dict[str, float]) -> Tokenized:
        tick = time.perf_counter()
        prompt = self._prompt(scorer)
        key = (scorer.cache_key(prompt), self.num_pairs)
        if key not in self._token_cache:
            texts = [self.queries[q] for q in self._query_ids]
            scored = self._scored_pairs
            pairs = [
                (texts[q], self.corpus[self._doc_ids[d]])
                for q, d in zip(self._pair_query[scored].tolist(), self._pair_doc[scored].tolist(), strict=True)
            ]
            self._token_cache[key] = scorer.tokenize(pairs, prompt)
        timings["tokenize_s"] = time.perf_counter() - tick
        return self._token_cache[key]

    def _score_pairs(self, scorer: PairScorer, step: EvaluationPass) -> np.ndarray:
        """The model's score of every scored pair (nan for the pairs `rerank_all=False` skips)."""
        timings = step.timings
        scores = np.full(self.num_candidates, np.nan, dtype=np.float32)
        if self.num_pairs == 0:  # no query has a relevant candidate: nothing to rerank (the same on every rank)
            timings["tokenize_s"] = timings["score_s"] = 0.0
            return scores
        tokens = self._tokens(scorer, timings)
        device = scorer.device
        dtype = self.precision_dtype(scorer.dtype, device, "reranking", step)
        budget = self.batch_tokens or (65536 if device.type == "cuda" else 4096)
        batches = plan_batches(tokens.lengths, budget, self.max_batch_size)[step.rank :: step.world]

        def forward(batch: np.ndarray) -> torch.Tensor:
            return scorer.forward(features_to_device(tokens, batch, device, scorer.padding_side))

        tick = time.perf_counter()
        parts = [
            out.float()
            for _, out in run_batches(
                forward, batches, device=device, dtype=dtype, who="The model", kind="pair", width=None,
                progress=self.progress_label("reranking"), check_finite=False,
            )
        ]  # fmt: skip
        local = torch.cat(parts) if parts else torch.zeros(0, device=device)
        rows = torch.from_numpy(np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64))
        synchronize(device)
        timings["score_s"] = time.perf_counter() - tick
        scored = self._scored_pairs  # batch rows index the tokenised (scored) pairs
        if step.shard:
            for part, idx in zip(all_gather_rows(local), all_gather_rows(rows), strict=True):
                scores[scored[idx.numpy()]] = part.cpu().numpy()
        else:
            scores[scored[rows.numpy()]] = local.cpu().numpy()
        if not np.isfinite(scores[scored]).all():  # after the gather: every rank raises, none waits
            hint = " (fp16 overflow? try precision='bf16' or 'fp32')" if dtype == torch.float16 else ""
            raise ValueError(f"The model produced NaN or infinite scores{hint}.")
        return scores

    def _rerank(self, scores: np.ndarray) -> RerankingResult:
        pair_of = self._pair_of
        valid = pair_of >= 0
        kept = ~self._reranked_rows  # not reranked: the first-stage order (and scores) stay
        score_matrix = np.where(valid, scores[np.maximum(pair_of, 0)], -np.inf)
        score_matrix[kept] = 0.0
        ties = np.where(valid, self._tie_key[self._pair_doc[np.maximum(pair_of, 0)]], 0)
        order = np.lexsort((ties, -score_matrix), axis=-1)  # score desc, then doc id desc; padding last
        order[kept] = np.arange(pair_of.shape[1])
        reranked = np.take_along_axis(pair_of, order, axis=1)
        per_query = self._score(reranked)
        first_indices, first_scores, first_per_query, first_ranks = self._first
        metrics = {m: float(np.nanmean(v)) for m, v in per_query.items()}
        first_metrics = {m: float(np.nanmean(v)) for m, v in first_per_query.items()}
        metrics.update({f"{FIRST_STAGE}/{m}": v for m, v in first_metrics.items()})
        relevant = self._pair_grade > 0
        scored = ~np.isnan(scores)
        top_scores = np.where(reranked >= 0, scores[np.maximum(reranked, 0)], np.nan).astype(np.float32)
        top_scores[kept] = first_scores[kept]
        return RerankingResult(
            metrics=metrics,
            query_ids=list(self._query_ids),
            doc_ids=list(self._doc_ids),
            top_indices=np.where(reranked >= 0, self._pair_doc[np.maximum(reranked, 0)], -1),
            top_scores=top_scores,
            relevant_ranks=self._ranks(reranked),
            positive_scores=scores[relevant & scored],
            negative_scores=scores[~relevant & scored],
            timings={},
            per_query=per_query,
            first_stage_indices=first_indices,
            first_stage_scores=first_scores,
            first_stage_ranks=first_ranks,
            first_stage_metrics=first_metrics,
            first_stage_per_query=first_per_query,
            num_relevant={q: int((j > 0).sum()) for q, j in zip(self._query_ids, self._judged, strict=True)},
            candidates_source=self.candidates_source,
            reranked=self._reranked_rows.copy(),
        )

    def __repr__(self) -> str:
        return (
            f"RerankingEvaluator(name={self.name!r}, {len(self.queries):,} queries, {self.num_pairs:,} of "
            f"{self.num_candidates:,} pairs scored, from {self.candidates_source}, depth={self.depth}, "
            f"metrics={self.metrics})"
        )


__all__ = ["RerankingEvaluator"]

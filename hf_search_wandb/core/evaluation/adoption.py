"""Adopting sentence-transformers' own evaluators: ours built from theirs, their keys kept.

A pipeline written with sentence-transformers' `InformationRetrievalEvaluator`,
`SparseInformationRetrievalEvaluator` or `CrossEncoderRerankingEvaluator` (alone, inside a
`SequentialEvaluator` or a NanoBEIR evaluator) gets an evaluator of ours built from the same queries, corpus,
relevant documents, name, score function, batch size, truncation and prompts. It runs in their place: one
encoding gives our metrics (trec_eval's definitions, `{name}_mrr@10`), the rankings the tables and
histograms reuse, AND their keys (`{name}_cosine_ndcg@10`, `{name}_map`, ...) computed by THEIR OWN metric code
(`compute_metrics`) on our rankings, so `metric_for_best_model`, `load_best_model_at_end`, the
`SequentialEvaluator`'s score and their dashboards' names keep working with their values.

An adopted evaluator computes as theirs did: the model as loaded, no autocast (`precision="fp32"`:
`ADOPTED_PRECISION`), so their keys equal their evaluator's on any machine and a pipeline's dashboards do not
shift when it gains the callback. The speed of the package's `auto` rule (bf16 where native) comes with our
evaluator given in its place.
sentence-transformers' `MultiVectorInformationRetrievalEvaluator` is an `InformationRetrievalEvaluator` and is
adopted as one (the multi-vector backend runs it; its `maxsim` keys are theirs).

What cannot be adopted (a score function other than cosine or dot, several score functions, SPLADE
`max_active_dims` set on the evaluator) keeps running as it is; `adopt` says why in one line.

Entry point: `adopt(evaluator) -> Adoption` for one evaluator; `trainer.evaluator_set.adopt_evaluators` walks
lists, `SequentialEvaluator`s and NanoBEIR evaluators (members replaced in place) with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hf_search_wandb.core.data.inputs import normalize_id
from hf_search_wandb.core.evaluation.precision import Precision
from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
from hf_search_wandb.core.evaluation.results import RetrievalResult
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.core.metrics.measures import parse_metric
from hf_search_wandb.core.metrics.scoring import DEFAULT_METRICS

logger = logging.getLogger(__name__)

#: sentence-transformers' class names (any version's module path) -> the family that adopts them
IR, SPARSE_IR, CE_RERANKING = (
    "InformationRetrievalEvaluator",
    "SparseInformationRetrievalEvaluator",
    "CrossEncoderRerankingEvaluator",
)
#: score functions our search computes exactly
SIMILARITIES = ("cosine", "dot")
#: the precision an adopted evaluator runs in: theirs runs the model as loaded, without autocast
ADOPTED_PRECISION: Precision = "fp32"


def st_kind(evaluator: Any) -> str | None:
    """Which sentence-transformers evaluator `evaluator` is (`IR`, `SPARSE_IR`, `CE_RERANKING`), by class name
    along its MRO (their module paths moved between versions), or None. Ours are never theirs."""
    if isinstance(evaluator, (RetrievalEvaluator, RerankingEvaluator)):
        return None
    names = [
        cls.__name__ for cls in type(evaluator).__mro__ if cls.__module__.startswith("sentence_transformers")
    ]
    for kind in (SPARSE_IR, CE_RERANKING, IR):
        if kind in names:
            return kind
    return None


@dataclass
class Adoption:
    """The outcome of `adopt`: the evaluator to run (ours, or theirs unchanged) and why not, when not."""

    evaluator: Any
    original: Any
    reason: str | None = None

    @property
    def adopted(self) -> bool:
        return self.evaluator is not self.original


def adopt(evaluator: Any) -> Adoption:
    """Ours built from a sentence-transformers evaluator (see the module docstring); anything else as it is."""
    kind = st_kind(evaluator)
    if kind is None:
        return Adoption(evaluator, evaluator)
    try:
        if kind == CE_RERANKING:
            return Adoption(AdoptedRerankingEvaluator(evaluator), evaluator)
        reason = _ir_blocker(evaluator, sparse=kind == SPARSE_IR)
        if reason:
            return Adoption(evaluator, evaluator, reason)
        return Adoption(AdoptedRetrievalEvaluator(evaluator), evaluator)
    except (ValueError, TypeError, KeyError) as err:  # data ours refuses: theirs keeps running, say why
        return Adoption(evaluator, evaluator, f"its data could not be adopted ({err})")


def _ir_blocker(evaluator: Any, *, sparse: bool) -> str | None:
    functions = getattr(evaluator, "score_functions", None) or {}
    if not getattr(evaluator, "_score_functions_from_model", not functions) and functions:
        names = sorted(functions)
        if len(names) > 1:
            return (
                f"it scores with several functions ({', '.join(names)}); pass score_functions with one of "
                f"{SIMILARITIES} (or main_score_function alone) to have it adopted"
            )
        if names[0] not in SIMILARITIES:
            return f"its score function {names[0]!r} is not one of {SIMILARITIES}"
    if sparse and getattr(evaluator, "max_active_dims", None) is not None:
        return (
            "it sets max_active_dims; set it on the model (model.max_active_dims) instead to have it adopted"
        )
    return None


def _named(name: str, key: str) -> str:
    """`{name}_{key}` as sentence-transformers prefixes its keys (`key` alone without a name). Not their
    `prefix_name_to_metrics`, which on sentence-transformers 3 also rewrites the evaluator's `primary_metric`."""
    return f"{name}_{key}" if name else key


def _fitting_defaults(depth: int) -> list[str]:
    return [m for m in DEFAULT_METRICS if (parse_metric(m).k or 0) <= depth]


class _Delegating:
    """Attributes ours lacks come from theirs (NanoBEIR reads `_model_score_functions`, users read
    `csv_file`, ...)."""

    def __getattr__(self, name: str) -> Any:
        original = self.__dict__.get("original")
        if original is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(original, name)


class AdoptedRetrievalEvaluator(_Delegating, RetrievalEvaluator):
    """A `RetrievalEvaluator` built from sentence-transformers' (sparse) `InformationRetrievalEvaluator`;
    `__call__` returns our keys and theirs."""

    def __init__(self, original: Any) -> None:
        ks = {
            "mrr": list(original.mrr_at_k), "ndcg": list(original.ndcg_at_k), "hit": list(original.accuracy_at_k),
            "precision": list(original.precision_recall_at_k), "recall": list(original.precision_recall_at_k),
            "map": list(original.map_at_k),
        }  # fmt: skip
        depth = max(k for values in ks.values() for k in values)
        theirs = [f"{measure}@{k}" for measure, values in ks.items() for k in values]
        functions = getattr(original, "score_functions", None) or {}
        fixed = (
            None if getattr(original, "_score_functions_from_model", not functions) else sorted(functions)[0]
        )
        main = getattr(original, "main_score_function", None)
        fixed = getattr(main, "value", main) or fixed
        truncate = getattr(original, "truncate_dim", None)
        qrels = {
            q: {d: 1 for d in docs}
            for q, docs in original.relevant_docs.items()
            if q in set(original.queries_ids)
        }
        super().__init__(
            dict(zip(original.queries_ids, original.queries, strict=True)),
            dict(zip(original.corpus_ids, original.corpus, strict=True)),
            qrels, name=original.name, metrics=list(dict.fromkeys(theirs + _fitting_defaults(depth))), depth=depth,
            primary_metric=f"ndcg@{max(original.ndcg_at_k)}", similarity=fixed if fixed in SIMILARITIES else None,
            query_prompt=getattr(original, "query_prompt", None), corpus_prompt=getattr(original, "corpus_prompt", None),
            max_batch_size=int(getattr(original, "batch_size", 32) or 32),
            truncate_dims=[truncate] if truncate else None, show_progress_bar=bool(original.show_progress_bar),
            precision=ADOPTED_PRECISION,
        )  # fmt: skip
        self.original = original
        self.adopted_kind = SPARSE_IR if st_kind(original) == SPARSE_IR else IR
        self.primary_metric = getattr(original, "primary_metric", None) or self.primary_metric
        self._their_ids = {normalize_id(d): d for d in original.corpus_ids}
        self.their_keys: list[str] = []

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1
    ) -> dict[str, float]:
        self._prompts_from(model)
        metrics = super().__call__(model, output_path, epoch, steps)
        theirs = self.keys_of_theirs(model)
        self.their_keys = list(theirs)
        metrics.update(theirs)
        return metrics

    def their_metric_names(self, model: Any = None) -> list[str]:
        """Their metric names without the evaluator's name (`cosine_ndcg@10`, ...), as `__call__` will return
        them for `model`."""
        function = self.similarity or getattr(model, "similarity_fn_name", None) or "cosine"
        function = getattr(function, "value", function)
        o = self.original
        ks = {"accuracy": o.accuracy_at_k, "precision": o.precision_recall_at_k, "recall": o.precision_recall_at_k,
              "mrr": o.mrr_at_k, "ndcg": o.ndcg_at_k, "map": o.map_at_k}  # fmt: skip
        names = [f"{function}_{measure}@{k}" for measure, values in ks.items() for k in values]
        if self.adopted_kind == SPARSE_IR:
            names += [
                "query_active_dims",
                "query_sparsity_ratio",
                "corpus_active_dims",
                "corpus_sparsity_ratio",
                "avg_flops",
            ]
        return names

    def _prompts_from(self, model: Any) -> None:
        prompts = getattr(model, "prompts", None) or {}
        for side, attr in (("query", "query_prompt"), ("corpus", "corpus_prompt")):
            name = getattr(self.original, f"{side}_prompt_name", None)
            if name is not None and getattr(self.original, attr, None) is None:
                if name not in prompts:
                    raise ValueError(
                        f"{side}_prompt_name={name!r} is not one of the model's prompts {sorted(prompts)}"
                    )
                setattr(self, attr, prompts[name])

    def keys_of_theirs(self, model: Any) -> dict[str, float]:
        """Their keys, by their own `compute_metrics` on our last rankings (their query order and ids)."""
        result = self.last_result
        assert result is not None
        if self.truncate_dims:
            result = self.last_dim_results.get(self.truncate_dims[0], result)
        function = self.similarity or getattr(model, "similarity_fn_name", None) or "cosine"
        function = getattr(function, "value", function)
        rows = {q: i for i, q in enumerate(result.query_ids)}
        hits = []
        for qid in self.original.queries_ids:
            row = rows[normalize_id(qid)]
            hits.append([
                {"corpus_id": self._their_ids[result.doc_ids[j]], "score": float(s)}
                for j, s in zip(result.top_indices[row].tolist(), result.top_scores[row].tolist(), strict=True) if j >= 0
            ])  # fmt: skip
        scores = self.original.compute_metrics(hits)
        flat = {
            f"{function}_{name.replace('@k', f'@{k}')}": float(value)
            for name, values in scores.items() for k, value in values.items()
        }  # fmt: skip
        if self.adopted_kind == SPARSE_IR:
            flat.update(_sparsity_keys(result, model))
        self.primary_metric = _named(self.name, f"{function}_ndcg@{max(self.original.ndcg_at_k)}")
        return {_named(self.name, key): value for key, value in flat.items()}


def _sparsity_keys(result: RetrievalResult, model: Any) -> dict[str, float]:
    """`SparseInformationRetrievalEvaluator`'s sparsity keys from ours (same definitions)."""
    dimension = getattr(model, "get_embedding_dimension", None) or getattr(
        model, "get_sentence_embedding_dimension", None
    )
    width = int(dimension() or 0) if callable(dimension) else 0
    query = float(result.metrics.get("query_active_dims", 0.0))
    corpus = float(result.metrics.get("corpus_active_dims", 0.0))
    keys = {
        "query_active_dims": query,
        "corpus_active_dims": corpus,
        "avg_flops": float(result.metrics.get("flops", 0.0)),
    }
    if width:
        keys["query_sparsity_ratio"] = 1.0 - query / width
        keys["corpus_sparsity_ratio"] = 1.0 - corpus / width
    return keys


@dataclass
class _Sample:
    query_id: str
    docs: list[str] = field(default_factory=list)  # doc ids in their order
    relevant: list[int] = field(default_factory=list)


class AdoptedRerankingEvaluator(_Delegating, RerankingEvaluator):
    """A `RerankingEvaluator` built from sentence-transformers' `CrossEncoderRerankingEvaluator`: its samples
    become queries, a corpus of the distinct texts, qrels from the positives and a first stage in the samples'
    order; `__call__` returns our keys and theirs (`map`, `mrr@k`, `ndcg@k`, `base_*`)."""

    def __init__(self, original: Any) -> None:
        samples = (
            list(original.samples.values()) if isinstance(original.samples, dict) else list(original.samples)
        )
        doc_ids: dict[str, str] = {}
        queries: dict[str, str] = {}
        qrels: dict[str, dict[str, int]] = {}
        run: dict[str, dict[str, float]] = {}
        self._samples: list[_Sample] = []
        self._base: list[tuple[list[int], bool]] = []
        for i, sample in enumerate(samples):
            positives = sample["positive"] if isinstance(sample["positive"], list) else [sample["positive"]]
            documents = sample.get("documents")
            if documents:  # the candidates and their labels exactly as their __call__ builds them
                is_relevant = [int(doc in positives) for doc in documents]
                self._base.append(
                    (is_relevant + [1] * (len(positives) - sum(is_relevant)), sum(is_relevant) > 0)
                )
                if original.always_rerank_positives:
                    order = positives + [d for d in documents if d not in positives]
                    labels = [1] * len(positives) + [0] * (len(order) - len(positives))
                else:
                    order, labels = list(documents), is_relevant
            else:
                negatives = list(sample.get("negative") or [])
                order, labels = positives + negatives, [1] * len(positives) + [0] * len(negatives)
            qid = f"q{i}"
            queries[qid] = sample["query"]
            ids = [doc_ids.setdefault(doc, f"d{len(doc_ids)}") for doc in order]
            qrels[qid] = {doc_ids.setdefault(doc, f"d{len(doc_ids)}"): 1 for doc in positives}
            run[qid] = {d: float(len(ids) - j) for j, d in reversed(list(enumerate(ids)))}
            self._samples.append(_Sample(qid, ids, labels))
        depth = max(len(s.docs) for s in self._samples)
        at_k = int(original.at_k)
        metrics = [f"mrr@{at_k}", f"ndcg@{at_k}", "map", *_fitting_defaults(depth)]
        super().__init__(
            queries, {d: t for t, d in doc_ids.items()}, qrels, run, depth=max(depth, at_k), name=original.name,
            metrics=list(dict.fromkeys(m for m in metrics if (parse_metric(m).k or 0) <= max(depth, at_k))),
            primary_metric=f"ndcg@{at_k}", max_batch_size=int(getattr(original, "batch_size", 64) or 64),
            show_progress_bar=bool(getattr(original, "show_progress_bar", False)), precision=ADOPTED_PRECISION,
        )  # fmt: skip
        self.original = original
        self.adopted_kind = CE_RERANKING
        primary = str(original.primary_metric or f"ndcg@{at_k}")  # sentence-transformers 3 may have prefixed it
        self.primary_metric = primary if original.name and primary.startswith(f"{original.name}_") else _named(original.name, primary)
        self.their_keys: list[str] = []

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1
    ) -> dict[str, float]:
        name = getattr(self.original, "prompt_name", None)
        prompts = getattr(model, "prompts", None) or {}
        if name is not None:
            if name not in prompts:
                raise ValueError(f"prompt_name={name!r} is not one of the model's prompts {sorted(prompts)}")
            self.prompt = prompts[name]
        metrics = super().__call__(model, output_path, epoch, steps)
        theirs = self.keys_of_theirs()
        self.their_keys = list(theirs)
        metrics.update(theirs)
        return metrics

    def their_metric_names(self, model: Any = None) -> list[str]:
        """Their metric names without the evaluator's name (`map`, `mrr@10`, `ndcg@10`, `base_*`)."""
        at_k = self.original.at_k
        names = ["map", f"mrr@{at_k}", f"ndcg@{at_k}"]
        return names + [f"base_{n}" for n in names] if self._base else names

    def keys_of_theirs(self) -> dict[str, float]:
        """`map`, `mrr@k`, `ndcg@k` (and `base_*`) by their own `compute_metrics` on our scores."""
        result = self.last_result
        assert result is not None
        rows = {q: i for i, q in enumerate(result.query_ids)}
        index = {d: j for j, d in enumerate(result.doc_ids)}
        per: list[tuple[float, float, float]] = []
        for sample in self._samples:
            if not any(sample.relevant) or sample.query_id not in rows:
                per.append((0.0, 0.0, 0.0))
                continue
            row = rows[sample.query_id]
            scored = dict(zip(result.top_indices[row].tolist(), result.top_scores[row].tolist(), strict=True))
            scores = np.array([scored[index[d]] for d in sample.docs], dtype=np.float32)
            per.append(tuple(float(v) for v in self.original.compute_metrics(sample.relevant, scores)))  # type: ignore[arg-type]
        mrr, ndcg, ap = (float(np.mean([p[i] for p in per])) for i in range(3))
        at_k = self.original.at_k
        keys = {"map": ap, f"mrr@{at_k}": mrr, f"ndcg@{at_k}": ndcg}
        if self._base:
            base = [
                self.original.compute_metrics(rel, np.arange(len(rel), 0, -1)) if found else (0, 0, 0)
                for rel, found in self._base
            ]
            keys |= {
                "base_map": float(np.mean([b[2] for b in base])),
                f"base_mrr@{at_k}": float(np.mean([b[0] for b in base])),
                f"base_ndcg@{at_k}": float(np.mean([b[1] for b in base])),
            }
        return {_named(self.name, key): value for key, value in keys.items()}


__all__ = [
    "ADOPTED_PRECISION",
    "AdoptedRerankingEvaluator",
    "AdoptedRetrievalEvaluator",
    "Adoption",
    "adopt",
    "st_kind",
]

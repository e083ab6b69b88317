"""Which evaluators a training has, which one is primary, and where each one's metrics and tables go.

The callback's `evaluator=` (one evaluator, a list, or a `SequentialEvaluator`) and the trainer's own
`evaluator` (a `SentenceTransformerTrainer`'s) are flattened into one list, the callback's first, each
evaluator once. With one evaluator everything stays in `val/` (SPEC §2). With several, each logs under its
own name (`{name}/ndcg@10`, `{name}/retrieval_examples`); best tracking and the model artifact follow the
primary one: `primary=` (a name or the evaluator itself), else the first. `missing_metrics` runs the
callback's evaluators on a plain `Trainer`'s evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hf_search_wandb.core.evaluation.adoption import Adoption, adopt, st_kind
from hf_search_wandb.core.models.factory import as_encoder
from hf_search_wandb.tracking.log_keys import (
    RESERVED_NAMES,
    VAL,
    evaluator_namespace,
    headline_key,
    trainer_key_prefix,
)

__all__ = [
    "RESERVED_NAMES",
    "EvaluatorSet",
    "adopt_evaluators",
    "adoption_line",
    "computed_metrics",
    "encoder_for",
    "evaluator_name",
    "evaluator_set",
    "flatten_evaluators",
    "missing_metrics",
]


def flatten_evaluators(*sources: Any) -> list[Any]:
    """Every evaluator inside `sources` (lists, `SequentialEvaluator`s), in order, each object once.

    Example:
        >>> from types import SimpleNamespace as E
        >>> a, b = E(name="a"), E(name="b")
        >>> [e.name for e in flatten_evaluators([a, E(evaluators=[b, a])], None, b)]
        ['a', 'b']
    """
    found: list[Any] = []

    def visit(obj: Any) -> None:
        if obj is None:
            return
        if isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)
            return
        inner = getattr(obj, "evaluators", None)
        if isinstance(inner, (list, tuple)):
            visit(inner)
            return
        if all(obj is not seen for seen in found):
            found.append(obj)

    for source in sources:
        visit(source)
    return found


def evaluator_name(evaluator: Any) -> str:
    """The evaluator's `name` (`""` when it has none)."""
    return str(getattr(evaluator, "name", "") or "")


@dataclass(frozen=True)
class EvaluatorSet:
    """The flattened evaluators and the primary one."""

    evaluators: tuple[Any, ...] = ()
    primary: Any = None

    @property
    def several(self) -> bool:
        return len(self.evaluators) > 1

    @property
    def names(self) -> list[str]:
        return [evaluator_name(e) for e in self.evaluators]

    def namespace(self, evaluator: Any) -> str:
        """`val` with one evaluator; the evaluator's name with several (`log_keys.evaluator_namespace`)."""
        return evaluator_namespace(evaluator_name(evaluator), several=self.several)

    def headline_key(self, metric: str) -> str:
        """The wandb key best tracking reads: `val/mrr@10`, or `{primary}/mrr@10` with several evaluators
        (`val/loss` for the loss, which the trainer computes once for all)."""
        primary = self.namespace(self.primary) if self.primary is not None else VAL
        return headline_key(metric, primary)


def evaluator_set(*sources: Any, primary: Any = None, strict: bool = True) -> EvaluatorSet:
    """Flatten `sources` and pick the primary evaluator; names must be unique and not reserved.

    `strict=False` (the callback's evaluators merged with the trainer's): a later evaluator with the name of an
    earlier one replaces it in place (the trainer's own evaluator is the one that runs and keeps results).

    Example:
        >>> from types import SimpleNamespace as E
        >>> s = evaluator_set([E(name="scifact"), E(name="nfcorpus")], primary="nfcorpus")
        >>> s.headline_key("ndcg@10"), s.namespace(s.evaluators[0])
        ('nfcorpus/ndcg@10', 'scifact')
        >>> evaluator_set([E(name="a"), E(name="a")])
        Traceback (most recent call last):
        ...
        ValueError: several evaluators are named 'a': give each a distinct name= (their metrics go to {name}/...)
    """
    evaluators = flatten_evaluators(*sources)
    if not strict:
        evaluators = _last_of_each_name(evaluators)
    if len(evaluators) > 1:
        _check_names(evaluator_name(e) for e in evaluators)
    chosen = evaluators[0] if evaluators else None
    if primary is not None:
        chosen = _find(evaluators, primary)
    return EvaluatorSet(tuple(evaluators), chosen)


def _check_names(names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if not name:
            continue
        if name in RESERVED_NAMES:
            raise ValueError(
                f"an evaluator is named {name!r}, a namespace the callback writes itself: rename it "
                f"(reserved: {sorted(RESERVED_NAMES)})"
            )
        if name in seen:
            raise ValueError(
                f"several evaluators are named {name!r}: give each a distinct name= (their metrics go to {{name}}/...)"
            )
        seen.add(name)


def _last_of_each_name(evaluators: list[Any]) -> list[Any]:
    kept: list[Any] = []
    for evaluator in evaluators:
        name = evaluator_name(evaluator)
        same = [i for i, e in enumerate(kept) if name and evaluator_name(e) == name]
        if same:
            kept[same[0]] = evaluator
        else:
            kept.append(evaluator)
    return kept


def _find(evaluators: list[Any], primary: Any) -> Any:
    wanted = primary if isinstance(primary, str) else evaluator_name(primary)
    for evaluator in evaluators:
        if evaluator is primary:
            return evaluator
    for evaluator in evaluators:
        if wanted and evaluator_name(evaluator) == wanted:
            return evaluator
    names = [evaluator_name(e) for e in evaluators]
    raise ValueError(f"primary={primary!r} is none of the evaluators {names}: pass one of these names or objects")


def adopt_evaluators(evaluator: Any) -> tuple[Any, list[Adoption]]:
    """`evaluator` (one, a list, a `SequentialEvaluator`, a NanoBEIR evaluator) with every sentence-transformers
    retrieval or reranking evaluator in it replaced by ours (`core.evaluation.adoption`); what was tried."""
    if isinstance(evaluator, (list, tuple)):
        kept, tried = [], []
        for item in evaluator:
            new, outcomes = adopt_evaluators(item)
            kept.append(new)
            tried.extend(outcomes)
        return type(evaluator)(kept), tried
    members = getattr(evaluator, "evaluators", None)
    if isinstance(members, list):  # a SequentialEvaluator or NanoBEIR evaluator: its members replaced in place
        tried = []
        for i, member in enumerate(members):
            members[i], outcomes = adopt_evaluators(member)
            tried.extend(outcomes)
        return evaluator, tried
    outcome = adopt(evaluator)
    return outcome.evaluator, [outcome] if st_kind(evaluator) is not None else []


def adoption_line(outcome: Adoption) -> str:
    """The one line that says what was adopted, or which feature is missing and the fix."""
    theirs = type(outcome.original).__name__
    label = f"sentence-transformers' {theirs}" + (
        f" {evaluator_name(outcome.original)!r}" if evaluator_name(outcome.original) else ""
    )
    if outcome.adopted:
        return (
            f"adopted {label}: hf_search_wandb's evaluator runs in its place on the same data (one encoding), "
            f"its keys and values are kept ({theirs}'s own metric code), and best tracking, tables, histograms "
            f"and the model artifact follow it"
        )
    return (
        f"{label} runs as it is, because {outcome.reason}: its metrics are logged, but no retrieval tables or "
        f"score histograms come from it. Fix: use hf_search_wandb.RetrievalEvaluator (or RerankingEvaluator) in its place"
    )


def computed_metrics(evaluator: Any, model: Any = None) -> list[str]:
    """The metric names an evaluator's keys carry after its name: ours (`mrr@10`), plus an adopted
    sentence-transformers evaluator's own (`cosine_ndcg@10`)."""
    names = list(getattr(evaluator, "metrics", None) or ())
    theirs = getattr(evaluator, "their_metric_names", None)
    return names + list(theirs(model)) if callable(theirs) else names


def encoder_for(model: Any, tokenizer: Any, evaluator: Any) -> Any:
    """What `evaluator.evaluate` takes for the trainer's `model`: a reranking evaluator wraps its cross-encoder
    itself (`adapt_model`); a plain transformers model with its tokenizer becomes an `Encoder` with the
    evaluator's pooling; anything else (a SentenceTransformer) is passed as it is."""
    if callable(getattr(evaluator, "adapt_model", None)):
        return evaluator.adapt_model(model, tokenizer)
    if tokenizer is None or getattr(evaluator, "tokenizer", None) is not None:
        return model
    return as_encoder(
        model, tokenizer, pooling=getattr(evaluator, "pooling", None),
        normalize=getattr(evaluator, "normalize", None), max_length=getattr(evaluator, "max_length", None),
    )  # fmt: skip


def missing_metrics(evaluators: Iterable[Any], metrics: dict[str, Any], model: Any, tokenizer: Any) -> dict[str, float]:
    """Run each evaluator whose metrics `metrics` (one trainer evaluation, `eval_` prefix) does not hold yet;
    their metrics as the trainer names them (`eval_{name}_{metric}`). Computed ones are reused, never recomputed."""
    added: dict[str, float] = {}
    for ev in evaluators:
        key_prefix = trainer_key_prefix(evaluator_name(ev))
        primary = getattr(ev, "primary_metric", None)
        if (primary and f"eval_{primary}" in metrics) or (evaluator_name(ev) and any(k.startswith(key_prefix) for k in metrics)):
            continue
        result = ev.evaluate(encoder_for(model, tokenizer, ev))
        added.update({f"{key_prefix}{m}": float(v) for m, v in result.metrics.items()})
    return added

"""Each evaluation against the start and the best so far: paired tests, the per-query file, the regressions.

For every evaluator that ran, `EvaluationComparisons.evaluated` keeps its per-query values in the run
(`tracking.per_query_scores`) and, during training, compares them with the first evaluation of the run (the
baseline: the model before training when the trainer evaluates on start) and with the best earlier evaluation
(by the mean of the primary measure). It returns the row the callback logs at the evaluation's step:

    {ns}/vs_start/delta, wins, losses, ties, p_randomization, p_ttest, step   (the primary measure, tested)
    {ns}/vs_start/{measure}/delta                                            (each other measure kept)
    {ns}/vs_best/...                                                         (the same against the best)
    regressions (or {media namespace}/regressions)                           (a table, with the media)

Only the primary measure is tested during training: one test per reference, so its p-values need no
multiple-testing correction, and the cost stays a few milliseconds an evaluation (`benchmarks/bench_significance.py`).
`hf-search-wandb compare` and the report test every kept measure, Holm-adjusted. The statistics are
`core.metrics.significance`; `docs/significance.md` says how to read them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hf_search_wandb.core.metrics.significance import (
    DEFAULT_PERMUTATIONS,
    DEFAULT_SEED,
    PairedTest,
    align,
    paired_test,
)
from hf_search_wandb.tracking import per_query_scores, tables
from hf_search_wandb.tracking.log_keys import VAL, media_namespace, prefix_namespace
from hf_search_wandb.trainer.evaluator_set import EvaluatorSet, evaluator_name

logger = logging.getLogger(__name__)

#: The references each evaluation is compared with, by key part.
START, BEST = "vs_start", "vs_best"


@dataclass(frozen=True)
class Target:
    """One evaluator of an evaluation: where its metrics go (`val`, `test`, its name) and its media (`""`: top
    level, next to `error_analysis`)."""

    namespace: str
    media: str
    evaluator: Any


def targets(evaluators: EvaluatorSet, ran: list[Any], prefix: str) -> list[Target]:
    """The `Target` of each evaluator that ran, under the trainer's key `prefix` (`eval`, `test`)."""
    out = []
    for ev in ran:
        name = evaluator_name(ev)
        media = media_namespace(prefix, name, several=evaluators.several, several_ran=len(ran) > 1)
        namespace = evaluators.namespace(ev) if prefix_namespace(prefix) == VAL else media
        out.append(Target(namespace, media, ev))
    return out


@dataclass
class _Kept:
    """An earlier evaluation of one namespace, as far as comparisons need it."""

    scores: per_query_scores.QueryScores
    relevant_ranks: dict[str, dict[str, int]]


@dataclass
class EvaluationComparisons:
    """The baseline and the best evaluation of each namespace in one run, and the tests against them.

    Attributes:
        n_permutations / seed: the randomization test's settings (`core.metrics.significance`).
        budget_bytes: per-query bytes kept per evaluation beyond the primary measure.
        start / best: `{namespace: kept evaluation}`.
    """

    n_permutations: int = DEFAULT_PERMUTATIONS
    seed: int = DEFAULT_SEED
    budget_bytes: int = per_query_scores.BUDGET_BYTES
    start: dict[str, _Kept] = field(default_factory=dict)
    best: dict[str, _Kept] = field(default_factory=dict)

    def evaluated(
        self,
        tracked: Any,
        ran: list[Target],
        step: int,
        metric: str,
        *,
        compare: bool = True,
        tables_now: bool = False,
        max_rows: int = tables.DEFAULT_MAX_ERROR_ROWS,
    ) -> dict[str, Any]:
        """Keep each evaluation's per-query values in the run; with `compare`, its tests against the start and
        the best earlier evaluation (and, with `tables_now`, its regressions table).

        Args:
            tracked: the `TrackedRun` (its `wandb_run.dir` receives the per-query files); None: nothing kept.
            ran: the `targets` of this evaluation.
            step: the training step.
            metric: the callback's eval_metric; an evaluator without per-query values of it uses its own primary.
            compare: False for an evaluation outside training (kept, not compared).
            tables_now: add `{ns}/regressions` (the callback logs tables at this evaluation).
            max_rows: cap on the regressions rows.

        Returns:
            The row to log at `step` (empty when nothing was compared).
        """
        row: dict[str, Any] = {}
        files_dir = getattr(getattr(tracked, "wandb_run", None), "dir", None)
        for target in ran:
            namespace, evaluator = target.namespace, target.evaluator
            result: Any = getattr(evaluator, "last_result", None)
            per_query = getattr(result, "per_query", None)
            if result is None or not per_query:
                continue
            primary = primary_measure(per_query, metric, evaluator)
            scores = per_query_scores.select(result.query_ids, per_query, namespace=namespace, step=step,
                                             primary=primary, budget_bytes=self.budget_bytes)  # fmt: skip
            if files_dir:
                try:
                    per_query_scores.write_scores(Path(files_dir), scores)
                except OSError as err:  # a full disk must not stop training: the comparisons still run
                    logger.warning(
                        "hf_search_wandb: could not keep %s's per-query scores: %s", namespace, err
                    )
            if not compare:
                continue
            kept = _Kept(scores, result.relevant_ranks)
            start = self.start.setdefault(namespace, kept)
            if start is not kept:
                row.update(self._tests(namespace, START, start, scores))
                if tables_now:
                    row.update(self._regressions(target, start, scores, result, max_rows))
            best = self.best.get(namespace)
            if best is not None:
                row.update(self._tests(namespace, BEST, best, scores))
            if best is None or scores.mean(primary) > best.scores.mean(primary):
                self.best[namespace] = kept
        return row

    def _tests(
        self, namespace: str, ref: str, kept: _Kept, scores: per_query_scores.QueryScores
    ) -> dict[str, Any]:
        _, before, after = align(kept.scores.query_ids, kept.scores.values, scores.query_ids, scores.values)
        primary = scores.primary
        if primary not in before:
            return {}
        test = paired_test(before[primary], after[primary], metric=primary, n_permutations=self.n_permutations,
                           seed=self.seed)  # fmt: skip
        prefix = f"{namespace}/{ref}"
        row = comparison_row(prefix, test, kept.scores.step)
        for metric in before:  # the other measures kept: their change, untested
            if metric != primary:
                pairs = np.isfinite(before[metric]) & np.isfinite(after[metric])
                change = after[metric][pairs].mean() - before[metric][pairs].mean() if pairs.any() else np.nan
                row[f"{prefix}/{metric}/delta"] = float(change)
        return row

    def _regressions(
        self, target: Target, start: _Kept, scores: per_query_scores.QueryScores, result: Any, max_rows: int
    ) -> dict[str, Any]:
        primary = scores.primary
        position = {q: i for i, q in enumerate(start.scores.query_ids)}
        old = start.scores.values.get(primary)
        if old is None:
            return {}
        before = np.array([old[position[q]] if q in position else np.nan for q in scores.query_ids])
        evaluator = target.evaluator
        table = tables.regressions_table(
            result, start.relevant_ranks, before, scores.values[primary], getattr(evaluator, "queries", None) or {},
            getattr(evaluator, "corpus", None) or {}, max_rows=max_rows,
        )  # fmt: skip
        return {f"{target.media}/regressions" if target.media else "regressions": table}


def primary_measure(per_query: dict[str, Any], metric: str, evaluator: Any = None) -> str:
    """The measure an evaluation is tested on: `metric` (eval_metric) when it has per-query values, else the
    evaluator's own primary metric, else its first measure.

    Example:
        >>> primary_measure({"mrr@10": [], "ndcg@10": []}, "ndcg@10"), primary_measure({"mrr@10": []}, "loss")
        ('ndcg@10', 'mrr@10')
    """
    if metric in per_query:
        return metric
    own = str(getattr(evaluator, "primary_metric", "") or "")
    name = str(getattr(evaluator, "name", "") or "")
    own = own[len(name) + 1 :] if name and own.startswith(f"{name}_") else own
    return own if own in per_query else next(iter(per_query))


def comparison_row(prefix: str, test: PairedTest, reference_step: int) -> dict[str, Any]:
    """The logged keys of one test of the primary measure against a reference evaluation.

    Example:
        >>> from hf_search_wandb.core.metrics.significance import paired_test
        >>> row = comparison_row("val/vs_start", paired_test([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], metric="mrr@10"), 0)
        >>> row["val/vs_start/delta"], row["val/vs_start/p_randomization"], row["val/vs_start/wins"]
        (1.0, 0.25, 3)
    """
    return {
        f"{prefix}/delta": test.delta, f"{prefix}/wins": test.wins, f"{prefix}/losses": test.losses,
        f"{prefix}/ties": test.ties, f"{prefix}/p_randomization": test.p_randomization,
        f"{prefix}/p_ttest": test.p_ttest, f"{prefix}/step": reference_step,
    }  # fmt: skip

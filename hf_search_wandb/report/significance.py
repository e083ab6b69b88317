"""Two evaluations compared query by query: `hf-search-wandb compare` and the report's significance section.

An evaluation is one per-query file a run keeps (`tracking.per_query_scores`): a run folder, a namespace
(`val`) and a step, or `start` (the first), `best` (the highest mean of its primary measure) or `last`. Two
evaluations, of one run or of two, are paired by query id and tested measure by measure
(`core.metrics.significance`: randomization and paired t-tests, Holm over the measures), like ranx's `compare`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hf_search_wandb.core.metrics.significance import (
    DEFAULT_PERMUTATIONS,
    DEFAULT_SEED,
    PairedTest,
    align,
    compare_measures,
)
from hf_search_wandb.report.sources import ReportInputError
from hf_search_wandb.tracking.per_query_scores import QueryScores, read_scores, run_files_dir

#: What `--step-a/--step-b` accept besides a step number.
CHOICES = ("best", "start", "last")
#: The report compares at most this many evaluations (each run's start and best), every pair of them.
MAX_REPORT_EVALUATIONS = 12
#: Most-changed queries listed each way.
TOP_QUERIES = 10
#: Bins of the report's per-query delta histogram.
HISTOGRAM_BINS = 41


@dataclass
class Comparison:
    """Evaluation B against evaluation A.

    Attributes:
        a / b: the two evaluations.
        query_ids: the queries both hold (A's order); `only_a` / `only_b`: how many only one holds.
        tests: one `PairedTest` per measure both hold, the primary first, Holm-adjusted over them.
        deltas: `b - a` of the primary measure per query of `query_ids` (NaN: skipped on a side).
    """

    a: QueryScores
    b: QueryScores
    query_ids: list[str]
    only_a: int
    only_b: int
    tests: list[PairedTest] = field(default_factory=list)
    deltas: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def primary(self) -> str:
        return self.tests[0].metric if self.tests else self.b.primary

    def most_changed(
        self, k: int = TOP_QUERIES
    ) -> tuple[list[tuple[str, float, float, float]], list[tuple[str, float, float, float]]]:
        """`(improved, regressed)`: up to `k` queries each, `(query id, a, b, delta)`, largest change first."""
        a, b = self.a.values[self.primary], self.b.values[self.primary]
        pos_a = {q: i for i, q in enumerate(self.a.query_ids)}
        pos_b = {q: i for i, q in enumerate(self.b.query_ids)}
        finite = np.flatnonzero(np.isfinite(self.deltas))
        order = finite[np.argsort(self.deltas[finite], kind="stable")]

        def row(i: int) -> tuple[str, float, float, float]:
            q = self.query_ids[i]
            return q, float(a[pos_a[q]]), float(b[pos_b[q]]), float(self.deltas[i])

        improved = [row(i) for i in order[::-1][:k] if self.deltas[i] > 1e-12]
        regressed = [row(i) for i in order[:k] if self.deltas[i] < -1e-12]
        return improved, regressed


def pick(kept: Sequence[QueryScores], choice: str | int, *, where: str = "the run") -> QueryScores:
    """One evaluation of a namespace's `kept` (sorted by step): `start`, `best`, `last` or a step number.

    Raises:
        ReportInputError: no evaluation matches (the message lists the steps kept).
    """
    if not kept:
        raise ReportInputError(f"{where} keeps no per-query scores")
    text = str(choice).strip().lower()
    if text == "start":
        return kept[0]
    if text == "last":
        return kept[-1]
    if text == "best":
        return max(kept, key=lambda s: (_finite_or(s.mean(s.primary)), -s.step))
    try:
        step = int(text)
    except ValueError:
        raise ReportInputError(f"a step is a number or one of {', '.join(CHOICES)}, got {choice!r}") from None
    for scores in kept:
        if scores.step == step:
            return scores
    raise ReportInputError(
        f"{where} holds no evaluation at step {step} (steps kept: {', '.join(str(s.step) for s in kept)})"
    )


def _finite_or(value: float, default: float = -math.inf) -> float:
    return value if math.isfinite(value) else default


def evaluations(run_dir: str | Path, namespace: str | None = None) -> list[QueryScores]:
    """The evaluations a run keeps under one namespace (default: `val`, else the only one).

    Raises:
        ReportInputError: the folder is no run folder, keeps no per-query scores, or the namespace is ambiguous
            or absent (the message names the folder, what it holds and the fix).
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise ReportInputError(
            f"{path}: no such run folder (give a wandb run folder, e.g. wandb/offline-run-...)"
        )
    kept = read_scores(path)
    if not kept:
        raise ReportInputError(
            f"{path}: keeps no per-query scores ({run_files_dir(path) / 'per_query'} is missing or empty): the run "
            "was logged by hf-search-wandb before per-query scores were kept, or without an evaluator"
        )
    names = sorted({s.namespace for s in kept})
    if namespace is None:
        namespace = "val" if "val" in names else (names[0] if len(names) == 1 else None)
        if namespace is None:
            raise ReportInputError(
                f"{path}: evaluations under {', '.join(names)}: choose one with --namespace"
            )
    chosen = [s for s in kept if s.namespace == namespace]
    if not chosen:
        raise ReportInputError(f"{path}: no evaluation under {namespace!r} (it holds {', '.join(names)})")
    return chosen


def compare(
    a: QueryScores,
    b: QueryScores,
    *,
    metrics: Sequence[str] | None = None,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = DEFAULT_SEED,
) -> Comparison:
    """B against A on the queries both hold: every measure both kept (or `metrics`), A's primary first.

    Raises:
        ReportInputError: they share no query, or a measure asked for is not kept by both.
    """
    ids, before, after = align(a.query_ids, a.values, b.query_ids, b.values)
    if not ids:
        raise ReportInputError(
            f"{a.label} and {b.label} share no query: were they evaluated on the same data?"
        )
    if metrics:
        missing = [m for m in metrics if m not in before]
        if missing:
            raise ReportInputError(
                f"{', '.join(missing)} not kept by both evaluations (both keep "
                f"{', '.join(before) or 'nothing'})"
            )
        names = list(metrics)
    else:
        primary = a.primary if a.primary in before else b.primary
        names = [primary, *(m for m in before if m != primary)] if primary in before else list(before)
    tests = compare_measures(before, after, metrics=names, n_permutations=n_permutations, seed=seed)
    with np.errstate(invalid="ignore"):
        deltas = after[names[0]] - before[names[0]]
    shared = set(ids)
    return Comparison(
        a, b, ids, len(a.query_ids) - len(ids), sum(q not in shared for q in b.query_ids), tests, deltas
    )


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def table_rows(comparison: Comparison, alpha: float = 0.05) -> list[list[Any]]:
    """One row per measure: `[measure, mean A, mean B, delta, p randomization, p t-test, p Holm, wins, losses,
    ties, significant]` (significant: Holm-adjusted randomization p < `alpha`)."""
    return [[t.metric, t.mean_a, t.mean_b, t.delta, t.p_randomization, t.p_ttest, t.p_randomization_holm,
             t.wins, t.losses, t.ties, t.significant(alpha)] for t in comparison.tests]  # fmt: skip


TABLE_COLUMNS = ["measure", "A", "B", "delta", "p_randomization", "p_ttest", "p_holm", "wins", "losses", "ties",
                 "significant"]  # fmt: skip


def as_json(comparison: Comparison, *, alpha: float = 0.05, top: int = TOP_QUERIES) -> dict[str, Any]:
    """The comparison as JSON-ready data (`compare --json`): both evaluations, one dict per measure (NaN as
    None), the most changed queries."""
    c = comparison
    improved, regressed = c.most_changed(top)
    return {
        "a": {"path": str(c.a.path) if c.a.path else None, "namespace": c.a.namespace, "step": c.a.step},
        "b": {"path": str(c.b.path) if c.b.path else None, "namespace": c.b.namespace, "step": c.b.step},
        "paired": len(c.query_ids), "only_a": c.only_a, "only_b": c.only_b, "alpha": alpha,
        "measures": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in zip(
            TABLE_COLUMNS, row, strict=True)} for row in table_rows(c, alpha)],
        "improved": [list(r) for r in improved], "regressed": [list(r) for r in regressed],
    }  # fmt: skip


def format_table(
    comparison: Comparison, *, name_a: str, name_b: str, alpha: float = 0.05, top: int = 5
) -> str:
    """The `compare` command's text: both evaluations, one line per measure (ranx's `compare` layout), the
    most changed queries."""
    c = comparison
    exact = all(t.exact for t in c.tests)
    lines = [
        f"A: {name_a}  ({c.a.label})",
        f"B: {name_b}  ({c.b.label})",
        f"{len(c.query_ids):,} queries paired"
        + (f"; {c.only_a:,} only in A, {c.only_b:,} only in B" if c.only_a or c.only_b else "")
        + ("; randomization test exact" if exact else ""),
        "",
    ]
    header = ["measure", "A", "B", "delta", "p rand.", "p t-test", "p Holm", "wins/losses/ties"]
    rows = [[t.metric + ("*" if t.significant(alpha) else ""), f"{t.mean_a:.4f}", f"{t.mean_b:.4f}",
             f"{t.delta:+.4f}", _p(t.p_randomization), _p(t.p_ttest), _p(t.p_randomization_holm),
             f"{t.wins}/{t.losses}/{t.ties}"] for t in c.tests]  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    lines.append("")
    lines.append(
        f"* B differs from A at p < {alpha} (randomization test, Holm-adjusted over the {len(c.tests)} "
        "measures; two-sided)"
    )
    if top > 0:
        improved, regressed = c.most_changed(top)
        for title, items in (
            (f"most improved ({c.primary})", improved),
            (f"most regressed ({c.primary})", regressed),
        ):
            if items:
                lines.append(f"{title}: " + ", ".join(f"{q} {x:.3f}->{y:.3f}" for q, x, y, _ in items))
    return "\n".join(lines)


def report_section(
    run_dirs: Sequence[Path],
    names: Sequence[str],
    *,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any] | None:
    """The report's significance data: each run's start and best evaluation (primary namespace), and the
    comparison of every pair of them (table rows, per-query delta histogram, most changed queries).

    Returns None when no run keeps per-query scores. Pairs are stored once (`"i-j"`, i < j: B = j against A = i);
    the page swaps them for the other order.
    """
    options: list[dict[str, Any]] = []
    kept: list[QueryScores] = []
    for index, (run_dir, name) in enumerate(zip(run_dirs, names, strict=True)):
        try:
            chosen = evaluations(run_dir)
        except ReportInputError:
            continue
        picks = [("start", pick(chosen, "start")), ("best", pick(chosen, "best"))]
        if picks[0][1].step == picks[1][1].step:
            picks = picks[1:]
        for role, scores in picks:
            if len(kept) < MAX_REPORT_EVALUATIONS:
                options.append(
                    {
                        "run": index,
                        "label": f"{name} · {scores.label} ({role})",
                        "role": role,
                        "namespace": scores.namespace,
                        "step": scores.step,
                        "primary": scores.primary,
                    }
                )
                kept.append(scores)
    if not kept:
        return None
    pairs: dict[str, Any] = {}
    for i in range(len(kept)):
        for j in range(i + 1, len(kept)):
            try:
                c = compare(kept[i], kept[j], n_permutations=n_permutations, seed=seed)
            except ReportInputError:
                continue
            finite = c.deltas[np.isfinite(c.deltas)]
            top = max(float(np.abs(finite).max()) if finite.size else 0.0, 1e-9)
            counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS, range=(-top, top))
            improved, regressed = c.most_changed()
            pairs[f"{i}-{j}"] = {
                "primary": c.primary, "paired": len(c.query_ids), "only_a": c.only_a, "only_b": c.only_b,
                "rows": table_rows(c), "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
                "improved": [list(r) for r in improved], "regressed": [list(r) for r in regressed],
            }  # fmt: skip
    default = [0, 1] if len(kept) > 1 else [0, 0]
    return {"options": options, "pairs": pairs, "columns": TABLE_COLUMNS, "default": default,
            "permutations": n_permutations, "seed": seed,
            "truncated": sum(1 for _ in run_dirs) > len({o["run"] for o in options})
            and len(kept) >= MAX_REPORT_EVALUATIONS}  # fmt: skip

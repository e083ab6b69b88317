"""The table of measures: every fact about a measure, declared once.

A `Measure` says what the measure takes (a cut-off or not; graded or binary relevance; whether it must
tell judged non-relevant documents from unjudged ones), its goal (higher or lower is better), the trec_eval
measure it equals, and its kernel. Everything else reads `MEASURES`: metric-name parsing (`parse_metric`),
the scorers' dispatch (`core/metrics/scoring.py`), the sweep-config check of `metric.name` (`sweeps/config.py`) and
the wandb summary goal of each logged key (`tracking/log_keys.py`). `LOGGED_SERIES` adds the other values the
callback logs (losses, learning rate, ...) with their goals.

Adding a measure is one `Measure(...)` line in `MEASURES`, its kernel (a function of `RankedHits` and k,
returning one value per query) and its parity test against pytrec_eval in `tests/test_metrics.py`.
`docs/metrics.md` walks through it.

This module imports numpy only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from hf_search_wandb.core.metrics.ranked_hits import RankedHits

Goal = Literal["max", "min"]
Kernel = Callable[[RankedHits, int], np.ndarray]


@dataclass(frozen=True)
class Measure:
    """One retrieval measure.

    Attributes:
        name: the name metric names start with (`ndcg` in `ndcg@10`), lower case.
        kernel: `kernel(hits, k) -> (n_queries,) float array`; k is the cut-off, or the ranking depth when
            the metric has none.
        cutoff: `"required"` (`ndcg@10`), `"optional"` (`map` and `map@100`) or `"none"` (`bpref`).
        graded: True when grade values matter (nDCG's gains), False when only relevant (grade > 0) or not.
        goal: `"max"` when higher is better, `"min"` when lower is.
        trec_eval: the trec_eval measure the metric without a cut-off equals (`map`), or None.
        trec_eval_at_k: the trec_eval measure `name@k` equals, `{k}` standing for the cut-off
            (`ndcg_cut_{k}`), or None. Compared on the run cut to k (trec_eval's `recip_rank` has no cut-off).
        uses_nonrelevant: True when the measure tells judged non-relevant documents (grade 0) from
            unjudged ones (bpref); the scorers then need to know which retrieved documents are judged.
    """

    name: str
    kernel: Kernel
    cutoff: Literal["required", "optional", "none"]
    graded: bool
    goal: Goal
    trec_eval: str | None = None
    trec_eval_at_k: str | None = None
    uses_nonrelevant: bool = False

    def forms(self) -> list[str]:
        """The name forms this measure accepts, e.g. `['map', 'map@k']`."""
        return {"required": [f"{self.name}@k"], "optional": [self.name, f"{self.name}@k"], "none": [self.name]}[
            self.cutoff
        ]

    def trec_eval_name(self, k: int | None) -> str | None:
        """The trec_eval measure the metric with cut-off k (None: without) equals, as pytrec_eval names it."""
        if k is None:
            return self.trec_eval
        return None if self.trec_eval_at_k is None else self.trec_eval_at_k.format(k=k)


# --- kernels: one value per query, for every query (the scorers mask the queries without a relevant doc) ---


def _mrr(h: RankedHits, k: int) -> np.ndarray:
    return np.where(h.first < k, 1.0 / (h.first + 1.0), 0.0)


def _hit(h: RankedHits, k: int) -> np.ndarray:
    return (h.count_top(k) > 0).astype(np.float64)


def _recall(h: RankedHits, k: int) -> np.ndarray:
    return h.count_top(k) / h.safe_rel


def _precision(h: RankedHits, k: int) -> np.ndarray:
    return h.count_top(k) / float(k)  # trec_eval P_k divides by k even when fewer docs were retrieved


def _ndcg(h: RankedHits, k: int) -> np.ndarray:
    idcg = h.ideal_dcg(k)
    return np.divide(h.count_top(k, h.gain), idcg, out=np.zeros(h.n), where=idcg > 0)


def _average_precision(h: RankedHits, k: int) -> np.ndarray:
    return h.count_top(k, h.precision_at_hit) / h.safe_rel  # over all R relevant docs, not min(k, R)


def _rprec(h: RankedHits, k: int) -> np.ndarray:
    in_top_r = h.cols < h.num_rel[h.rows]  # precision at rank R = recall at rank R
    return np.bincount(h.rows[in_top_r], minlength=h.n) / h.safe_rel


def _bpref(h: RankedHits, k: int) -> np.ndarray:
    above = h.nonrelevant_above
    num_rel = h.num_rel[h.rows]
    denominator = np.minimum(h.nonrelevant_total[h.rows], num_rel)  # > 0 wherever above > 0
    penalty = np.divide(np.minimum(above, num_rel), denominator, out=np.zeros_like(above), where=above > 0)
    return np.bincount(h.rows, weights=1.0 - penalty, minlength=h.n) / h.safe_rel


#: Every retrieval measure, in the order error messages list them.
MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure("mrr", _mrr, "required", graded=False, goal="max", trec_eval_at_k="recip_rank"),
        Measure("ndcg", _ndcg, "required", graded=True, goal="max", trec_eval_at_k="ndcg_cut_{k}"),
        Measure("recall", _recall, "required", graded=False, goal="max", trec_eval_at_k="recall_{k}"),
        Measure("precision", _precision, "required", graded=False, goal="max", trec_eval_at_k="P_{k}"),
        Measure("hit", _hit, "required", graded=False, goal="max", trec_eval_at_k="success_{k}"),
        Measure("map", _average_precision, "optional", graded=False, goal="max", trec_eval="map",
                trec_eval_at_k="map_cut_{k}"),
        Measure("rprec", _rprec, "none", graded=False, goal="max", trec_eval="Rprec"),
        Measure("bpref", _bpref, "none", graded=False, goal="max", trec_eval="bpref", uses_nonrelevant=True),
    )
}  # fmt: skip

#: Figures a sparse (SPLADE) evaluation reports next to the metrics (`core/evaluation/sparse.py`).
SPARSITY_METRICS: tuple[str, ...] = ("query_active_dims", "corpus_active_dims", "flops")

#: The other values SearchWandbCallback logs, with their goal (None: neither direction is better).
#: what a multi-vector evaluation logs next to its metrics (`core/evaluation/multi_vector.py`): figures, no goal
MULTI_VECTOR_FIGURES = ("query_tokens", "corpus_tokens", "index_mb")

LOGGED_SERIES: Mapping[str, Goal | None] = {
    "val/loss": "min",
    "train/loss": "min",
    "train/epoch_loss": "min",
    "train/lr": None,
    "train/grad_norm": None,
    "system/throughput": None,
    **{f"val/{name}": None for name in SPARSITY_METRICS},
    **{f"val/{name}": None for name in MULTI_VECTOR_FIGURES},
}

_NAME_RE = re.compile(r"^(?P<measure>[a-z_]+)(?:@(?P<k>[+-]?\d+))?$")


def valid_forms() -> str:
    """The metric names `parse_metric` accepts, for error messages.

    Example:
        >>> valid_forms()[:48]
        'mrr@k, ndcg@k, recall@k, precision@k, hit@k, map'
    """
    forms = ", ".join(form for m in MEASURES.values() for form in m.forms())
    return f"{forms} (k an integer >= 1, e.g. 'ndcg@10')"


class Metric(NamedTuple):
    """A parsed metric name: `measure` is a key of `MEASURES`, `k` its cut-off (`None` for a measure
    used without one, such as `map`, which then sees the whole ranking cut to `depth`)."""

    name: str
    measure: str
    k: int | None

    @property
    def spec(self) -> Measure:
        """The `Measure` declaration of this metric."""
        return MEASURES[self.measure]


def parse_metric(name: str) -> Metric:
    """Validate a metric name and return its parts.

    Args:
        name: e.g. `"mrr@10"`, `"ndcg@10"`, `"recall@100"`, `"precision@5"`, `"hit@10"`, `"map"`,
            `"map@100"`, `"rprec"`, `"bpref"`. Case and surrounding spaces are ignored; the canonical
            name is lower case.

    Returns:
        A `Metric(name, measure, k)`.

    Raises:
        ValueError: for an unknown measure or a malformed name (the message lists the valid forms),
            a missing or unexpected cut-off, or a cut-off k < 1.

    Example:
        >>> parse_metric("NDCG@10")
        Metric(name='ndcg@10', measure='ndcg', k=10)
        >>> parse_metric("map")
        Metric(name='map', measure='map', k=None)
    """
    if not isinstance(name, str):
        raise TypeError(f"A metric name must be a string, got {type(name).__name__}: {name!r}.")
    text = name.strip().lower()
    match = _NAME_RE.match(text)
    measure = MEASURES.get(match["measure"]) if match is not None else None
    if match is None or measure is None:
        raise ValueError(f"Unknown metric {name!r}. Valid forms: {valid_forms()}.")
    k_text = match["k"]
    if k_text is None:
        if measure.cutoff == "required":
            raise ValueError(
                f"Metric {name!r} needs a cut-off, e.g. '{measure.name}@10'. Valid forms: {valid_forms()}."
            )
        return Metric(measure.name, measure.name, None)
    if measure.cutoff == "none":
        raise ValueError(
            f"Metric {name!r} takes no cut-off: write '{measure.name}' (it sees the whole ranking, cut to depth)."
        )
    k = int(k_text)
    if k < 1:
        raise ValueError(f"Metric {name!r}: the cut-off k must be an integer >= 1, got {k}.")
    return Metric(f"{measure.name}@{k}", measure.name, k)


def parse_metrics(metrics: Sequence[str] | str, depth: int = 100) -> list[Metric]:
    """Validate a list of metric names against a ranking depth (what the scorers check first).

    Args:
        metrics: metric names (see `parse_metric`), or one name.
        depth: the rank cut-off the rankings will have; every k must be <= depth.

    Returns:
        The parsed metrics, in order.

    Raises:
        ValueError: an invalid name, an empty list, depth < 1, or a k larger than depth.

    Example:
        >>> [m.name for m in parse_metrics(["MRR@10", "map"], depth=100)]
        ['mrr@10', 'map']
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    parsed = [parse_metric(m) for m in metrics]
    if not parsed:
        raise ValueError(f"No metrics requested. Valid forms: {valid_forms()}.")
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}.")
    for metric in parsed:
        if metric.k is not None and metric.k > depth:
            raise ValueError(
                f"{metric.name} needs the top {metric.k} documents but depth is {depth}: "
                f"pass depth >= {metric.k} or a smaller k."
            )
    return parsed


def logged_goal(key: str) -> Goal | None:
    """The goal of a key SearchWandbCallback logs: `"max"`, `"min"`, or None when neither direction is
    better or the key is not one it logs.

    Example:
        >>> logged_goal("val/ndcg@10"), logged_goal("val/loss"), logged_goal("train/lr"), logged_goal("val/f1")
        ('max', 'min', None, None)
    """
    if key in LOGGED_SERIES:
        return LOGGED_SERIES[key]
    metric = _logged_metric(key)
    return None if metric is None else metric.spec.goal


def is_logged(key: str) -> bool:
    """True when SearchWandbCallback logs `key`: `val/` + a canonical metric name (`val/mrr@10`,
    `val/bpref`), or one of `LOGGED_SERIES` (`val/loss`, `train/loss`, ...).

    Example:
        >>> is_logged("val/ndcg@20"), is_logged("val/rprec"), is_logged("val/NDCG@20"), is_logged("val_mrr@10")
        (True, True, False, False)
    """
    return key in LOGGED_SERIES or _logged_metric(key) is not None


def logged_forms() -> str:
    """What SearchWandbCallback logs, for error messages.

    Example:
        >>> logged_forms()[:52]
        'val/{mrr,ndcg,recall,precision,hit,map}@k, val/map, '
    """
    at_k = ",".join(m.name for m in MEASURES.values() if m.cutoff != "none")
    plain = ", ".join(f"val/{m.name}" for m in MEASURES.values() if m.cutoff != "required")
    return f"val/{{{at_k}}}@k, {plain}, " + ", ".join(LOGGED_SERIES)


def _logged_metric(key: str) -> Metric | None:
    if not key.startswith("val/"):
        return None
    try:
        metric = parse_metric(key[len("val/") :])
    except ValueError:
        return None
    return metric if metric.name == key[len("val/") :] else None

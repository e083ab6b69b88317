"""Paired significance tests on per-query scores: is B's gain over A more than noise?

Two systems evaluated on the same queries give one value per query each (`MetricReport.per_query`). The tests
here are paired and two-sided, the ones ranx's `compare` runs:

* `randomization_test`: Fisher's randomization (sign-flip) test. Under the null hypothesis "A and B are the same
  system", each query's difference `b - a` is as likely to have the other sign; the p-value is the share of sign
  assignments whose mean difference is at least as far from 0 as the observed one. Exact (every assignment
  enumerated) when the queries that differ are few enough (`2**m <= n_permutations`), else `n_permutations`
  random assignments from a seeded generator, counted as `(hits + 1) / (n_permutations + 1)` (never 0).
* `paired_ttest`: Student's paired t-test, `t = mean(d) / (std(d, ddof=1) / sqrt(n))` with `n - 1` degrees of
  freedom, the p-value from the t distribution (the regularised incomplete beta function, computed here: numpy
  and the standard library only). Equals `scipy.stats.ttest_rel`.
* `holm`: Holm–Bonferroni step-down adjustment when several measures are tested at once.

`paired_test` runs both on two arrays; `compare_measures` on every measure two evaluations share, Holm-adjusted;
`align` pairs two evaluations' queries by id. Queries whose value is NaN on either side (skipped: no relevant
document) are left out of the pairs. See `docs/significance.md` for how to read the figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Random sign assignments of the randomization test (Monte-Carlo standard error at p = 0.05: 0.0022).
DEFAULT_PERMUTATIONS = 10_000
#: Seed of the randomization test's generator: the same scores always give the same p-value.
DEFAULT_SEED = 42
#: Two per-query values closer than this count as a tie (the same ranking scores identically).
TIE_TOLERANCE = 1e-12
_CHUNK = 4096  # sign assignments drawn and scored at once
#: bit k (most significant first) of each byte value: the queries a random byte flips
_BYTE_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float64)


@dataclass(frozen=True)
class PairedTest:
    """One measure of B against A on the queries both evaluated.

    Attributes:
        metric: the measure (`ndcg@10`).
        n: paired queries (finite on both sides).
        mean_a / mean_b: the means over those queries.
        delta: `mean_b - mean_a`.
        wins / losses / ties: queries where B is higher / lower / equal (within `TIE_TOLERANCE`).
        t: the paired t statistic (NaN when every difference is 0 or n < 2).
        p_ttest: its two-sided p-value (1.0 when every difference is 0; NaN when n < 2).
        p_randomization: the randomization test's two-sided p-value (NaN when n == 0).
        exact: True when the randomization p-value enumerated every sign assignment.
        p_randomization_holm / p_ttest_holm: Holm-adjusted over the measures tested together (equal to the raw
            p-values for a measure tested alone).
    """

    metric: str
    n: int
    mean_a: float
    mean_b: float
    delta: float
    wins: int
    losses: int
    ties: int
    t: float
    p_ttest: float
    p_randomization: float
    exact: bool
    p_randomization_holm: float
    p_ttest_holm: float

    def significant(self, alpha: float = 0.05) -> bool:
        """True when the Holm-adjusted randomization p-value is below `alpha`."""
        return bool(self.p_randomization_holm < alpha)


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz), for x < (a + 1) / (a + b + 2)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return h


def _stirling_tail(z: float) -> float:
    """`lgamma(z) - ((z - 0.5) * log(z) - z + log(2 pi) / 2)`, for z >= 20 (error below 1e-17)."""
    z2 = z * z
    return (
        1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - (1.0 / 1680.0 - 1.0 / (1188.0 * z2)) / z2) / z2) / z2
    ) / z


def _log_gamma_ratio(a: float, b: float) -> float:
    """`lgamma(a + b) - lgamma(a)` without the cancellation of two large logarithms when `a` is large."""
    if a < 20.0:
        return math.lgamma(a + b) - math.lgamma(a)
    return b * math.log(a) + (a + b - 0.5) * math.log1p(b / a) - b + _stirling_tail(a + b) - _stirling_tail(a)


def _betainc(
    a: float, b: float, x: float, y: float, log_x: float | None = None, log_y: float | None = None
) -> float:
    """I_x(a, b) given x and y = 1 - x (and optionally their logarithms), each computed directly by the caller:
    no cancellation in 1 - x, none in log(x) near 1."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_beta = _log_gamma_ratio(a, b) - math.lgamma(b) if a >= b else _log_gamma_ratio(b, a) - math.lgamma(a)
    log_x = math.log(x) if log_x is None else log_x
    log_y = math.log(y) if log_y is None else log_y
    log_front = log_beta + a * log_x + b * log_y
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, y) / b


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1.

    Example:
        >>> round(betainc(2.0, 3.0, 0.4), 12)  # 1 - (1-x)^4 - 4x(1-x)^3 ... = 0.5248
        0.5248
    """
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc needs a > 0 and b > 0, got a={a}, b={b}")
    return _betainc(a, b, min(max(x, 0.0), 1.0), 1.0 - min(max(x, 0.0), 1.0))


def t_two_sided_p(t: float, df: float) -> float:
    """`P(|T| >= |t|)` for Student's t with `df` degrees of freedom (`2 * scipy.stats.t.sf(|t|, df)`).

    Example:
        >>> round(t_two_sided_p(2.0, 10), 10)
        0.0733880348
    """
    if math.isnan(t) or not df > 0:
        return math.nan
    if math.isinf(t):
        return 0.0
    t2 = t * t
    if t2 == 0.0:
        return 1.0
    return _betainc(
        df / 2.0, 0.5, df / (df + t2), t2 / (df + t2), -math.log1p(t2 / df), math.log(t2 / (df + t2))
    )


def _differences(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> np.ndarray:
    a_arr, b_arr = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a_arr.shape != b_arr.shape:
        raise ValueError(
            f"paired scores need one value per query on both sides, got {a_arr.size} and "
            f"{b_arr.size} values: pair them by query id first (`align`)"
        )
    keep = np.isfinite(a_arr) & np.isfinite(b_arr)
    return b_arr[keep] - a_arr[keep]


def paired_ttest(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> tuple[float, float]:
    """`(t, two-sided p)` of the paired t-test of B against A (`scipy.stats.ttest_rel(b, a)`).

    When every difference is 0 the systems are the same on these queries: t is NaN and p is 1.0 (scipy: NaN).
    Fewer than 2 pairs: NaN, NaN.

    Example:
        >>> t, p = paired_ttest([0.2, 0.4, 0.5, 0.1], [0.3, 0.6, 0.5, 0.4])
        >>> round(t, 6), round(p, 6)
        (2.32379, 0.102728)
    """
    d = _differences(a, b)
    n = d.size
    if n < 2:
        return math.nan, math.nan
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        if mean == 0.0:
            return math.nan, 1.0
        return math.copysign(math.inf, mean), 0.0
    t = mean / (sd / math.sqrt(n))
    return t, t_two_sided_p(t, n - 1)


def randomization_test(
    a: np.ndarray | Sequence[float],
    b: np.ndarray | Sequence[float],
    *,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = DEFAULT_SEED,
) -> tuple[float, bool]:
    """`(two-sided p, exact)` of Fisher's paired randomization (sign-flip) test of B against A.

    Exact when the `m` queries that differ allow `2**m <= n_permutations` sign assignments (all enumerated,
    p = share at least as extreme, the observed one included); else `n_permutations` random assignments from
    `numpy.random.default_rng(seed)`, p = `(hits + 1) / (n_permutations + 1)`.

    Example:
        >>> randomization_test([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])  # 2 of the 8 assignments are as extreme
        (0.25, True)
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    d = _differences(a, b)
    if d.size == 0:
        return math.nan, True
    d = d[np.abs(d) > TIE_TOLERANCE]  # a zero difference flips to itself: it changes no assignment's mean
    m = d.size
    if m == 0:
        return 1.0, True
    total = float(d.sum())
    observed = abs(total)
    slack = 1e-9 * float(np.abs(d).sum())  # summation order: the observed assignment must count as a hit
    if m < 63 and 2**m <= n_permutations:
        hits, count = 0, 2**m
        for start in range(0, count, _CHUNK):
            codes = np.arange(start, min(count, start + _CHUNK), dtype=np.int64)
            bits = ((codes[:, None] >> np.arange(m, dtype=np.int64)) & 1).astype(np.float64)
            hits += int((np.abs(2.0 * (bits @ d) - total) >= observed - slack).sum())
        return hits / count, True
    # Each random byte flips 8 queries: the sum of the differences its set bits select is looked up in a
    # (256, bytes) table instead of multiplying a (permutations, queries) matrix of bits.
    width = (m + 7) // 8
    weights = np.zeros(width * 8)
    weights[:m] = d
    table = _BYTE_BITS @ weights.reshape(width, 8).T  # table[v, j]: sum of d over the set bits of v in byte j
    columns = np.arange(width)
    rng = np.random.default_rng(seed)
    hits, left = 0, n_permutations
    while left:
        rows = min(left, _CHUNK)
        chosen = table[rng.integers(0, 256, size=(rows, width), dtype=np.uint8), columns].sum(axis=1)
        hits += int((np.abs(2.0 * chosen - total) >= observed - slack).sum())
        left -= rows
    return (hits + 1) / (n_permutations + 1), False


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down), in the input order; NaN stays NaN and is not counted.

    Example:
        >>> holm([0.01, 0.04, 0.03]).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    out[order] = np.maximum.accumulate(scaled)
    return out


def _wins_losses_ties(d: np.ndarray) -> tuple[int, int, int]:
    wins = int((d > TIE_TOLERANCE).sum())
    losses = int((d < -TIE_TOLERANCE).sum())
    return wins, losses, int(d.size - wins - losses)


def paired_test(
    a: np.ndarray | Sequence[float],
    b: np.ndarray | Sequence[float],
    *,
    metric: str = "",
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = DEFAULT_SEED,
) -> PairedTest:
    """Both tests, the means and the wins / losses / ties of B against A on paired per-query values.

    Example:
        >>> r = paired_test([0.5, 0.0, 1.0, 0.2], [1.0, 0.0, 1.0, 0.7], metric="mrr@10")
        >>> round(r.delta, 6), (r.wins, r.losses, r.ties), r.p_randomization, r.exact
        (0.25, (2, 0, 2), 0.5, True)
    """
    a_arr, b_arr = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    d = _differences(a_arr, b_arr)
    keep = np.isfinite(a_arr) & np.isfinite(b_arr)
    mean_a = float(a_arr[keep].mean()) if d.size else math.nan
    mean_b = float(b_arr[keep].mean()) if d.size else math.nan
    t, p_t = paired_ttest(a_arr, b_arr)
    p_r, exact = randomization_test(a_arr, b_arr, n_permutations=n_permutations, seed=seed)
    wins, losses, ties = _wins_losses_ties(d)
    return PairedTest(
        metric=metric, n=int(d.size), mean_a=mean_a, mean_b=mean_b, delta=mean_b - mean_a, wins=wins,
        losses=losses, ties=ties, t=t, p_ttest=p_t, p_randomization=p_r, exact=exact, p_randomization_holm=p_r,
        p_ttest_holm=p_t,
    )  # fmt: skip


def compare_measures(
    a: Mapping[str, np.ndarray],
    b: Mapping[str, np.ndarray],
    *,
    metrics: Sequence[str] | None = None,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = DEFAULT_SEED,
) -> list[PairedTest]:
    """`paired_test` for each measure (default: every one both hold, A's order), Holm-adjusted over them.

    `a` and `b` are `{metric: per-query values}` in the same query order (`align` pairs two evaluations).

    Example:
        >>> a = {"mrr@10": np.array([0.0, 0.0, 0.0]), "hit@10": np.array([1.0, 0.0, 1.0])}
        >>> b = {"mrr@10": np.array([1.0, 1.0, 1.0]), "hit@10": np.array([1.0, 1.0, 1.0])}
        >>> [(r.metric, r.p_randomization, r.p_randomization_holm) for r in compare_measures(a, b)]
        [('mrr@10', 0.25, 0.5), ('hit@10', 1.0, 1.0)]
    """
    names = list(metrics) if metrics is not None else [m for m in a if m in b]
    missing = [m for m in names if m not in a or m not in b]
    if missing:
        raise KeyError(
            f"no per-query values for {', '.join(missing)} on both sides (A has {', '.join(a) or 'none'}; "
            f"B has {', '.join(b) or 'none'})"
        )
    tests = [paired_test(a[m], b[m], metric=m, n_permutations=n_permutations, seed=seed) for m in names]
    p_r = holm([r.p_randomization for r in tests])
    p_t = holm([r.p_ttest for r in tests])
    return [
        PairedTest(**{**r.__dict__, "p_randomization_holm": float(pr), "p_ttest_holm": float(pt)})
        for r, pr, pt in zip(tests, p_r, p_t, strict=True)
    ]


def align(
    ids_a: Sequence[str],
    values_a: Mapping[str, np.ndarray],
    ids_b: Sequence[str],
    values_b: Mapping[str, np.ndarray],
) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Two evaluations' per-query values on the queries both hold, in A's order.

    Returns:
        `(query_ids, a, b)`: the shared ids and each side's `{metric: values}` on them (measures both hold).

    Example:
        >>> ids, a, b = align(["q1", "q2"], {"mrr@10": np.array([1.0, 0.5])}, ["q2", "q3"], {"mrr@10": np.array([0.2, 1.0])})
        >>> ids, a["mrr@10"].tolist(), b["mrr@10"].tolist()
        (['q2'], [0.5], [0.2])
    """
    position_b = {q: i for i, q in enumerate(ids_b)}
    rows_a = [i for i, q in enumerate(ids_a) if q in position_b]
    shared = [ids_a[i] for i in rows_a]
    rows_b = [position_b[q] for q in shared]
    names = [m for m in values_a if m in values_b]
    index_a, index_b = np.asarray(rows_a, dtype=np.int64), np.asarray(rows_b, dtype=np.int64)
    return (
        shared,
        {m: np.asarray(values_a[m])[index_a] for m in names},
        {m: np.asarray(values_b[m])[index_b] for m in names},
    )

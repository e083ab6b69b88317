"""Paired significance tests: hand-computed cases, exact enumeration, scipy's t-test and ranx's p-values."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from hf_search_wandb.core.metrics.significance import (
    align,
    compare_measures,
    holm,
    paired_test,
    paired_ttest,
    randomization_test,
    t_two_sided_p,
)

RANX = json.loads((Path(__file__).parent / "data" / "ranx_reference.json").read_text())


def exact_sign_flip(a: np.ndarray, b: np.ndarray) -> float:
    """Every sign assignment enumerated by hand: the share with |mean| >= the observed |mean|."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    observed = abs(d.mean())
    hits = sum(
        abs((np.array(signs) * d).mean()) >= observed - 1e-12
        for signs in itertools.product([1, -1], repeat=d.size)
    )
    return hits / 2**d.size


def test_t_distribution_closed_forms() -> None:
    for t in (0.1, 1.0, 2.5, 12.0):
        assert t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-13)  # Cauchy
        assert t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-12)
    assert t_two_sided_p(0.0, 5) == 1.0 and t_two_sided_p(math.inf, 5) == 0.0


def test_paired_ttest_by_hand() -> None:
    # d = [1, 2, 3]: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 2 sqrt 3, df 2: p = 1 - t / sqrt(t^2 + 2)
    t, p = paired_ttest([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    assert t == pytest.approx(2 * math.sqrt(3))
    assert p == pytest.approx(1 - t / math.sqrt(14), rel=1e-12)


@pytest.mark.parametrize("n", [2, 5, 30, 300, 5000])
def test_paired_ttest_equals_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    a = rng.random(n)
    b = np.clip(a + rng.normal(0.03, 0.2, n), 0, 1)
    expected = stats.ttest_rel(b, a)
    t, p = paired_ttest(a, b)
    assert t == pytest.approx(float(expected.statistic), rel=1e-12)
    assert p == pytest.approx(float(expected.pvalue), rel=1e-10)


def test_edge_cases_say_no_difference_or_nothing_to_test() -> None:
    same = paired_test([0.5, 0.2, 1.0], [0.5, 0.2, 1.0])
    assert (same.p_ttest, same.p_randomization, same.delta, same.ties) == (1.0, 1.0, 0.0, 3)
    assert math.isnan(same.t)
    shift = paired_ttest([0.1, 0.2, 0.3], [0.2, 0.3, 0.4])
    assert shift[1] == pytest.approx(0.0, abs=1e-12) or math.isinf(shift[0])
    one = paired_test([0.0], [1.0])
    assert math.isnan(one.p_ttest) and one.p_randomization == 1.0 and one.exact  # 2 assignments, both extreme
    empty = paired_test([np.nan], [1.0])
    assert empty.n == 0 and math.isnan(empty.p_randomization)
    with pytest.raises(ValueError, match="pair them by query id"):
        paired_test([0.1, 0.2], [0.1])


def test_skipped_queries_are_left_out_of_the_pairs() -> None:
    r = paired_test([0.2, np.nan, 0.4, 0.0], [0.6, 1.0, np.nan, 0.0])
    assert r.n == 2 and r.mean_a == pytest.approx(0.1) and r.mean_b == pytest.approx(0.3)
    assert (r.wins, r.losses, r.ties) == (1, 0, 1)


@pytest.mark.parametrize("seed", range(6))
def test_randomization_exact_equals_hand_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 10
    a = rng.integers(0, 4, n) / 4
    b = rng.integers(0, 4, n) / 4
    p, exact = randomization_test(a, b, n_permutations=10_000)
    assert exact
    assert p == pytest.approx(exact_sign_flip(a, b), abs=1e-12)


def test_randomization_monte_carlo_agrees_with_the_exact_value() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.random(16), rng.random(16) + 0.15  # 65,536 assignments; 20,000 drawn
    exact, is_exact = randomization_test(a, b, n_permutations=2**16)
    sampled, sampled_exact = randomization_test(a, b, n_permutations=20_000, seed=3)
    assert is_exact and not sampled_exact
    assert abs(sampled - exact) < 4 * math.sqrt(exact * (1 - exact) / 20_000) + 1 / 20_000
    assert randomization_test(a, b, n_permutations=20_000, seed=3) == (sampled, False)  # fixed seed: same p


def test_holm_by_hand() -> None:
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.2]).tolist() == pytest.approx([0.5, 0.4])  # monotone: the larger p never drops below
    out = holm([0.02, np.nan, 0.9])
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == pytest.approx(0.9)


def test_compare_measures_adjusts_over_the_measures_tested() -> None:
    a = {"mrr@10": np.zeros(6), "hit@10": np.ones(6), "map": np.full(6, 0.5)}
    b = {"mrr@10": np.ones(6), "hit@10": np.ones(6), "map": np.array([1.0, 0.5, 0.5, 0.5, 0.5, 0.5])}
    tests = compare_measures(a, b)
    assert [t.metric for t in tests] == ["mrr@10", "hit@10", "map"]
    assert tests[0].p_randomization == pytest.approx(2 / 64)
    assert tests[0].p_randomization_holm == pytest.approx(min(1.0, 3 * 2 / 64))
    with pytest.raises(KeyError, match="ndcg@10"):
        compare_measures(a, b, metrics=["ndcg@10"])


def test_align_pairs_by_query_id() -> None:
    ids, a, b = align(["q1", "q2", "q3"], {"m": np.array([0.1, 0.2, 0.3]), "only_a": np.zeros(3)},
                      ["q3", "q1"], {"m": np.array([0.9, 0.7])})  # fmt: skip
    assert ids == ["q1", "q3"] and list(a) == ["m"]
    assert a["m"].tolist() == [0.1, 0.3] and b["m"].tolist() == [0.7, 0.9]


@pytest.mark.parametrize("case", RANX["cases"], ids=lambda c: c["name"])
def test_equals_ranx(case: dict[str, object]) -> None:
    """ranx 0.3.21 on the same per-query scores (tests/scripts/ranx_reference.py wrote them): the t-test exactly,
    the randomization test within Monte-Carlo error of both estimates (100,000 permutations each)."""
    a, b = np.array(case["a"]), np.array(case["b"])
    result = paired_test(a, b, n_permutations=100_000)
    assert result.p_ttest == pytest.approx(case["p_ttest"], rel=1e-10)
    p = case["p_fisher"]
    n = case["fisher_permutations"]
    assert abs(result.p_randomization - p) <= 4 * math.sqrt(max(p * (1 - p), 1 / n) * 2 / n) + 2 / n

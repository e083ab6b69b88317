"""`hf_search_wandb.core.metrics` equals trec_eval (through pytrec_eval) and fails clearly on bad input."""

from __future__ import annotations

import logging
import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_search_wandb.core.metrics import (
    DEFAULT_METRICS,
    Metric,
    parse_metric,
    parse_metrics,
    ranked_report,
    run_report,
    score_ranked,
    score_run,
)

pytrec_eval = pytest.importorskip("pytrec_eval")

TOL = 1e-6
# Our name -> pytrec_eval measure (the run is cut to `depth` first for every measure).
TREC = {
    "ndcg": "ndcg_cut_{k}",
    "recall": "recall_{k}",
    "precision": "P_{k}",
    "hit": "success_{k}",
    "map": "map_cut_{k}",
}
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cut(run: dict[str, dict[str, float]], k: int) -> dict[str, dict[str, float]]:
    """The top k of each query, ordered as trec_eval orders (score desc, doc id desc)."""
    return {
        q: dict(sorted(d.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:k]) for q, d in run.items()
    }


def _trec(qrels: dict, run: dict, measures: set[str]) -> dict[str, dict[str, float]]:
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


@st.composite
def judged_runs(draw: st.DrawFn, *, ties: bool = False) -> tuple[dict, dict]:
    """Random qrels with grades 0-3 (judged non-relevant docs, queries without relevant docs) and a run
    that mixes judged and unjudged docs. Distinct scores unless `ties`."""
    n_queries = draw(st.integers(1, 5))
    id_alphabet = "abZé9" if ties else "abcdefgh"
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(n_queries):
        pool = draw(
            st.lists(st.text(id_alphabet, min_size=1, max_size=3), min_size=1, max_size=25, unique=True)
        )
        judged = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=len(pool), unique=True))
        qrels[f"q{q}"] = {d: draw(st.sampled_from([0, 0, 1, 1, 2, 3])) for d in judged}
        retrieved = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=len(pool), unique=True))
        if ties:
            scores = draw(
                st.lists(st.sampled_from([0.25, 0.5, 1.0]), min_size=len(retrieved), max_size=len(retrieved))
            )
        else:
            scores = draw(
                st.lists(
                    st.floats(-10, 10, allow_nan=False, width=32),
                    min_size=len(retrieved),
                    max_size=len(retrieved),
                    unique=True,
                )
            )
        run[f"q{q}"] = dict(zip(retrieved, scores, strict=True))
    if not any(v > 0 for grades in qrels.values() for v in grades.values()):
        first = next(iter(qrels["q0"]))
        qrels["q0"][first] = 1  # at least one relevant doc somewhere, else score_run raises (tested below)
    return qrels, run


def _evaluated(qrels: dict) -> list[str]:
    return [q for q, grades in qrels.items() if any(v > 0 for v in grades.values())]


@SETTINGS
@given(
    data=judged_runs(),
    ks=st.lists(st.integers(1, 30), min_size=1, max_size=3, unique=True),
    depth=st.integers(1, 30),
)
def test_every_metric_equals_trec_eval_on_distinct_scores(
    data: tuple[dict, dict], ks: list[int], depth: int
) -> None:
    qrels, run = data
    ks = [k for k in ks if k <= depth] or [depth]
    names = [f"{m}@{k}" for m in ("mrr", *TREC) for k in ks] + ["map"]
    ours = score_run(qrels, run, metrics=names, depth=depth, per_query=True)
    cut_run = _cut(run, depth)
    cut_list = ",".join(map(str, ks))
    ref = _trec(
        qrels,
        cut_run,
        {
            "map",
            f"ndcg_cut.{cut_list}",
            f"recall.{cut_list}",
            f"P.{cut_list}",
            f"success.{cut_list}",
            f"map_cut.{cut_list}",
        },
    )
    assert set(ours) == set(_evaluated(qrels))
    for q, values in ours.items():
        assert values["map"] == pytest.approx(ref[q]["map"], abs=TOL)
        for k in ks:
            rr = _trec(qrels, _cut(cut_run, k), {"recip_rank"})[q]["recip_rank"]
            assert values[f"mrr@{k}"] == pytest.approx(rr, abs=TOL)
            for ours_name, trec_name in TREC.items():
                assert values[f"{ours_name}@{k}"] == pytest.approx(ref[q][trec_name.format(k=k)], abs=TOL)
    means = score_run(qrels, run, metrics=names, depth=depth)
    for name in names:
        assert means[name] == pytest.approx(float(np.mean([ours[q][name] for q in ours])), abs=1e-12)


@SETTINGS
@given(data=judged_runs(ties=True), k=st.integers(1, 10), seed=st.integers(0, 2**16))
def test_ties_follow_trec_eval_score_then_doc_id_descending(
    data: tuple[dict, dict], k: int, seed: int
) -> None:
    """Many equal scores and doc ids like 'a', 'Z', 'é9': trec_eval sorts by score descending and then
    by doc id descending (strcmp); the metrics agree with it and do not depend on the run's dict order."""
    qrels, run = data
    depth = max(k, *(len(d) + 1 for d in run.values()))  # no cut: pytrec_eval sees and sorts the whole run
    names = [f"{m}@{k}" for m in TREC] + [f"mrr@{depth}", "map"]
    ours = score_run(qrels, run, metrics=names, depth=depth, per_query=True)
    ref = _trec(
        qrels,
        run,
        {"map", "recip_rank", f"ndcg_cut.{k}", f"recall.{k}", f"P.{k}", f"success.{k}", f"map_cut.{k}"},
    )
    for q, values in ours.items():
        assert values[f"mrr@{depth}"] == pytest.approx(ref[q]["recip_rank"], abs=TOL)
        assert values["map"] == pytest.approx(ref[q]["map"], abs=TOL)
        for ours_name, trec_name in TREC.items():
            assert values[f"{ours_name}@{k}"] == pytest.approx(ref[q][trec_name.format(k=k)], abs=TOL)
    rng = random.Random(seed)
    shuffled = {q: dict(rng.sample(list(d.items()), len(d))) for q, d in reversed(list(run.items()))}
    assert score_run(qrels, shuffled, metrics=names, depth=depth, per_query=True) == ours


@SETTINGS
@given(data=judged_runs(), depth=st.integers(1, 30))
def test_score_ranked_is_the_kernel_of_score_run(data: tuple[dict, dict], depth: int) -> None:
    """The evaluator calls score_ranked on its own top-k arrays: same numbers as score_run on the run."""
    qrels, run = data
    metrics = [f"mrr@{depth}", f"ndcg@{depth}", "map", f"hit@{depth}", f"recall@{depth}", "precision@1"]
    query_ids = list(qrels)
    ranked = np.zeros((len(query_ids), depth), dtype=np.int64)
    for i, q in enumerate(query_ids):
        for j, doc in enumerate(_cut(run, depth).get(q, {})):
            ranked[i, j] = qrels[q].get(doc, 0)
    judged = [np.array(list(qrels[q].values())) for q in query_ids]
    per_query = score_ranked(ranked, judged, metrics=metrics, depth=depth, per_query=True)
    by_id = score_run(qrels, run, metrics=metrics, depth=depth, per_query=True)
    assert score_ranked(ranked, judged, metrics=metrics, depth=depth) == pytest.approx(
        score_run(qrels, run, metrics=metrics, depth=depth), abs=1e-12
    )
    for i, q in enumerate(query_ids):
        for name in metrics:
            if q in by_id:
                assert per_query[name][i] == pytest.approx(by_id[q][name], abs=1e-12)
            else:
                assert math.isnan(per_query[name][i])  # skipped: no relevant doc


# --- hand-computed -----------------------------------------------------------------------------------

QRELS = {"q1": {"d1": 2, "d2": 1, "d5": 0}}
RUN = {
    "q1": {"d3": 0.9, "d1": 0.8, "d4": 0.7, "d2": 0.6, "d5": 0.5}
}  # relevant at ranks 2 (grade 2) and 4 (grade 1)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mrr@1", 0.0),
        ("mrr@10", 1 / 2),
        ("hit@1", 0.0),
        ("hit@2", 1.0),
        ("recall@2", 1 / 2),
        ("recall@4", 1.0),
        ("precision@2", 1 / 2),
        ("precision@10", 2 / 10),  # trec_eval P_k divides by k even when fewer docs are retrieved
        ("ndcg@10", (2 / math.log2(3) + 1 / math.log2(5)) / (2 / math.log2(2) + 1 / math.log2(3))),
        ("ndcg@1", 0.0),
        ("map", (1 / 2 + 2 / 4) / 2),
        ("map@2", (1 / 2) / 2),  # denominator: all relevant docs, not min(k, R)
    ],
)
def test_hand_computed_single_query(name: str, expected: float) -> None:
    assert score_run(QRELS, RUN, metrics=[name], depth=10)[name] == pytest.approx(expected, abs=1e-12)


def test_depth_cuts_the_run_before_map() -> None:
    # depth 3 keeps d3, d1, d4: only d1 found; AP = (1/2) / 2 relevant docs
    assert score_run(QRELS, RUN, metrics=["map"], depth=3) == {"map": pytest.approx(0.25)}


def test_equal_scores_rank_the_larger_doc_id_first() -> None:
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0, "B": 1.0}}  # trec_eval order: b, a, B (strcmp descending)
    assert score_run(qrels, run, metrics=["mrr@10"]) == {"mrr@10": 0.5}


def test_queries_without_relevant_docs_are_skipped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 0}, "q3": {}}
    run = {"q1": {"d1": 1.0}, "q2": {"d2": 1.0}, "q3": {"d9": 1.0}}
    with caplog.at_level(logging.WARNING, logger="hf_search_wandb.core.metrics"):
        report = run_report(qrels, run, metrics=["mrr@10"])
    assert report.metrics == {"mrr@10": 1.0}
    assert (report.num_queries, report.num_skipped) == (1, 2)
    assert report.query_ids == ["q1", "q2", "q3"]
    assert "2 of 3 queries have no relevant document" in caplog.text
    assert score_run(qrels, run, metrics=["mrr@10"], per_query=True) == {"q1": {"mrr@10": 1.0}}


def test_qrels_query_missing_from_the_run_scores_zero() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    assert score_run(qrels, {"q1": {"d1": 1.0}}, metrics=["hit@10"]) == {"hit@10": 0.5}


def test_run_queries_without_qrels_are_ignored() -> None:
    qrels = {"q1": {"d1": 1}}
    assert score_run(qrels, {"q1": {"d1": 1.0}, "other": {"x": 1.0}}, metrics=["hit@10"]) == {"hit@10": 1.0}


def test_graded_ndcg_uses_the_ideal_order_of_all_judged_docs() -> None:
    qrels = {"q": {"a": 1, "b": 3, "c": 2}}
    run = {"q": {"a": 3.0, "b": 2.0, "x": 1.0}}  # grades by rank: 1, 3, 0 (c not retrieved)
    dcg = 1 / math.log2(2) + 3 / math.log2(3)
    idcg = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert score_run(qrels, run, metrics=["ndcg@3"])["ndcg@3"] == pytest.approx(dcg / idcg)


def test_defaults_are_the_spec_val_metrics() -> None:
    assert DEFAULT_METRICS == ("mrr@10", "ndcg@10", "recall@100", "map", "hit@10")
    assert set(score_run(QRELS, RUN)) == set(DEFAULT_METRICS)


def test_score_ranked_per_query_and_report() -> None:
    ranked = np.array([[0, 2, 0], [1, 0, 0], [0, 0, 0]])
    judged = [np.array([2, 1, 0]), np.array([1]), np.array([0, 0])]
    per_query = score_ranked(ranked, judged, metrics=["mrr@3", "recall@3"], depth=3, per_query=True)
    np.testing.assert_allclose(per_query["mrr@3"], [0.5, 1.0, np.nan])
    np.testing.assert_allclose(per_query["recall@3"], [0.5, 1.0, np.nan])
    report = ranked_report(ranked, judged, metrics=["mrr@3"], depth=3)
    assert report.evaluated.tolist() == [True, True, False]
    assert report.metrics == {"mrr@3": 0.75}


def test_ten_thousand_queries_by_depth_one_thousand() -> None:
    """Shape and sanity at the size the evaluator uses (speed is measured in benchmarks/bench_metrics.py)."""
    ranked = np.zeros((10_000, 1_000), dtype=np.int64)
    ranked[:, 0] = 1
    judged = [np.array([1, 1])] * 10_000
    result = score_ranked(ranked, judged, metrics=["mrr@10", "recall@1000", "map"], depth=1_000)
    assert result == pytest.approx({"mrr@10": 1.0, "recall@1000": 0.5, "map": 0.5})


# --- names and errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("mrr@10", Metric("mrr@10", "mrr", 10)),
        (" NDCG@5 ", Metric("ndcg@5", "ndcg", 5)),
        ("map", Metric("map", "map", None)),
        ("map@1000", Metric("map@1000", "map", 1000)),
        ("precision@1", Metric("precision@1", "precision", 1)),
        ("hit@3", Metric("hit@3", "hit", 3)),
        ("recall@100", Metric("recall@100", "recall", 100)),
    ],
)
def test_parse_metric_accepts_every_form(name: str, parsed: Metric) -> None:
    assert parse_metric(name) == parsed


@pytest.mark.parametrize("name", ["mrr@ten", "ndgc@10", "map@", "f1@10", "", "mrr10"])
def test_unknown_metric_lists_the_valid_forms(name: str) -> None:
    with pytest.raises(
        ValueError, match=r"Valid forms: mrr@k, ndcg@k, recall@k, precision@k, hit@k, map, map@k"
    ):
        parse_metric(name)


def test_parse_metrics_checks_the_list_against_depth() -> None:
    assert [m.name for m in parse_metrics(("MRR@10", "map", "recall@100"), depth=100)] == [
        "mrr@10",
        "map",
        "recall@100",
    ]
    with pytest.raises(ValueError, match="No metrics requested"):
        parse_metrics([], depth=10)
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        parse_metrics(["map"], depth=0)
    with pytest.raises(ValueError, match="ndcg@20 needs the top 20 documents but depth is 10"):
        parse_metrics(["ndcg@20"], depth=10)


def test_metric_without_cut_off_says_how_to_write_it() -> None:
    with pytest.raises(ValueError, match=r"needs a cut-off, e\.g\. 'ndcg@10'"):
        parse_metric("ndcg")


@pytest.mark.parametrize("name", ["mrr@0", "ndcg@-3", "map@0"])
def test_cut_off_below_one_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=r"k must be an integer >= 1"):
        score_run(QRELS, RUN, metrics=[name])


def test_cut_off_beyond_depth_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"recall@1000 needs the top 1000 documents but depth is 100"):
        score_run(QRELS, RUN, metrics=["recall@1000"], depth=100)


def test_empty_qrels_is_rejected() -> None:
    with pytest.raises(ValueError, match="qrels is empty"):
        score_run({}, RUN)


def test_run_without_common_query_says_how_many_ids_and_shows_examples() -> None:
    qrels = {str(i): {"d": 1} for i in range(5)}
    run = {f"Q{i}": {"d": 1.0} for i in range(2)}
    with pytest.raises(
        ValueError,
        match=r"0 matched\).*qrels have 5 ids, e\.g\. \['0', '1', '2', \.\.\.\]; the run has 2, e\.g\. \['Q0', 'Q1'\]",
    ):
        score_run(qrels, run)


@pytest.mark.parametrize("bad", ["high", None, [0.5]])
def test_non_numeric_scores_are_rejected(bad: object) -> None:
    with pytest.raises(TypeError, match=r"run\['q1'\] has a non-numeric score"):
        score_run(QRELS, {"q1": {"d1": 0.5, "d2": bad}})  # type: ignore[dict-item]


@pytest.mark.parametrize("bad", ["1", "high", None])
def test_non_numeric_grades_are_rejected(bad: object) -> None:
    with pytest.raises(TypeError, match=r"qrels\['q1'\] has a non-numeric relevance grade"):
        score_run({"q1": {"d1": 1, "d2": bad}}, RUN)  # type: ignore[dict-item]


def test_nan_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-finite score"):
        score_run(QRELS, {"q1": {"d1": 0.5, "d2": float("nan")}})


def test_no_relevant_doc_anywhere_is_rejected() -> None:
    with pytest.raises(ValueError, match="None of the 1 queries has a relevant document"):
        score_run({"q": {"d": 0}}, {"q": {"d": 1.0}})


def test_score_ranked_shape_errors() -> None:
    with pytest.raises(ValueError, match="one array of judged grades per query"):
        score_ranked(np.zeros((2, 3)), [np.array([1])])
    with pytest.raises(ValueError, match="must be 2-D"):
        score_ranked(np.zeros(3), [np.array([1])])
    with pytest.raises(ValueError, match="must describe the same judgments"):
        score_ranked(np.array([[1, 1]]), [np.array([1])], depth=2, metrics=["hit@1"])

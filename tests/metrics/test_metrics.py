"""`hf_search_wandb.core.metrics.scoring` equals trec_eval (through pytrec_eval) and fails clearly on bad input."""

from __future__ import annotations

import logging
import math
import random
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_search_wandb.core.metrics.measures import MEASURES, Metric, parse_metric, parse_metrics
from hf_search_wandb.core.metrics.scoring import (
    DEFAULT_METRICS,
    ranked_report,
    run_report,
    score_ranked,
    score_run,
)

pytrec_eval = pytest.importorskip("pytrec_eval")

TOL = 1e-6
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cut(run: dict[str, dict[str, float]], k: int) -> dict[str, dict[str, float]]:
    """The top k of each query, ordered as trec_eval orders (score desc, doc id desc)."""
    return {
        q: dict(sorted(d.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:k]) for q, d in run.items()
    }


def _trec(qrels: dict, run: dict, measures: set[str]) -> dict[str, dict[str, float]]:
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


def _names(ks: list[int]) -> list[str]:
    """Every measure of the table: at each cut-off in ks when it takes one, and without one when it can."""
    names = [f"{m.name}@{k}" for m in MEASURES.values() if m.cutoff != "none" for k in ks]
    return names + [m.name for m in MEASURES.values() if m.cutoff != "required"]


def _reference(qrels: dict, run: dict, names: list[str], depth: int) -> dict[str, dict[str, float]]:
    """pytrec_eval's value of each metric name (the trec_eval measure the table declares for it), per query,
    on the run cut to the metric's k (to `depth` for a metric without one)."""
    by_cut: dict[int, dict[str, str]] = {}  # cut -> {our name: pytrec_eval result key}
    for name in names:
        metric = parse_metric(name)
        trec_name = metric.spec.trec_eval_name(metric.k)
        assert trec_name is not None, f"{name}: the table declares no trec_eval measure"
        by_cut.setdefault(metric.k or depth, {})[metric.name] = trec_name
    out: dict[str, dict[str, float]] = {}
    for cut, wanted in by_cut.items():
        # pytrec_eval is asked for `ndcg_cut.10` and answers `ndcg_cut_10`
        asked = {re.sub(r"_(\d+)$", r".\1", trec) for trec in wanted.values()}
        result = _trec(qrels, _cut(run, min(cut, depth)), asked)
        for q, values in result.items():
            out.setdefault(q, {}).update({ours: values[trec] for ours, trec in wanted.items()})
    return out


@st.composite
def judged_runs(draw: st.DrawFn, *, ties: bool = False) -> tuple[dict, dict]:
    """Random qrels with grades -1 to 3 (judged non-relevant docs, a negative grade that trec_eval takes as
    "in the pool but unjudged", queries without relevant docs) and a run that mixes judged and unjudged
    docs. Distinct scores unless `ties`."""
    n_queries = draw(st.integers(1, 5))
    id_alphabet = "abZé9" if ties else "abcdefgh"
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(n_queries):
        pool = draw(
            st.lists(st.text(id_alphabet, min_size=1, max_size=3), min_size=1, max_size=25, unique=True)
        )
        judged = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=len(pool), unique=True))
        qrels[f"q{q}"] = {d: draw(st.sampled_from([-1, 0, 0, 0, 1, 1, 2, 3])) for d in judged}
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


def test_every_measure_of_the_table_is_checked_here() -> None:
    """The parity tests below take their names from MEASURES: a new measure is checked against its declared
    trec_eval measure without touching them. rprec and bpref were added that way."""
    assert {"mrr", "ndcg", "recall", "precision", "hit", "map", "rprec", "bpref"} <= set(MEASURES)
    names = _names([3])
    assert {"rprec", "bpref", "map", "map@3", "ndcg@3"} <= set(names)
    for name in names:
        metric = parse_metric(name)
        assert metric.spec.trec_eval_name(metric.k) is not None


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
    names = _names(ks)
    ours = score_run(qrels, run, metrics=names, depth=depth, per_query=True)
    ref = _reference(qrels, run, names, depth)
    assert set(ours) == set(_evaluated(qrels))
    for q, values in ours.items():
        for name in names:
            assert values[name] == pytest.approx(ref[q][name], abs=TOL), name
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
    names = _names([k])
    ours = score_run(qrels, run, metrics=names, depth=depth, per_query=True)
    ref = _reference(qrels, run, names, depth)
    for q, values in ours.items():
        for name in names:
            assert values[name] == pytest.approx(ref[q][name], abs=TOL), name
    rng = random.Random(seed)
    shuffled = {q: dict(rng.sample(list(d.items()), len(d))) for q, d in reversed(list(run.items()))}
    assert score_run(qrels, shuffled, metrics=names, depth=depth, per_query=True) == ours


@SETTINGS
@given(data=judged_runs(), depth=st.integers(1, 30))
def test_score_ranked_is_the_kernel_of_score_run(data: tuple[dict, dict], depth: int) -> None:
    """The evaluator calls score_ranked on its own top-k arrays: same numbers as score_run on the run."""
    qrels, run = data
    metrics = _names([depth, 1])
    query_ids = list(qrels)
    ranked = np.zeros((len(query_ids), depth), dtype=np.int64)
    in_qrels = np.zeros((len(query_ids), depth), dtype=bool)
    for i, q in enumerate(query_ids):
        for j, doc in enumerate(_cut(run, depth).get(q, {})):
            ranked[i, j] = qrels[q].get(doc, 0)
            in_qrels[i, j] = doc in qrels[q]
    judged = [np.array(list(qrels[q].values())) for q in query_ids]
    per_query = score_ranked(ranked, judged, metrics=metrics, depth=depth, per_query=True, ranked_judged=in_qrels)
    by_id = score_run(qrels, run, metrics=metrics, depth=depth, per_query=True)
    assert score_ranked(ranked, judged, metrics=metrics, depth=depth, ranked_judged=in_qrels) == pytest.approx(
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
        ("rprec", 1 / 2),  # top R = 2: d3, d1
        ("bpref", 1.0),  # the only judged non-relevant doc (d5) is below both relevant ones; d3, d4 unjudged
    ],
)
def test_hand_computed_single_query(name: str, expected: float) -> None:
    assert score_run(QRELS, RUN, metrics=[name], depth=10)[name] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("qrels", "expected"),
    [
        # R = 2, N = 2: "a" has 1 judged non-relevant doc above it -> 1 - 1/2; "d" has 2 -> 1 - 2/2
        ({"q": {"a": 1, "b": 0, "c": 0, "d": 1}}, (0.5 + 0.0) / 2),
        # "b" unjudged: it no longer counts, and N = 1 -> "a" 1, "d" 1 - 1/min(1, 2)
        ({"q": {"a": 1, "c": 0, "d": 1}}, (1.0 + 0.0) / 2),
        # R = 2, N = 5: the denominator is min(N, R) = 2, and the count above a hit is capped at R
        ({"q": {"a": 1, "b": 0, "c": 0, "d": 1, "n1": 0, "n2": 0, "n3": 0}}, (0.5 + 0.0) / 2),
        # a relevant doc that is not retrieved adds 0 (still divided by R = 3)
        ({"q": {"a": 1, "b": 0, "c": 0, "d": 1, "z": 2}}, (0.5 + 0.0) / 3),
    ],
)
def test_bpref_counts_judged_non_relevant_docs_above_each_relevant_one(qrels: dict, expected: float) -> None:
    run = {"q": {"b": 0.9, "a": 0.8, "x": 0.7, "c": 0.6, "d": 0.5}}  # x is never judged
    assert score_run(qrels, run, metrics=["bpref"])["bpref"] == pytest.approx(expected, abs=1e-12)


def test_rprec_looks_at_the_top_r_documents() -> None:
    qrels = {"q": {"a": 1, "b": 1, "c": 1}}
    run = {"q": {"x": 0.9, "a": 0.8, "b": 0.7, "c": 0.6}}  # top 3: x, a, b
    assert score_run(qrels, run, metrics=["rprec"]) == {"rprec": pytest.approx(2 / 3)}
    # fewer than R documents retrieved: still divided by R (trec_eval Rprec)
    assert score_run(qrels, {"q": {"a": 1.0}}, metrics=["rprec"]) == {"rprec": pytest.approx(1 / 3)}


def test_bpref_in_score_ranked_needs_to_know_which_ranks_are_judged() -> None:
    ranked = np.array([[0, 1, 0]])
    judged = [np.array([1, 0])]  # one relevant and one judged non-relevant doc
    with pytest.raises(ValueError, match=r"bpref needs to tell judged non-relevant documents .* ranked_judged="):
        score_ranked(ranked, judged, metrics=["bpref"], depth=3)
    assert score_ranked(ranked, judged, metrics=["bpref"], depth=3, ranked_judged=np.array([[True, True, False]])) == {
        "bpref": 0.0
    }
    assert score_ranked(ranked, judged, metrics=["bpref"], depth=3, ranked_judged=np.array([[False, True, True]])) == {
        "bpref": 1.0
    }
    # the other measures need no mask, and ignore it
    assert score_ranked(ranked, judged, metrics=["mrr@3"], depth=3) == {"mrr@3": 0.5}
    with pytest.raises(ValueError, match=r"ranked_judged has shape \(1, 2\) but ranked_relevance has \(1, 3\)"):
        score_ranked(ranked, judged, metrics=["bpref"], depth=3, ranked_judged=np.ones((1, 2), dtype=bool))
    with pytest.raises(TypeError, match="ranked_judged must hold booleans"):
        score_ranked(ranked, judged, metrics=["bpref"], depth=3, ranked_judged=np.ones((1, 3)))
    with pytest.raises(ValueError, match="ranked_judged is False at a rank whose grade is > 0"):
        score_ranked(ranked, judged, metrics=["bpref"], depth=3, ranked_judged=np.zeros((1, 3), dtype=bool))


def test_depth_cuts_the_run_before_map() -> None:
    # depth 3 keeps d3, d1, d4: only d1 found; AP = (1/2) / 2 relevant docs
    assert score_run(QRELS, RUN, metrics=["map"], depth=3) == {"map": pytest.approx(0.25)}


def test_equal_scores_rank_the_larger_doc_id_first() -> None:
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 1.0, "b": 1.0, "B": 1.0}}  # trec_eval order: b, a, B (strcmp descending)
    assert score_run(qrels, run, metrics=["mrr@10"]) == {"mrr@10": 0.5}


def test_integer_ids_are_read_as_text_like_trec_eval() -> None:
    """Ids from a DataFrame column are often ints; trec_eval reads every id as text, so doc 9 ranks above the
    tied doc 10 ('9' > '10') and query 1 of the qrels is query '1' of the run."""
    qrels = {1: {9: 1, 100: 2}, 2: {np.int64(5): 1}}
    run = {"1": {"9": 0.5, "10": 0.5, "100": 0.2}, 2: {5: 0.1, 50: 0.1, 6: 0.3}}
    text_qrels = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    text_run = {str(q): {str(d): s for d, s in docs.items()} for q, docs in run.items()}
    names = ["mrr@10", "ndcg@10", "map", "precision@2"]
    ours = score_run(qrels, run, metrics=names, per_query=True)
    assert ours == score_run(text_qrels, text_run, metrics=names, per_query=True)
    assert ours["1"]["mrr@10"] == 1.0  # '9' before '10'; numerically 10 would come first (mrr 0.5)
    ref = _reference(text_qrels, text_run, names, depth=100)
    for q, values in ours.items():
        for name in names:
            assert values[name] == pytest.approx(ref[q][name], abs=TOL), (q, name)


@pytest.mark.parametrize(
    ("qrels", "run", "message"),
    [
        ({1: {"d": 1}, "1": {"d": 1}}, {"1": {"d": 1.0}}, "qrels: ids 1 and '1' are the same id"),
        ({"q": {"7": 1}}, {"q": {7: 1.0, "7": 0.5}}, "run['q']: ids 7 and '7' are the same id"),
    ],
)
def test_ids_that_collide_as_text_are_refused(qrels: dict, run: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        score_run(qrels, run)


def test_float_ids_are_refused_with_the_fix() -> None:
    """A float id (1.0 read from a table) would be the text '1.0' and silently match nothing."""
    with pytest.raises(TypeError, match=r"str\(int\(x\)\)"):
        score_run({1.0: {"d": 1}}, {"1": {"d": 1.0}})


def test_queries_without_relevant_docs_are_skipped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 0}, "q3": {}}
    run = {"q1": {"d1": 1.0}, "q2": {"d2": 1.0}, "q3": {"d9": 1.0}}
    with caplog.at_level(logging.WARNING, logger="hf_search_wandb.core.metrics.scoring"):
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
        ("Rprec", Metric("rprec", "rprec", None)),
        ("bpref", Metric("bpref", "bpref", None)),
    ],
)
def test_parse_metric_accepts_every_form(name: str, parsed: Metric) -> None:
    assert parse_metric(name) == parsed


@pytest.mark.parametrize("name", ["mrr@ten", "ndgc@10", "map@", "f1@10", "", "mrr10"])
def test_unknown_metric_lists_the_valid_forms(name: str) -> None:
    with pytest.raises(
        ValueError, match=r"Valid forms: mrr@k, ndcg@k, recall@k, precision@k, hit@k, map, map@k, rprec, bpref"
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


@pytest.mark.parametrize("name", ["rprec@10", "bpref@5"])
def test_metric_that_takes_no_cut_off_says_how_to_write_it(name: str) -> None:
    with pytest.raises(ValueError, match=rf"takes no cut-off: write '{name.split('@')[0]}'"):
        parse_metric(name)


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

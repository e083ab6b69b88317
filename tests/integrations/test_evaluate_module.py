"""The `evaluate` metric module: loaded offline with `evaluate.load(path)`, equal to `score_run` to 1e-9."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest

from hf_search_wandb import evaluate_module_path, load_evaluate_metric, score_run

METRICS = ["mrr@10", "ndcg@10", "recall@100", "map", "hit@10", "precision@5", "ndcg@3"]


@pytest.fixture(scope="module")
def run_and_qrels():
    rng = np.random.default_rng(7)
    docs = [f"d{i}" for i in range(60)]
    run, qrels = {}, {}
    for q in range(80):
        picked = rng.choice(len(docs), 40, replace=False)
        scores = np.round(rng.normal(size=40), 2)  # rounded: ties, broken the trec_eval way
        run[f"q{q}"] = {docs[i]: float(s) for i, s in zip(picked, scores, strict=True)}
        judged = rng.choice(len(docs), 5, replace=False)
        qrels[f"q{q}"] = {docs[i]: int(rng.integers(0, 3)) for i in judged}
    qrels["q_unretrieved"] = {"d1": 1}  # in the qrels, not in the run: scores 0
    return run, qrels


def test_evaluate_load_of_the_packaged_module_equals_score_run(run_and_qrels) -> None:
    run, qrels = run_and_qrels
    metric = evaluate.load(evaluate_module_path())
    assert metric.name == "retrieval_metrics"
    got = metric.compute(predictions=run, references=qrels, metrics=METRICS)
    expected = score_run(qrels, run, metrics=METRICS)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9)
    per_query = metric.compute(predictions=run, references=qrels, metrics=["ndcg@10"], per_query=True)
    expected_per_query = score_run(qrels, run, metrics=["ndcg@10"], per_query=True)
    assert per_query.keys() == expected_per_query.keys()
    for qid, values in expected_per_query.items():
        assert per_query[qid]["ndcg@10"] == pytest.approx(values["ndcg@10"], abs=1e-9)


def test_trec_eval_module_columns_and_batches_give_the_same(run_and_qrels) -> None:
    run, qrels = run_and_qrels
    expected = score_run(qrels, run, metrics=METRICS)
    metric = load_evaluate_metric()
    # the Hub trec_eval module's column layout (int query ids, q0 / rank / system columns are ignored)
    as_columns = {"query": [], "q0": [], "docid": [], "rank": [], "score": [], "system": []}
    for qid, docs in run.items():
        for rank, (doc_id, score) in enumerate(sorted(docs.items(), key=lambda kv: -kv[1]), 1):
            for key, value in zip(as_columns, (qid, "q0", doc_id, rank, score, "sys"), strict=True):
                as_columns[key].append(value)
    qrel_columns = {"query": [], "q0": [], "docid": [], "rel": []}
    for qid, docs in qrels.items():
        for doc_id, rel in docs.items():
            for key, value in zip(qrel_columns, (qid, "q0", doc_id, rel), strict=True):
                qrel_columns[key].append(value)
    got = metric.compute(predictions=[as_columns], references=[qrel_columns], metrics=METRICS)
    assert got == pytest.approx(expected, abs=1e-9)
    # streamed in batches of queries: their union is scored
    qids = list(qrels)
    for start in range(0, len(qids), 25):
        part = qids[start : start + 25]
        metric.add_batch(predictions={q: run[q] for q in part if q in run}, references={q: qrels[q] for q in part})
    assert metric.compute(metrics=METRICS) == pytest.approx(expected, abs=1e-9)


def test_bad_input_says_what_shape_is_expected() -> None:
    metric = load_evaluate_metric()
    with pytest.raises(TypeError, match=r"expected \{query_id: \{doc_id: score\}\}"):
        metric.compute(predictions={"q1": [0.5]}, references={"q1": {"d1": 1}})
    with pytest.raises(ValueError, match="different lengths"):
        metric.compute(predictions={"query": ["q1"], "docid": ["d1", "d2"], "score": [1.0]},
                       references={"q1": {"d1": 1}})

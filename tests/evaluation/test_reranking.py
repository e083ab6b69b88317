"""RerankingEvaluator: trec_eval-exact metrics of the reranked list and the first stage, every candidate
source, scores equal to CrossEncoder.predict, tokenisation once, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hf_search_wandb.core.data.candidates import (
    bm25_candidates,
    candidates_from_run,
    read_trec_run,
    write_trec_run,
)
from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
from hf_search_wandb.core.evaluation.results import RerankingResult
from hf_search_wandb.core.metrics.scoring import score_run
from hf_search_wandb.core.models.cross_encoder import PairScorer
from tests.helpers.synthetic import synthetic_data
from tests.helpers.tiny_models import WORDS, make_tiny_cross_encoder

METRICS = ["mrr@10", "ndcg@10", "recall@20", "map", "hit@10", "precision@5"]
TREC = {"mrr@10": "recip_rank", "ndcg@10": "ndcg_cut_10", "recall@20": "recall_20", "map": "map",
        "precision@5": "P_5"}  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return synthetic_data(WORDS)


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory):
    return make_tiny_cross_encoder(tmp_path_factory.mktemp("ce"))


@pytest.fixture(scope="module")
def evaluator(data):
    queries, corpus, qrels = data
    return RerankingEvaluator(queries, corpus, qrels, depth=20, metrics=METRICS)


def _trec_eval(qrels, run, measures):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(measures)).evaluate(run)
    # trec_eval -c: queries of the qrels without a run line score 0
    return {m: float(np.mean([per_query.get(q, {}).get(m, 0.0) for q in qrels])) for m in measures}


def test_reranked_and_first_stage_metrics_equal_trec_eval(evaluator, cross_encoder, data):
    result = evaluator.evaluate(cross_encoder)
    assert isinstance(result, RerankingResult)
    qrels = evaluator.qrels
    reranked = _trec_eval(qrels, result.run(), TREC.values())
    first = _trec_eval(qrels, result.first_stage_run(), TREC.values())
    top10 = {q: dict(d) for q, d in candidates_from_run(result.run(), 10).items()}  # recip_rank is uncut
    reranked["recip_rank"] = _trec_eval(qrels, top10, ["recip_rank"])["recip_rank"]
    top10 = {q: dict(d) for q, d in candidates_from_run(result.first_stage_run(), 10).items()}
    first["recip_rank"] = _trec_eval(qrels, top10, ["recip_rank"])["recip_rank"]
    for ours, trec in TREC.items():
        assert result.metrics[ours] == pytest.approx(reranked[trec], abs=1e-6), ours
        assert result.metrics[f"first_stage/{ours}"] == pytest.approx(first[trec], abs=1e-6), ours
    # the first stage is BM25's top 20 over the whole corpus, scored as trec_eval scores that run
    bm25 = bm25_candidates(evaluator.queries, data[1], 20)
    assert score_run(qrels, {q: dict(d) for q, d in bm25.items()}, metrics=METRICS, depth=20) == pytest.approx(
        result.first_stage_metrics
    )
    # the reranker really reorders (distinct scores), and the recall of the candidates cannot change
    assert len(np.unique(result.all_scores)) > 0.9 * result.all_scores.size
    assert result.metrics["recall@20"] == result.metrics["first_stage/recall@20"]


def test_relevant_docs_outside_the_candidates_count_as_not_retrieved(cross_encoder):
    queries = {"q1": "cell growth", "q2": "insulin dose"}
    corpus = {f"d{i}": f"cell growth insulin {WORDS[i]}" for i in range(8)}
    qrels = {"q1": {"d1": 1, "d7": 2}, "q2": {"d2": 1}}
    run = {"q1": {"d0": 3.0, "d1": 2.0, "d3": 1.0}, "q2": {"d4": 5.0, "d5": 4.0}}  # d7 and d2 never retrieved
    ev = RerankingEvaluator(queries, corpus, qrels, run, depth=3, metrics=["recall@3", "ndcg@3", "mrr@3"],
                            primary_metric="mrr@3")
    result = ev.evaluate(cross_encoder)
    assert result.metrics["first_stage/recall@3"] == pytest.approx(0.25)  # 1 of 2, then 0 of 1
    assert result.metrics["recall@3"] == pytest.approx(0.25)
    assert result.first_stage_metrics == score_run(qrels, run, metrics=ev.metrics, depth=3)
    assert result.metrics == {**score_run(qrels, result.run(), metrics=ev.metrics, depth=3),
                              **{f"first_stage/{k}": v for k, v in result.first_stage_metrics.items()}}  # fmt: skip
    assert result.relevant_ranks.keys() == {"q1"} and set(result.relevant_ranks["q1"]) == {"d1"}
    assert result.num_relevant == {"q1": 2, "q2": 1}


def test_bpref_and_rprec_tell_judged_non_relevant_candidates_from_unjudged_ones(cross_encoder):
    queries = {"q1": "cell growth", "q2": "insulin dose"}
    corpus = {f"d{i}": f"cell growth insulin {WORDS[i]}" for i in range(8)}
    qrels = {"q1": {"d1": 1, "d7": 2, "d0": 0, "d3": 0}, "q2": {"d2": 1, "d5": 0}}  # d4 is never judged
    run = {"q1": {"d0": 3.0, "d1": 2.0, "d3": 1.0}, "q2": {"d4": 5.0, "d5": 4.0}}
    metrics = ["bpref", "rprec", "mrr@3"]
    ev = RerankingEvaluator(queries, corpus, qrels, run, depth=3, metrics=metrics, primary_metric="bpref")
    result = ev.evaluate(cross_encoder)
    # q1: one judged non-relevant doc (d0) above d1, R = N = 2 -> (1 - 1/2) / 2; q2: d2 not retrieved -> 0
    assert result.first_stage_metrics["bpref"] == pytest.approx(0.125)
    assert result.first_stage_metrics == score_run(qrels, run, metrics=metrics, depth=3)
    assert result.metrics == {**score_run(qrels, result.run(), metrics=metrics, depth=3),
                              **{f"first_stage/{k}": v for k, v in result.first_stage_metrics.items()}}  # fmt: skip


def test_candidate_sources_agree(data, cross_encoder, tmp_path: Path, tiny_bert_dir: Path):
    queries, corpus, qrels = data
    run = {q: dict(docs) for q, docs in bm25_candidates(queries, corpus, 20).items()}
    path = write_trec_run(run, tmp_path / "bm25.run")
    assert read_trec_run(path) == run  # repr() round-trips every float exactly
    from_run = RerankingEvaluator(queries, corpus, qrels, run, depth=20, metrics=METRICS)
    from_file = RerankingEvaluator(queries, corpus, qrels, str(path), depth=20, metrics=METRICS)
    from_bm25 = RerankingEvaluator(queries, corpus, qrels, "bm25", depth=20, metrics=METRICS)
    assert from_run.first_stage_metrics == from_file.first_stage_metrics == from_bm25.first_stage_metrics
    assert from_run.evaluate(cross_encoder).metrics == from_file.evaluate(cross_encoder).metrics

    # a bi-encoder's RetrievalResult: its top 20 are the candidates, its metrics the first stage's
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    retrieval = RetrievalEvaluator(queries, corpus, qrels, metrics=METRICS, depth=20)
    bi_encoder = retrieval.evaluate(make_tiny_sentence_transformer(tmp_path / "st"))
    ev = RerankingEvaluator(queries, corpus, qrels, bi_encoder, depth=20, metrics=METRICS)
    assert ev.candidates_source == "retrieval_result"
    assert ev.first_stage_metrics == pytest.approx(bi_encoder.metrics, abs=1e-12)


def test_scores_equal_cross_encoder_predict_and_tokens_are_cached(evaluator, cross_encoder):
    calls = []

    class CountingScorer(PairScorer):
        def tokenize(self, pairs, prompt=None):
            calls.append(len(pairs))
            return super().tokenize(pairs, prompt)

    scorer = CountingScorer(cross_encoder)
    evaluator._token_cache.clear()
    first = evaluator.evaluate(scorer)
    second = evaluator.evaluate(scorer)
    assert calls == [evaluator.num_pairs]  # the pairs are tokenised once, for every evaluation
    np.testing.assert_array_equal(first.top_scores, second.top_scores)
    qid = next(q for q in first.query_ids if q not in first.not_reranked)
    docs = first.ranked_doc_ids(qid)
    expected = cross_encoder.predict([(evaluator.queries[qid], evaluator.corpus[d]) for d in docs])
    np.testing.assert_allclose(first.ranked_scores(qid), expected, atol=1e-5)


def test_call_returns_prefixed_keys_and_a_transformers_model_works(evaluator, cross_encoder, tmp_path: Path):
    out = evaluator(cross_encoder, output_path=str(tmp_path))
    assert evaluator.primary_metric == "val_mrr@10" and evaluator.primary_metric in out
    assert {"val_ndcg@10", "val_first_stage/ndcg@10"} <= out.keys()
    assert (tmp_path / "reranking_evaluation_val.csv").is_file()
    # the same weights as a plain transformers model + tokenizer: same ranking (raw logits, no sigmoid)
    hf = evaluator.evaluate(PairScorer(cross_encoder.model, cross_encoder.tokenizer))
    assert hf.reranked_metrics == pytest.approx(evaluator.evaluate(cross_encoder).reranked_metrics)


def test_bf16_autocast_runs_and_ranks_like_fp32(data, cross_encoder):
    queries, corpus, qrels = data
    ev = RerankingEvaluator(queries, corpus, qrels, depth=20, metrics=METRICS, precision="bf16")
    bf16 = ev.evaluate(cross_encoder)
    assert np.isfinite(bf16.all_scores).all()
    ev.precision = "fp32"
    fp32 = ev.evaluate(cross_encoder)
    assert (bf16.precision, fp32.precision) == ("bf16", "fp32")
    # bf16 really ran (precision= is not ignored): its scores differ from fp32's, by bf16's rounding only.
    # Measured on this data: max |score difference| 0.0018, |ndcg@10 difference| 0.063 (this random head's
    # scores lie within 0.003 of each other, so bf16's 8-bit mantissa reorders near-ties); bounds below have
    # ~2.5x and ~1.6x margin. (It used to compare bf16 with bf16 again, against a bound of 1.0: it could not fail.)
    assert not np.array_equal(bf16.all_scores, fp32.all_scores)
    np.testing.assert_allclose(bf16.all_scores, fp32.all_scores, atol=5e-3)
    assert abs(bf16.metrics["ndcg@10"] - fp32.metrics["ndcg@10"]) < 0.1
    assert bf16.metrics["recall@20"] == fp32.metrics["recall@20"]  # same candidates, whatever their order


def test_a_run_with_integer_ids_reads_them_as_text_like_score_run(cross_encoder):
    # BEIR corpora often have numeric ids; a run built with ints must match the string ids of the qrels
    queries = {"1": "cell growth", "2": "insulin dose"}
    corpus = {str(i): f"cell growth insulin {WORDS[i]}" for i in range(12)}
    qrels = {"1": {"10": 1}, "2": {"3": 1}}
    run = {1: {9: 2.0, 10: 2.0, 4: 1.0}, 2: {3: 5.0, 5: 4.0}}  # a tie: trec_eval puts "9" above "10" (text)
    assert candidates_from_run(run, 3) == {"1": [("9", 2.0), ("10", 2.0), ("4", 1.0)],
                                           "2": [("3", 5.0), ("5", 4.0)]}  # fmt: skip
    metrics = ["mrr@3", "recall@3"]
    ev = RerankingEvaluator(queries, corpus, qrels, run, depth=3, metrics=metrics, primary_metric="mrr@3")
    assert ev.first_stage_metrics == score_run(qrels, run, metrics=metrics, depth=3)
    assert ev.first_stage_metrics == pytest.approx({"mrr@3": 0.75, "recall@3": 1.0})
    text_run = {str(q): {str(d): s for d, s in docs.items()} for q, docs in run.items()}
    trec = _trec_eval(qrels, text_run, ["recip_rank", "recall_3"])
    assert ev.first_stage_metrics == pytest.approx({"mrr@3": trec["recip_rank"], "recall@3": trec["recall_3"]},
                                                   abs=1e-12)  # fmt: skip
    assert ev.evaluate(cross_encoder).metrics["first_stage/recall@3"] == 1.0

    with pytest.raises(ValueError, match="same id"):
        candidates_from_run({1: {"d": 1.0}, "1": {"d": 2.0}}, 3)
    with pytest.raises(ValueError, match="same id"):
        candidates_from_run({"q": {7: 1.0, "7": 2.0}}, 3)
    with pytest.raises(TypeError, match=r"str\(int\(x\)\)"):
        candidates_from_run({"q": {7.0: 1.0}}, 3)


def test_clear_errors(data, cross_encoder):
    queries, corpus, qrels = data
    with pytest.raises(ValueError, match="not in the corpus"):
        RerankingEvaluator(queries, corpus, qrels, {"q0": {"nope": 1.0}}, depth=5, metrics=["mrr@5"], primary_metric="mrr@5")
    with pytest.raises(ValueError, match="share no query id"):
        RerankingEvaluator(queries, corpus, qrels, {"other": {"doc1": 1.0}}, depth=5, metrics=["mrr@5"], primary_metric="mrr@5")
    with pytest.raises(TypeError, match="candidates must be"):
        RerankingEvaluator(queries, corpus, qrels, 42, depth=5, metrics=["mrr@5"], primary_metric="mrr@5")
    with pytest.raises(ValueError, match="depth"):
        RerankingEvaluator(queries, corpus, qrels, depth=5, metrics=["ndcg@10"], primary_metric="mrr@5")
    with pytest.raises(ValueError, match="finite"):
        candidates_from_run({"q": {"d": float("nan")}}, 3)
    ev = RerankingEvaluator(queries, corpus, qrels, depth=5, metrics=["mrr@5"], primary_metric="mrr@5")
    with pytest.raises(TypeError, match="CrossEncoder"):
        ev.evaluate(object())


def _mixed_run(data, seed: int = 0):
    """A first stage where about half the queries have no relevant candidate: 10 random docs each, plus
    (for even queries) one relevant doc at a random rank."""
    queries, corpus, qrels = data
    rng = np.random.default_rng(seed)
    docs = sorted(corpus)
    run = {}
    for i, qid in enumerate(sorted(queries)):
        picked = [d for d in rng.choice(docs, size=10, replace=False).tolist() if qrels[qid].get(d, 0) <= 0]
        if i % 2 == 0:
            picked.insert(int(rng.integers(0, len(picked) + 1)), next(iter(qrels[qid])))
        run[qid] = {d: float(len(picked) - r) for r, d in enumerate(picked)}
    return run


def test_queries_without_a_relevant_candidate_are_not_scored_and_the_metrics_are_unchanged(data, cross_encoder):
    queries, corpus, qrels = data
    # graded, with judged non-relevant (0) and negative grades among the candidates: bpref and nDCG see them
    judged = {q: dict(docs) for q, docs in qrels.items()}
    run = _mixed_run(data)
    for j, qid in enumerate(sorted(run)):
        first, second = list(run[qid])[:2]
        judged[qid].setdefault(first, 0)
        judged[qid].setdefault(second, -1 if j % 3 == 0 else 0)
    metrics = ["mrr@10", "ndcg@10", "ndcg@5", "recall@10", "precision@5", "hit@5", "map", "map@5", "rprec", "bpref"]
    kwargs = dict(depth=11, metrics=metrics, primary_metric="ndcg@10")
    fast = RerankingEvaluator(queries, corpus, judged, run, **kwargs)
    full = RerankingEvaluator(queries, corpus, judged, run, rerank_all=True, **kwargs)

    calls = []

    class CountingScorer(PairScorer):
        def forward(self, features):
            calls.append(int(features["input_ids"].shape[0]))
            return super().forward(features)

    skipped = fast.evaluate(CountingScorer(cross_encoder))
    n_fast = sum(calls)
    everything = full.evaluate(cross_encoder)
    answerable = {q for q in run if any(judged[q].get(d, 0) > 0 for d in run[q])}
    assert 0 < len(answerable) < len(run)
    assert n_fast == fast.num_pairs == sum(len(run[q]) for q in answerable) < full.num_pairs == fast.num_candidates
    assert set(skipped.not_reranked) == set(run) - answerable and everything.not_reranked == []
    # every measure is equal: a query without a relevant candidate scores 0 in any order
    assert skipped.metrics == pytest.approx(everything.metrics, abs=1e-12)
    for m in metrics:
        np.testing.assert_allclose(skipped.per_query[m], everything.per_query[m], atol=1e-12)
    # the reranked queries are ranked alike; the others keep the first stage's order and scores, so the run
    # is still scored by trec_eval exactly as the evaluator scored it
    fast_run, full_run = skipped.run(), everything.run()
    for qid in run:
        if qid in answerable:
            assert list(fast_run[qid]) == list(full_run[qid])
            np.testing.assert_allclose(list(fast_run[qid].values()), list(full_run[qid].values()), atol=1e-5)
        else:
            assert fast_run[qid] == run[qid]
    assert score_run(judged, fast_run, metrics=metrics, depth=11) == pytest.approx(skipped.reranked_metrics, abs=1e-12)
    # the histograms hold the scores the reranker gave: every positive, the negatives of reranked queries
    assert skipped.positive_scores.size == everything.positive_scores.size
    assert skipped.all_scores.size == skipped.positive_scores.size + skipped.negative_scores.size == fast.num_pairs


def test_no_query_with_a_relevant_candidate_scores_nothing(data, cross_encoder):
    queries, corpus, qrels = data
    run = {q: docs for i, (q, docs) in enumerate(sorted(_mixed_run(data).items())) if i % 2 == 1}
    ev = RerankingEvaluator(queries, corpus, qrels, run, depth=10, metrics=["ndcg@10", "mrr@10"])
    assert ev.num_pairs == 0
    result = ev.evaluate(cross_encoder)
    assert result.metrics["ndcg@10"] == result.metrics["first_stage/ndcg@10"] == 0.0
    assert result.all_scores.size == 0 and set(result.not_reranked) == set(ev.queries)  # with candidates or not

"""A MultiVectorEncoder re-scoring a first stage through RerankingEvaluator (docs/multi_vector.md, "Corpora too big
for exact search"): only the candidate pairs are scored, by the same MaxSim as the exact search, and the result says
it is a re-scored first stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
from hf_search_wandb.core.evaluation.results import RerankingResult
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.core.metrics.scoring import score_run
from hf_search_wandb.core.search.maxsim import TokenVectors, maxsim_pairs
from tests.helpers.synthetic import random_token_vectors, synthetic_data
from tests.helpers.tiny_models import WORDS, make_tiny_multi_vector

METRICS = ["mrr@10", "ndcg@10", "recall@20", "map"]


@pytest.fixture(scope="module")
def data():
    return synthetic_data(WORDS)


@pytest.fixture(scope="module")
def colbert(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_multi_vector(
        tmp_path_factory.mktemp("tiny-colbert"), query_expansion={"strategy": "fixed", "length": 8},
        skiplist_words=["the", "of"],
    )  # fmt: skip


@pytest.mark.parametrize("similarity", ["maxsim", "meanmaxsim"])
def test_pair_scores_equal_sentence_transformers_maxsim_at_any_chunking(similarity):
    from sentence_transformers.util.similarity import maxsim

    qs, ds = random_token_vectors(17, 9, 16, 0), random_token_vectors(90, 30, 16, 1)
    assert any(len(d) == 0 for d in ds) and any(len(q) == 0 for q in qs)  # empty texts score as theirs
    expected = maxsim(qs, ds, length_normalize=similarity == "meanmaxsim")
    g = torch.Generator().manual_seed(2)
    pair_q, pair_d = torch.randint(0, 17, (400,), generator=g), torch.randint(0, 90, (400,), generator=g)
    for chunk in (1 << 25, 2048, 1):
        ours = maxsim_pairs(
            TokenVectors.from_list(qs), TokenVectors.from_list(ds), pair_q, pair_d,
            similarity=similarity, chunk_elements=chunk,
        )  # fmt: skip
        torch.testing.assert_close(ours, expected[pair_q, pair_d], rtol=0, atol=1e-5)


def test_rescoring_the_exact_ranking_gives_the_exact_metrics_and_scores(colbert, data):
    """The exact search's own top-k re-scored: the same scores (to float rounding) and the same metrics."""
    queries, corpus, qrels = data
    exact = RetrievalEvaluator(queries, corpus, qrels, metrics=METRICS, depth=20).evaluate(colbert)
    rescoring = RerankingEvaluator(queries, corpus, qrels, exact, depth=20, metrics=METRICS, rerank_all=True)
    result = rescoring.evaluate(colbert)
    assert isinstance(result, RerankingResult) and result.scorer == "maxsim"
    assert rescoring.search == "retrieval_result top 20, re-scored"
    for metric in METRICS:
        assert result.metrics[metric] == pytest.approx(exact.metrics[metric], abs=1e-9)
        assert result.metrics[f"first_stage/{metric}"] == pytest.approx(exact.metrics[metric], abs=1e-9)
    ours, theirs = result.run(), exact.run()
    assert ours.keys() == theirs.keys()
    for qid in theirs:
        assert list(ours[qid]) == list(theirs[qid])  # the same order, ties included
        np.testing.assert_allclose(list(ours[qid].values()), list(theirs[qid].values()), rtol=1e-6, atol=1e-5)
    assert result.metrics["query_tokens"] == exact.metrics["query_tokens"] == 8.0


def test_bm25_candidates_rescored_equal_the_models_own_maxsim_and_trec_eval(colbert, data):
    """BM25's top 20 re-scored: each pair's score is the model's own MaxSim (encode_query / encode_document /
    similarity), the ranking's metrics are trec_eval's of the returned run, and the candidates' documents alone
    are encoded."""
    queries, corpus, qrels = data
    rescoring = RerankingEvaluator(queries, corpus, qrels, "bm25", depth=20, metrics=METRICS)
    result = rescoring.evaluate(colbert)
    run = result.run()
    scored = {q: run[q] for q, done in zip(result.query_ids, result.reranked, strict=True) if done}
    assert scored
    some = sorted(scored)[:5]
    docs = sorted({d for q in some for d in scored[q]})
    q_vecs = colbert.encode_query([queries[q] for q in some])
    d_vecs = colbert.encode_document([corpus[d] for d in docs])
    theirs = colbert.similarity(q_vecs, d_vecs)
    for i, qid in enumerate(some):
        for did, score in scored[qid].items():
            assert score == pytest.approx(float(theirs[i, docs.index(did)]), abs=1e-5)
    trec = score_run(qrels, result.run(), metrics=METRICS, depth=20)
    for metric in METRICS:
        assert result.metrics[metric] == pytest.approx(trec[metric], abs=1e-6)
    candidate_docs = {result.doc_ids[d] for d in rescoring.scored_pairs()[2].tolist()}
    assert len(candidate_docs) < len(corpus)
    lengths = [len(v) for v in colbert.encode_document([corpus[d] for d in sorted(candidate_docs)])]
    assert result.metrics["corpus_tokens"] == pytest.approx(np.mean(lengths))
    assert "rerank_s" in result.timings and result.timings["score_s"] >= 0


def test_a_cross_encoder_result_says_so(data, tmp_path):
    from tests.helpers.tiny_models import make_tiny_cross_encoder

    queries, corpus, qrels = data
    result = RerankingEvaluator(queries, corpus, qrels, "bm25", depth=10, metrics=["mrr@10"]).evaluate(
        make_tiny_cross_encoder(tmp_path)
    )
    assert result.scorer == "cross-encoder" and "query_tokens" not in result.metrics

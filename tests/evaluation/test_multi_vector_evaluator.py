"""RetrievalEvaluator on a sentence-transformers MultiVectorEncoder (ColBERT-style): parity with
sentence-transformers' MultiVectorInformationRetrievalEvaluator and `maxsim`, query expansion and the skiplist
as the model defines them, the dense search's tie rule, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_search_wandb.core.evaluation.results import MultiVectorRetrievalResult
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.core.models.factory import as_encoder
from hf_search_wandb.core.models.multi_vector import MultiVectorEncoderAdapter
from hf_search_wandb.core.search.dense import key_scores, key_ties, search_blocks, tie_positions
from hf_search_wandb.core.search.maxsim import TokenVectors, maxsim_scores, maxsim_search
from tests.helpers.synthetic import random_token_vectors, synthetic_data
from tests.helpers.tiny_models import WORDS, make_tiny_multi_vector

METRICS = ["mrr@10", "ndcg@10", "recall@10", "precision@10", "hit@10", "map"]
COLBERT = {"strategy": "fixed", "length": 8}  # classic ColBERT: every query padded with [MASK] to 8 tokens


@pytest.fixture(scope="module")
def data():
    queries, corpus, qrels = synthetic_data(WORDS)
    binary = {q: dict.fromkeys(docs, 1) for q, docs in qrels.items()}  # ST's evaluator is binary
    return queries, corpus, binary


@pytest.fixture(scope="module")
def colbert(tmp_path_factory: pytest.TempPathFactory):
    """Query expansion (not attended) and a document skiplist: both sides differ from plain tokenisation."""
    return make_tiny_multi_vector(
        tmp_path_factory.mktemp("tiny-colbert"), query_expansion=COLBERT, skiplist_words=["the", "of", "a"]
    )


def _st_metrics(model, queries, corpus, qrels) -> dict[str, float]:
    from sentence_transformers.multi_vector_encoder.evaluation import MultiVectorInformationRetrievalEvaluator

    st = MultiVectorInformationRetrievalEvaluator(
        queries, corpus, {q: set(d) for q, d in qrels.items()}, name="st", write_csv=False,
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[10], precision_recall_at_k=[10], map_at_k=[100],
    )  # fmt: skip
    out = st(model)
    sim = model.similarity_fn_name
    return {
        "mrr@10": out[f"st_{sim}_mrr@10"], "ndcg@10": out[f"st_{sim}_ndcg@10"],
        "recall@10": out[f"st_{sim}_recall@10"], "precision@10": out[f"st_{sim}_precision@10"],
        "hit@10": out[f"st_{sim}_accuracy@10"], "map": out[f"st_{sim}_map@100"],
    }  # fmt: skip


@pytest.mark.parametrize(
    "settings",
    [
        {"query_expansion": COLBERT, "skiplist_words": ["the", "of", "a"]},
        {"query_expansion": {"strategy": "min", "length": 4, "attend": True}, "similarity": "meanmaxsim"},
        {"normalize": False},
    ],
    ids=["expansion-skiplist", "min-attend-meanmaxsim", "raw-vectors"],
)
def test_equals_sentence_transformers_multi_vector_evaluator(tmp_path, data, settings):
    model = make_tiny_multi_vector(tmp_path, **settings)
    queries, corpus, qrels = data
    result = RetrievalEvaluator(queries, corpus, qrels, metrics=METRICS).evaluate(model)
    expected = _st_metrics(model, queries, corpus, qrels)
    assert isinstance(result, MultiVectorRetrievalResult)
    for name in METRICS:
        assert result.metrics[name] == pytest.approx(expected[name], abs=1e-6), name
    # the scores are MaxSim's: the kept top scores equal sentence-transformers' own encode + maxsim
    q = model.encode_query([queries[qid] for qid in result.query_ids[:5]])
    d = model.encode_document([corpus[did] for did in result.doc_ids])
    reference = model.similarity(q, d).numpy()
    top = np.take_along_axis(reference, result.top_indices[:5], axis=1)
    scale = max(1.0, float(np.abs(reference).max()))
    np.testing.assert_allclose(result.top_scores[:5], top, rtol=0, atol=1e-5 * scale)
    assert np.mean([len(np.unique(row)) for row in result.top_scores]) > 90  # a real ranking, few ties


def test_token_vectors_and_counts_follow_the_model(colbert, data):
    queries, corpus, qrels = data
    result = RetrievalEvaluator(queries, corpus, qrels, metrics=METRICS).evaluate(colbert)
    assert isinstance(result, MultiVectorRetrievalResult)
    # every query is expanded to exactly 8 scored tokens; documents lose their skiplist words
    expected_docs = [len(v) for v in colbert.encode_document([corpus[d] for d in result.doc_ids])]
    assert result.query_tokens.tolist() == [8] * len(result.query_ids)
    assert result.doc_tokens.tolist() == expected_docs
    plain = sum(len(colbert.tokenizer(corpus[d])["input_ids"]) for d in result.doc_ids)
    assert sum(expected_docs) < plain  # the skiplist did drop tokens
    assert result.metrics["query_tokens"] == 8.0
    assert result.metrics["corpus_tokens"] == pytest.approx(np.mean(expected_docs))
    assert result.metrics["index_mb"] == pytest.approx(sum(expected_docs) * 32 * 4 / 2**20)
    assert result.token_dim == 32 and result.similarity == "maxsim"


def test_adapter_vectors_equal_encode_query_and_document(colbert, data):
    queries, corpus, _ = data
    adapter = as_encoder(colbert)
    assert isinstance(adapter, MultiVectorEncoderAdapter)
    texts = list(queries.values())[:6]
    for ours, theirs in zip(adapter.encode_texts(texts, "query"), colbert.encode_query(texts), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    docs = list(corpus.values())[:6]
    for ours, theirs in zip(
        adapter.encode_texts(docs, "document"), colbert.encode_document(docs), strict=True
    ):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("similarity", ["maxsim", "meanmaxsim"])
def test_maxsim_scores_equal_sentence_transformers_maxsim_at_any_chunking(similarity):
    from sentence_transformers.util.similarity import maxsim

    qs, ds = random_token_vectors(23, 9, 16, 0), random_token_vectors(151, 30, 16, 1)
    assert any(len(d) == 0 for d in ds)  # an empty document scores -1e9, as theirs
    expected = maxsim(qs, ds, length_normalize=similarity == "meanmaxsim")
    for chunk in (1 << 25, 4096, 1):
        ours = maxsim_scores(
            TokenVectors.from_list(qs),
            TokenVectors.from_list(ds),
            similarity=similarity,
            chunk_elements=chunk,
        )
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_maxsim_search_ties_follow_the_dense_rule():
    # documents repeated: equal scores, ranked by doc id descending (trec_eval), as the dense search does
    qs = random_token_vectors(5, 6, 8, 2)
    base = random_token_vectors(10, 12, 8, 3)
    ds = base * 3
    ids = [f"d{i:02d}" for i in range(len(ds))]
    ties = torch.from_numpy(tie_positions(ids))
    hits = maxsim_search(TokenVectors.from_list(qs), TokenVectors.from_list(ds), ties, 12)
    scores = maxsim_scores(TokenVectors.from_list(qs), TokenVectors.from_list(ds))
    assert torch.equal(scores[:, :10], scores[:, 10:20]) and torch.equal(scores[:, :10], scores[:, 20:])
    reference = search_blocks(
        lambda a, b, c, e: scores[a:b, c:e], 5, len(ds), ties, 12, q_block=5, d_block=len(ds),
        device=torch.device("cpu"),
    )  # fmt: skip
    assert torch.equal(hits.top_keys, reference.top_keys)
    top = key_scores(hits.top_keys)
    order = key_ties(hits.top_keys)
    for row_scores, row_ties in zip(top.tolist(), order.tolist(), strict=True):
        for a in range(len(row_scores) - 1):
            assert row_scores[a] > row_scores[a + 1] or (
                row_scores[a] == row_scores[a + 1] and row_ties[a] > row_ties[a + 1]
            )


def test_refuses_single_vector_options(colbert, data):
    queries, corpus, qrels = data
    with pytest.raises(ValueError, match="similarity_fn_name"):
        RetrievalEvaluator(queries, corpus, qrels, similarity="cosine").evaluate(colbert)
    with pytest.raises(ValueError, match="truncate_dims"):
        RetrievalEvaluator(queries, corpus, qrels, truncate_dims=[16]).evaluate(colbert)


def test_bf16_runs_and_stays_close(colbert, data):
    queries, corpus, qrels = data
    full = RetrievalEvaluator(queries, corpus, qrels, metrics=METRICS).evaluate(colbert)
    half = RetrievalEvaluator(queries, corpus, qrels, metrics=METRICS, precision="bf16").evaluate(colbert)
    assert half.metrics["index_mb"] == pytest.approx(full.metrics["index_mb"] / 2)
    assert abs(half.metrics["ndcg@10"] - full.metrics["ndcg@10"]) < 0.05

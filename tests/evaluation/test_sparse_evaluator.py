"""RetrievalEvaluator on a sentence-transformers SparseEncoder (SPLADE): parity with sentence-transformers'
SparseInformationRetrievalEvaluator and with trec_eval, embeddings kept sparse, the dense path's tie rule."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_search_wandb.core.evaluation.results import SparseRetrievalResult
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.core.models.sparse import SparseRows
from hf_search_wandb.core.search.dense import key_scores, key_ties, search, tie_positions
from hf_search_wandb.core.search.sparse import sparse_search
from tests.helpers.synthetic import synthetic_data
from tests.helpers.tiny_models import WORDS, make_tiny_sparse_encoder
from tests.helpers.versions import requires

pytrec_eval = pytest.importorskip("pytrec_eval")

SPARSE = requires("SparseEncoder")  # the tests below that need no SparseEncoder run on every version
METRICS = ["mrr@10", "ndcg@10", "recall@10", "precision@10", "hit@10", "map"]


@pytest.fixture(scope="module")
def splade(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_sparse_encoder(tmp_path_factory.mktemp("tiny-splade"))


@pytest.fixture(scope="module")
def data():
    queries, corpus, qrels = synthetic_data(WORDS)
    binary = {q: dict.fromkeys(docs, 1) for q, docs in qrels.items()}  # ST's evaluator is binary
    return queries, corpus, binary


def _st_metrics(model, queries, corpus, qrels) -> dict[str, float]:
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    st = SparseInformationRetrievalEvaluator(
        queries, corpus, {q: set(d) for q, d in qrels.items()}, name="st", write_csv=False,
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[10], precision_recall_at_k=[10], map_at_k=[100],
    )  # fmt: skip
    out = st(model)
    return {
        "mrr@10": out["st_dot_mrr@10"], "ndcg@10": out["st_dot_ndcg@10"], "recall@10": out["st_dot_recall@10"],
        "precision@10": out["st_dot_precision@10"], "hit@10": out["st_dot_accuracy@10"],
        "map": out["st_dot_map@100"], "query_active_dims": out["st_query_active_dims"],
        "corpus_active_dims": out["st_corpus_active_dims"], "flops": out.get("st_avg_flops"),  # not before sentence-transformers 5.1
    }  # fmt: skip


@SPARSE
def test_equals_sentence_transformers_sparse_evaluator(splade, data):
    queries, corpus, qrels = data
    evaluator = RetrievalEvaluator(queries, corpus, qrels, metrics=METRICS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our sparse path warns about nothing (no CSR "beta" warning either)
        result = evaluator.evaluate(splade)
    expected = _st_metrics(splade, queries, corpus, qrels)
    assert isinstance(result, SparseRetrievalResult)
    for name in METRICS:
        assert result.metrics[name] == pytest.approx(expected[name], abs=1e-6), name
    # ST keeps its sparsity figures in float32: equal to its precision
    for name in ("query_active_dims", "corpus_active_dims", "flops"):
        if expected[name] is not None:
            assert result.metrics[name] == pytest.approx(expected[name], rel=1e-6), name
    # a real ranking: distinct scores, about 1/3 of the tiny vocabulary active per document
    assert np.mean([len(np.unique(row)) for row in result.top_scores]) > 90
    assert 20 < result.metrics["corpus_active_dims"] < 80 and result.metrics["query_active_dims"] < 40


@SPARSE
def test_kept_run_scored_by_trec_eval_gives_the_metrics(splade):
    queries, corpus, qrels = synthetic_data(WORDS, seed=1)  # graded qrels
    evaluator = RetrievalEvaluator(queries, corpus, qrels, metrics=METRICS, depth=100)
    result = evaluator.evaluate(splade)
    run = result.run()
    trec = pytrec_eval.RelevanceEvaluator(
        qrels, {"ndcg_cut_10", "recall_10", "P_10", "success_10", "map_cut_100"}
    ).evaluate(run)
    top10 = {
        q: dict(sorted(d.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:10]) for q, d in run.items()
    }
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    means = {
        "ndcg@10": np.mean([v["ndcg_cut_10"] for v in trec.values()]),
        "recall@10": np.mean([v["recall_10"] for v in trec.values()]),
        "precision@10": np.mean([v["P_10"] for v in trec.values()]),
        "hit@10": np.mean([v["success_10"] for v in trec.values()]),
        "map": np.mean([v["map_cut_100"] for v in trec.values()]),
        "mrr@10": np.mean([v["recip_rank"] for v in rr.values()]),
    }
    for name, value in means.items():
        assert result.metrics[name] == pytest.approx(value, abs=1e-6), name


@SPARSE
def test_embeddings_equal_sparse_encoder_encode(splade, data):
    queries, corpus, _ = data
    evaluator = RetrievalEvaluator(queries, corpus, {"q0": {"doc1": 1}})
    result = evaluator.evaluate(splade)
    texts = [corpus[d] for d in result.doc_ids]
    reference = splade.encode_document(texts, convert_to_sparse_tensor=True)
    counts = (reference.to_dense() != 0).sum(dim=1).numpy()
    assert result.doc_active_dims.tolist() == counts.tolist()
    query_counts = (splade.encode_query([queries["q0"]]).to_dense() != 0).sum().item()
    assert result.query_active_dims.tolist() == [query_counts]


@SPARSE
def test_max_active_dims_prunes_like_sentence_transformers(tmp_path, data):
    model = make_tiny_sparse_encoder(tmp_path, seed=2)
    model.max_active_dims = 6
    queries, corpus, qrels = data
    result = RetrievalEvaluator(queries, corpus, qrels, metrics=METRICS).evaluate(model)
    assert result.doc_active_dims.max() == 6 and result.query_active_dims.max() <= 6
    expected = _st_metrics(model, queries, corpus, qrels)
    for name in (*METRICS, "corpus_active_dims", "flops"):
        if expected[name] is not None:
            assert result.metrics[name] == pytest.approx(expected[name], rel=1e-6, abs=1e-6), name


@SPARSE
def test_tokenises_once_and_restores_training_mode(splade, data, monkeypatch):
    queries, corpus, qrels = data
    evaluator = RetrievalEvaluator(queries, corpus, qrels)
    calls = []
    method = "preprocess" if hasattr(splade, "preprocess") else "tokenize"  # `tokenize` before sentence-transformers 6
    original = getattr(splade, method)
    monkeypatch.setattr(splade, method, lambda *a, **k: calls.append(1) or original(*a, **k))
    splade.train()
    first = evaluator.evaluate(splade)
    n_calls = len(calls)
    second = evaluator.evaluate(splade)
    assert len(calls) == n_calls > 0  # the second evaluation reused the cached token ids
    assert splade.training
    assert first.metrics == second.metrics
    splade.eval()


@SPARSE
def test_bf16_precision_runs_and_stays_close(splade, data):
    queries, corpus, qrels = data
    fp32 = RetrievalEvaluator(queries, corpus, qrels, precision="fp32").evaluate(splade)
    bf16 = RetrievalEvaluator(queries, corpus, qrels, precision="bf16").evaluate(splade)
    assert abs(bf16.metrics["corpus_active_dims"] - fp32.metrics["corpus_active_dims"]) < 5
    assert np.isfinite(bf16.top_scores).all()


@SPARSE
def test_cosine_similarity_normalises_rows(splade, data):
    queries, corpus, qrels = data
    result = RetrievalEvaluator(queries, corpus, qrels, similarity="cosine").evaluate(splade)
    assert result.top_scores.max() <= 1.0 + 1e-6
    q = splade.encode_query([queries[result.query_ids[0]]]).to_dense()
    d = splade.encode_document([corpus[result.ranked_doc_ids(result.query_ids[0], 1)[0]]]).to_dense()
    cosine = torch.nn.functional.cosine_similarity(q, d).item()
    assert result.top_scores[0, 0] == pytest.approx(cosine, abs=1e-5)


# ------------------------------------------------------------------ the sparse rows and the search kernel


def _random_sparse(n: int, dim: int, density: float, seed: int, *, levels: int | None = None) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    values = torch.rand((n, dim), generator=gen)
    if levels is not None:  # few distinct values: many tied scores
        values = (values * levels).ceil() / levels
    return torch.where(torch.rand((n, dim), generator=gen) < density, values, torch.zeros(()))


def test_sparse_rows_round_trip_take_slice_inverted():
    dense = _random_sparse(7, 11, 0.3, seed=0)
    dense[3] = 0  # an empty row
    rows = SparseRows.from_dense(dense)
    assert torch.equal(rows.to_dense(), dense)
    order = torch.tensor([6, 3, 0, 0, 2])
    assert torch.equal(rows.take(order).to_dense(), dense[order])
    assert torch.equal(rows.slice(2, 5).to_dense(), dense[2:5])
    assert torch.equal(rows.inverted().to_dense(), dense.T)
    assert torch.allclose(rows.normalized().to_dense(), torch.nn.functional.normalize(dense, dim=1))
    assert rows.count_vector().tolist() == (dense != 0).sum(dim=0).tolist()


@pytest.mark.parametrize("kernel", ["inverted", "spmm"])
def test_sparse_search_equals_the_dense_search_ties_included(kernel):
    queries = _random_sparse(30, 50, 0.1, seed=1, levels=2)
    docs = _random_sparse(200, 50, 0.15, seed=2, levels=2)
    docs[50:60] = docs[10]  # duplicated documents: exact ties
    docs[100:110] = 0  # documents that match nothing: score 0, ranked by id
    ids = [f"d{i:03d}" for i in np.random.default_rng(0).permutation(200)]
    ties = torch.from_numpy(tie_positions(ids))
    pairs_q, pairs_d = torch.tensor([0, 1, 2, 5]), torch.tensor([10, 55, 105, 199])
    dense = search(queries, docs, ties, 40, pair_queries=pairs_q, pair_docs=pairs_d)
    sparse = sparse_search(
        SparseRows.from_dense(queries), SparseRows.from_dense(docs), ties, 40,
        pair_queries=pairs_q, pair_docs=pairs_d, chunk_elements=30 * 64, kernel=kernel,
    )  # fmt: skip
    assert torch.equal(key_ties(sparse.top_keys), key_ties(dense.top_keys))
    assert torch.allclose(key_scores(sparse.top_keys), key_scores(dense.top_keys), atol=1e-6)
    assert torch.equal(sparse.pair_ranks, dense.pair_ranks)
    assert (key_scores(dense.top_keys)[:, 1:] == key_scores(dense.top_keys)[:, :-1]).sum() > 100  # many ties


def test_sparse_search_rejects_mismatched_vocabularies():
    a = SparseRows.from_dense(torch.ones(2, 3))
    b = SparseRows.from_dense(torch.ones(2, 4))
    with pytest.raises(ValueError, match="same model"):
        sparse_search(a, b, torch.arange(2), 1)


def test_memory_follows_the_non_zeros_not_the_vocabulary():
    # 2,000 docs over a 1M-id vocabulary: dense would be 8 GB of float32; the rows hold 20 values each
    dim = 1_000_000
    gen = torch.Generator().manual_seed(0)
    cols = torch.sort(torch.randint(0, dim, (2000, 20), generator=gen), dim=1).values.unique_consecutive(
        dim=1
    )
    counts = torch.full((2000,), cols.shape[1])
    docs = SparseRows.from_counts(counts, cols.reshape(-1), torch.rand(cols.numel(), generator=gen), dim)
    queries = docs.slice(0, 5)
    hits = sparse_search(queries, docs, torch.arange(2000), 3)
    assert key_ties(hits.top_keys)[:, 0].tolist() == [0, 1, 2, 3, 4]  # each query finds itself first
    assert docs.inverted().values().numel() == docs.nnz


@SPARSE
def test_refuses_nothing_it_used_to_refuse(tmp_path: Path, data):
    # a SparseEncoder used to be a TypeError: now it is evaluated, through the SentenceEvaluator entry point
    queries, corpus, qrels = data
    metrics = RetrievalEvaluator(queries, corpus, qrels, name="sparse")(make_tiny_sparse_encoder(tmp_path))
    assert {"sparse_mrr@10", "sparse_query_active_dims", "sparse_corpus_active_dims", "sparse_flops"} <= set(
        metrics
    )

"""RetrievalEvaluator: hand-checkable rankings, metrics equal to score_run, options, errors, ST trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_search_wandb.core import compat
from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.core.evaluation.batching import plan_batches
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.core.metrics.scoring import score_run
from tests.helpers.keyword_encoder import VOCAB, KeywordEncoder  # noqa: F401
from tests.helpers.paths import SCIFACT

CORPUS = {
    "d1": "cancer gene gene",  # [1, 2, 0, 0]
    "d2": "brain sleep",  # [0, 0, 1, 1]
    "d3": "cancer cancer",  # [2, 0, 0, 0]
    "d4": "sleep",  # [0, 0, 0, 1]
    "d5": "gene",  # [0, 1, 0, 0]
}
QUERIES = {"q1": "cancer", "q2": "sleep brain", "q3": "gene"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d2": 1}}
METRICS = ("mrr@3", "recall@3", "ndcg@3", "hit@1", "map")


def keyword_evaluator(**kwargs) -> RetrievalEvaluator:
    kwargs.setdefault("metrics", METRICS)
    kwargs.setdefault("depth", 3)
    kwargs.setdefault("primary_metric", "mrr@3")
    return RetrievalEvaluator(QUERIES, CORPUS, QRELS, **kwargs)


def test_keyword_rankings_by_hand():
    result = keyword_evaluator().evaluate(KeywordEncoder())
    # q1 "cancer": d3=2, d1=1, then d2/d4/d5 tie at 0 -> doc id descending (trec_eval's tie rule)
    assert result.ranked_doc_ids("q1") == ["d3", "d1", "d5"]
    assert result.ranked_scores("q1") == [2.0, 1.0, 0.0]
    # q2 "sleep brain": d2=2, d4=1, then zeros by id descending
    assert result.ranked_doc_ids("q2") == ["d2", "d4", "d5"]
    # q3 "gene": d1=2, d5=1, d4=0 ... d2 (relevant) is last of the zeros: rank 5 in the whole corpus
    assert result.ranked_doc_ids("q3") == ["d1", "d5", "d4"]
    assert result.relevant_ranks == {"q1": {"d1": 2}, "q2": {"d2": 1}, "q3": {"d2": 5}}
    assert result.metrics["mrr@3"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert result.metrics["recall@3"] == pytest.approx(2 / 3)
    assert result.metrics["hit@1"] == pytest.approx(1 / 3)
    assert result.positive_scores.tolist() == [1.0, 2.0, 0.0]
    # negatives: non-relevant docs of each top 3
    assert sorted(result.negative_scores.tolist()) == sorted([2.0, 0.0, 1.0, 0.0, 2.0, 1.0, 0.0])


def test_metrics_equal_score_run_on_the_same_ranking():
    evaluator = keyword_evaluator()
    result = evaluator.evaluate(KeywordEncoder())
    # the run carries tied scores; trec_eval's tie order equals ours, so the metrics must match exactly
    assert score_run(evaluator.qrels, result.run(), metrics=METRICS, depth=3) == result.metrics


def test_rprec_and_bpref_equal_score_run_on_the_same_ranking():
    """bpref must tell judged non-relevant docs (grade 0) from unjudged ones on the evaluator's path too."""
    qrels = {"q1": {"d1": 1, "d3": 0}, "q2": {"d2": 1, "d4": 0, "d5": 0}, "q3": {"d2": 1, "d1": 0}}
    metrics = ("rprec", "bpref", "map")
    evaluator = RetrievalEvaluator(QUERIES, CORPUS, qrels, metrics=metrics, depth=5, primary_metric="bpref")
    result = evaluator.evaluate(KeywordEncoder())
    assert score_run(qrels, result.run(), metrics=metrics, depth=5) == result.metrics
    # q1: d3 (judged non-relevant) above d1 -> 0; q2: d2 first -> 1; q3: d1 (judged 0) above d2 -> 0
    assert result.metrics["bpref"] == pytest.approx(1 / 3)
    assert evaluator.greater_is_better


def test_call_returns_prefixed_keys_and_primary_metric():
    evaluator = keyword_evaluator(name="dev")
    metrics = evaluator(KeywordEncoder())
    assert set(metrics) == {f"dev_{m}" for m in METRICS}
    assert evaluator.primary_metric == "dev_mrr@3" and evaluator.greater_is_better
    assert (
        evaluator.last_result is not None and evaluator.last_result.metrics["mrr@3"] == metrics["dev_mrr@3"]
    )


def test_default_keys_follow_the_spec():
    evaluator = RetrievalEvaluator(QUERIES, CORPUS, QRELS)
    assert set(evaluator(KeywordEncoder())) == {
        "val_mrr@10",
        "val_ndcg@10",
        "val_recall@100",
        "val_map",
        "val_hit@10",
    }
    assert evaluator.primary_metric == "val_mrr@10"


def test_encoder_called_once_per_side_per_evaluation():
    encoder = KeywordEncoder()
    evaluator = keyword_evaluator(max_batch_size=2)
    evaluator.evaluate(encoder)
    assert sum(n for kind, n in encoder.calls if kind == "document") == len(CORPUS)
    assert sum(n for kind, n in encoder.calls if kind == "query") == len(QUERIES)


def test_scifact_subset_equals_score_run_and_true_ranks_are_consistent():
    data = load_beir(SCIFACT, "test")
    vocab = ("cell", "cells", "cancer", "gene", "protein", "risk", "patients", "increase", "mice", "dna")
    evaluator = RetrievalEvaluator(
        data.queries, data.corpus, data.qrels, max_queries=60, corpus_sample=400, seed=3
    )
    result = evaluator.evaluate(KeywordEncoder(vocab))
    assert score_run(evaluator.qrels, result.run()) == pytest.approx(result.metrics, abs=1e-12)
    for qid, ranks in result.relevant_ranks.items():
        top = result.ranked_doc_ids(qid)
        for doc, rank in ranks.items():
            if doc in top:
                assert top.index(doc) + 1 == rank
            else:
                assert rank > len(top)


def test_corpus_reduction_and_query_cap_are_seeded():
    data = load_beir(SCIFACT, "test")
    a = RetrievalEvaluator(data.queries, data.corpus, data.qrels, corpus_sample=100, max_queries=25, seed=1)
    b = RetrievalEvaluator(data.queries, data.corpus, data.qrels, corpus_sample=100, max_queries=25, seed=1)
    c = RetrievalEvaluator(data.queries, data.corpus, data.qrels, corpus_sample=100, max_queries=25, seed=2)
    assert list(a.corpus) == list(b.corpus) and list(a.queries) == list(b.queries)
    assert list(a.queries) != list(c.queries)
    judged = {d for docs in a.qrels.values() for d in docs}
    assert judged <= set(a.corpus)
    assert len(a.corpus) == len(judged) + 100
    assert len(a.queries) == 25 and set(a.qrels) == set(a.queries)
    # corpus order is preserved (determinism of the ranking's tie positions)
    order = {d: i for i, d in enumerate(data.corpus)}
    assert [order[d] for d in a.corpus] == sorted(order[d] for d in a.corpus)


def test_missing_ids_error_names_how_many_and_examples():
    qrels = {**QRELS, "q9": {"d1": 1}, "q1": {"d1": 1, "dX": 1, "dY": 2}}
    with pytest.raises(
        ValueError, match=r"1 query ids .* \['q9'\].*2 doc ids .* \['dX', 'dY'\].*missing='drop'"
    ):
        RetrievalEvaluator(QUERIES, CORPUS, qrels)


def test_missing_drop_and_keep():
    qrels = {"q1": {"d1": 1, "dX": 1}, "q2": {"d2": 1}, "q9": {"d1": 1}}
    kw = dict(metrics=["recall@3"], depth=3, primary_metric="recall@3")
    dropped = RetrievalEvaluator(QUERIES, CORPUS, qrels, missing="drop", **kw)
    assert dropped.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}
    kept = RetrievalEvaluator(QUERIES, CORPUS, qrels, missing="keep", **kw)
    assert kept.qrels == {"q1": {"d1": 1, "dX": 1}, "q2": {"d2": 1}}
    # q1 finds d1 at rank 2: recall 1/1 when dX is dropped, 1/2 when it is kept (unretrievable)
    assert dropped.evaluate(KeywordEncoder()).metrics["recall@3"] == pytest.approx(1.0)
    assert kept.evaluate(KeywordEncoder()).metrics["recall@3"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("queries", "corpus", "qrels", "message"),
    [
        (QUERIES, {}, QRELS, "corpus is empty"),
        ({}, CORPUS, QRELS, "no queries"),
        (QUERIES, CORPUS, {}, "qrels are empty"),
        (QUERIES, CORPUS, {"q1": {"d1": 0}}, "No query has a relevant document"),
    ],
)
def test_empty_inputs_are_clear_errors(queries, corpus, qrels, message):
    with pytest.raises(ValueError, match=message):
        RetrievalEvaluator(queries, corpus, qrels)


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="precision"):
        keyword_evaluator(precision="int8")
    with pytest.raises(ValueError, match="depth"):
        RetrievalEvaluator(QUERIES, CORPUS, QRELS, depth=5)  # recall@100 > depth
    with pytest.raises(ValueError, match="Unknown metric"):
        keyword_evaluator(metrics=["ndcg@3", "mmr@3"])


def test_models_that_cannot_encode():
    evaluator = keyword_evaluator()
    with pytest.raises(TypeError, match="encode_texts"):
        evaluator.evaluate(object())

    class WrongShape(KeywordEncoder):
        def encode_texts(self, texts, kind):
            return np.zeros((len(texts) + 1, 4), dtype=np.float32)

    with pytest.raises(ValueError, match="shape"):
        evaluator.evaluate(WrongShape())

    class Broken(KeywordEncoder):
        def encode_texts(self, texts, kind):
            raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match=r"Broken failed to encode .*CUDA out of memory"):
        evaluator.evaluate(Broken())

    class NaNs(KeywordEncoder):
        def encode_texts(self, texts, kind):
            return np.full((len(texts), 4), np.nan, dtype=np.float32)

    with pytest.raises(ValueError, match="NaN"):
        evaluator.evaluate(NaNs())


def test_plan_batches_respects_the_token_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=500)
    batches = plan_batches(lengths, batch_tokens=1024, max_batch_size=64)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    for batch in batches:
        assert len(batch) <= 64
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= 1024
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)  # longest first


def test_tiny_sentence_transformer_tokenises_once_and_restores_training_mode(tmp_path, monkeypatch):
    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(tmp_path)
    data = load_beir(SCIFACT, "test")
    evaluator = RetrievalEvaluator(data.queries, data.corpus, data.qrels, max_queries=20, corpus_sample=80)
    calls = []
    method = "preprocess" if hasattr(model, "preprocess") else "tokenize"  # `tokenize` before sentence-transformers 6
    original = getattr(model, method)
    monkeypatch.setattr(model, method, lambda *a, **k: calls.append(len(a[0])) or original(*a, **k))
    model.train()
    first = evaluator(model)
    assert model.training, "training mode must be restored"
    tokenised = sum(calls)
    assert tokenised == len(evaluator.corpus) + len(evaluator.queries)
    model.eval()
    second = evaluator(model)
    assert not model.training
    assert sum(calls) == tokenised, "the second evaluation must reuse the cached token ids"
    assert second == first
    # and the numbers equal sentence-transformers' own encode() ranking, scored by score_run
    q = compat.encode_queries(
        model, [evaluator.queries[i] for i in evaluator.last_result.query_ids], convert_to_tensor=True
    )
    d = compat.encode_documents(
        model, [evaluator.corpus[i] for i in evaluator.last_result.doc_ids], convert_to_tensor=True
    )
    scores = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(d, dim=1).T
    run = {
        qid: {evaluator.last_result.doc_ids[j]: float(s) for j, s in enumerate(row.tolist())}
        for qid, row in zip(evaluator.last_result.query_ids, scores, strict=True)
    }
    reference = score_run(evaluator.qrels, run)
    assert first == pytest.approx({f"val_{k}": v for k, v in reference.items()}, abs=1e-6)


def test_sentence_transformer_trainer_selects_the_best_model(tmp_path):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(tmp_path / "model")
    data = load_beir(SCIFACT, "train")
    evaluator = RetrievalEvaluator(data.queries, data.corpus, data.qrels, max_queries=16, corpus_sample=48)
    pairs = [(evaluator.queries[q], evaluator.corpus[d]) for q, docs in evaluator.qrels.items() for d in docs]
    train = Dataset.from_dict({"anchor": [a for a, _ in pairs] * 2, "positive": [p for _, p in pairs] * 2})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        max_steps=3,
        learning_rate=5e-3,
        eval_strategy="steps",
        eval_steps=1,
        save_strategy="steps",
        save_steps=1,
        logging_steps=1,
        metric_for_best_model="eval_val_mrr@10",
        load_best_model_at_end=True,
        report_to=[],
        use_cpu=True,
        seed=0,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train,
        loss=compat.st_losses().MultipleNegativesRankingLoss(model),
        evaluator=evaluator,
    )
    trainer.train()
    evals = [log for log in trainer.state.log_history if "eval_val_mrr@10" in log]
    assert len(evals) == 3
    assert {"eval_val_ndcg@10", "eval_val_recall@100", "eval_val_map", "eval_val_hit@10"} <= set(evals[0])
    assert trainer.state.best_metric == max(log["eval_val_mrr@10"] for log in evals)
    best_step = max(evals, key=lambda log: log["eval_val_mrr@10"])["step"]
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best_step}")
    # the loaded best model scores what it scored when it was the best
    assert evaluator(model)["val_mrr@10"] == pytest.approx(trainer.state.best_metric, abs=1e-6)


def test_progress_bar_counts_every_encoded_text(capsys) -> None:
    """`show_progress_bar=True` shows one bar per encoding pass (docs, then queries) sized to its texts."""
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

    corpus = {f"d{i}": f"cancer cells grow {i}" for i in range(7)}
    queries = {"q1": "cancer", "q2": "cells"}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    evaluator = RetrievalEvaluator(queries, corpus, qrels, show_progress_bar=True)
    evaluator.evaluate(_KeywordProgressEncoder())
    err = capsys.readouterr().err
    assert "val: encoding documents" in err and "/7 " in err
    assert "val: encoding queries" in err and "/2 " in err
    quiet = RetrievalEvaluator(queries, corpus, qrels)
    quiet.evaluate(_KeywordProgressEncoder())
    assert "encoding" not in capsys.readouterr().err


class _KeywordProgressEncoder:
    """A text-level encoder: counts of two keywords."""

    similarity = "dot"

    def encode_texts(self, texts, kind):
        import torch

        return torch.tensor([[t.count("cancer") + 0.1, t.count("cells") + 0.1] for t in texts])

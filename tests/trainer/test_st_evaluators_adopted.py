"""sentence-transformers' own evaluators kept in a pipeline: `SearchWandbCallback()` adopts them.

Three pipelines as users write them (a bi-encoder with `InformationRetrievalEvaluator` inside a
`SequentialEvaluator`, a SPLADE model with `SparseInformationRetrievalEvaluator`, a reranker with
`CrossEncoderRerankingEvaluator`), each given only `trainer.add_callback(SearchWandbCallback())`, wandb offline
and read back with wandb's own reader. Asserted: their keys intact (in the trainer's metrics and the run),
their values equal to their own evaluator's on the same model and data, best tracking (also on their key form),
the best-model artifact, tables and histograms in the one run, `metric_for_best_model` +
`load_best_model_at_end` working on their key. Before adoption the run held their metrics and nothing else.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from hf_search_wandb.core import compat
from hf_search_wandb.core.evaluation.adoption import AdoptedRetrievalEvaluator, adopt
from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.training import only_run, pairs, scifact
from tests.helpers.versions import requires
from tests.helpers.wandb_records import RunRecords

MEDIA = ("error_analysis", "score_distribution", "positive_scores", "negative_scores")


def _slice(
    n_queries: int = 16, n_other: int = 60
) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    data = scifact("test")
    qids = list(data.qrels)[:n_queries]
    relevant = {q: set(data.qrels[q]) for q in qids}
    docs = [d for q in qids for d in relevant[q]] + list(data.corpus)[:n_other]
    return {q: data.queries[q] for q in qids}, {d: data.corpus[d] for d in dict.fromkeys(docs)}, relevant


def _ir(name: str, **kwargs: Any) -> Any:
    queries, corpus, relevant = _slice()
    return compat.st_evaluation().InformationRetrievalEvaluator(queries, corpus, relevant, name=name, write_csv=False, **kwargs)


def _sparse_ir(name: str) -> Any:
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    queries, corpus, relevant = _slice()
    return SparseInformationRetrievalEvaluator(queries, corpus, relevant, name=name, write_csv=False)


def _multi_vector_ir(name: str) -> Any:
    from sentence_transformers.multi_vector_encoder.evaluation import MultiVectorInformationRetrievalEvaluator

    queries, corpus, relevant = _slice()
    return MultiVectorInformationRetrievalEvaluator(queries, corpus, relevant, name=name, write_csv=False)


def _reranking(name: str, **kwargs: Any) -> Any:
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    queries, corpus, relevant = _slice()
    rng = random.Random(0)
    texts = list(corpus.values())
    samples = []
    for i, (qid, docs) in enumerate(relevant.items()):
        positives = [corpus[d] for d in sorted(docs)]
        documents = rng.sample(texts, 12) + (positives[:1] if i % 2 else [])  # half miss their positive
        samples.append({"query": queries[qid], "positive": positives, "documents": documents})
    return CrossEncoderRerankingEvaluator(samples, name=name, write_csv=False, **kwargs)


def _theirs_only(metrics: dict[str, float], theirs: dict[str, float]) -> dict[str, float]:
    return {k: metrics[k] for k in theirs}


# ---------------------------------------------------------------- their keys, their values, one encoding
SPARSE, RERANKING = requires("SparseEncoder"), requires("CrossEncoderTrainer")
MULTI_VECTOR = requires("MultiVectorEncoder")


@pytest.mark.parametrize(
    "family",
    ["ir", pytest.param("sparse", marks=SPARSE), pytest.param("reranking", marks=RERANKING),
     pytest.param("reranking-negatives", marks=RERANKING), pytest.param("multi-vector", marks=MULTI_VECTOR)],
)  # fmt: skip
def test_adopted_evaluator_returns_their_keys_with_their_values(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Equal on a CPU said to compute bf16 natively too: an adopted evaluator runs the model as theirs does
    (no autocast), so their keys do not shift when a pipeline gains the callback."""
    from hf_search_wandb.core.evaluation.precision import NATIVE_BF16_ENV
    from tests.helpers import tiny_models

    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    if family == "multi-vector":  # sentence-transformers' MultiVectorInformationRetrievalEvaluator is an IR one
        model, make = tiny_models.make_tiny_multi_vector(tmp_path), lambda: _multi_vector_ir("mv")
    elif family == "ir":
        model, make = tiny_models.make_tiny_sentence_transformer(tmp_path), lambda: _ir("sf")
    elif family == "sparse":
        model, make = tiny_models.make_tiny_sparse_encoder(tmp_path), lambda: _sparse_ir("sp")
    elif family == "reranking":
        model, make = tiny_models.make_tiny_cross_encoder(tmp_path), lambda: _reranking("rr")
    else:  # positive + negative samples, and positives not forced into the candidates
        model = tiny_models.make_tiny_cross_encoder(tmp_path)

        def make() -> Any:
            ev = _reranking("rr2", always_rerank_positives=False)
            ev.samples = [{"query": s["query"], "positive": s["positive"], "negative": s["documents"][:6]}
                          for s in ev.samples]  # fmt: skip
            return ev

    theirs = make()(model)
    outcome = adopt(make())
    assert outcome.adopted and outcome.reason is None
    ours = outcome.evaluator(model)
    assert set(theirs) <= set(ours)  # every key of theirs, plus ours
    assert _theirs_only(ours, theirs) == pytest.approx(theirs, rel=1e-6, abs=1e-6)  # their FLOPS is float32
    assert outcome.evaluator.last_result is not None  # the rankings the tables reuse
    assert outcome.evaluator.last_result.precision == "fp32"


def test_unadoptable_evaluator_runs_as_it_is_with_the_reason() -> None:
    from sentence_transformers.util import cos_sim, dot_score

    outcome = adopt(_ir("sf", score_functions={"cosine": cos_sim, "dot": dot_score}))
    assert not outcome.adopted
    assert "several functions (cosine, dot)" in (outcome.reason or "")


def test_their_metric_forms_are_accepted_as_eval_metric() -> None:
    assert (
        SearchWandbCallback(mode="disabled", eval_metric="cosine_ndcg@10").options.eval_metric
        == "cosine_ndcg@10"
    )
    assert (
        SearchWandbCallback(mode="disabled", eval_metric="sf_dot_accuracy@1").options.eval_metric
        == "sf_dot_accuracy@1"
    )
    with pytest.raises(ValueError, match="Unknown metric"):
        SearchWandbCallback(mode="disabled", eval_metric="cosine_nope@10")


# ---------------------------------------------------------------- whole pipelines
def _offline(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(root))
    wandb.teardown()


def _anchors(n: int = 32) -> Any:
    from datasets import Dataset

    rows = pairs(n)
    return Dataset.from_dict(
        {"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]}
    )


def _assert_product(
    run: RunRecords, namespaces: tuple[str, ...], metric: str = "mrr@10", examples: str = "retrieval_examples"
) -> None:
    """Best value in the summary, a model artifact, tables and histograms, all in the one run."""
    assert f"best/{metric}" in run.summary and "best/step" in run.summary
    assert [a for a in run.artifacts if a.get("type") == "model"], "no best-model artifact"
    media_rows = [row for row in run.history if any(k.endswith(f"{examples}._type") for k in row)]
    assert media_rows, "no example tables"
    keys = {k for row in media_rows for k in row}
    for namespace in namespaces:
        prefix = f"{namespace}/" if namespace else ""
        for name in (examples, *MEDIA):
            assert f"{prefix}{name}._type" in keys, f"{prefix}{name}"


def test_bi_encoder_pipeline_with_a_sequential_of_their_ir_evaluators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    SequentialEvaluator = compat.st_evaluation().SequentialEvaluator
    MultipleNegativesRankingLoss = compat.st_losses().MultipleNegativesRankingLoss

    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    _offline(monkeypatch, tmp_path)
    model = make_tiny_sentence_transformer(tmp_path / "model")
    sequential = SequentialEvaluator([_ir("scifact"), _ir("scifact_small", ndcg_at_k=[5, 10])])
    args = SentenceTransformerTrainingArguments(
        str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=8, logging_steps=2, eval_strategy="steps",
        eval_steps=4, save_strategy="steps", save_steps=4, learning_rate=1e-3, seed=1, report_to="none",
        disable_tqdm=True, load_best_model_at_end=True, metric_for_best_model="eval_scifact_cosine_ndcg@10",
    )  # fmt: skip
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=_anchors(), loss=MultipleNegativesRankingLoss(model), evaluator=sequential
    )  # fmt: skip
    callback = SearchWandbCallback(eval_metric="cosine_ndcg@10")
    trainer.add_callback(callback)
    trainer.train()
    callback.finish()
    run = only_run(tmp_path)

    # their keys intact, in the trainer's metrics and in the run; the sequential score still computed
    evals = [entry for entry in trainer.state.log_history if "eval_scifact_cosine_ndcg@10" in entry]
    assert len(evals) == 2 and all(
        "eval_sequential_score" in e and "eval_scifact_small_cosine_ndcg@5" in e for e in evals
    )
    assert all(isinstance(ev, AdoptedRetrievalEvaluator) for ev in sequential.evaluators)
    assert run.series("scifact/cosine_ndcg@10") == pytest.approx(
        [e["eval_scifact_cosine_ndcg@10"] for e in evals]
    )
    # load_best_model_at_end on their key: the trainer's best is the best logged value
    assert trainer.state.best_metric == pytest.approx(max(e["eval_scifact_cosine_ndcg@10"] for e in evals))
    # best tracking on their key form, on the first evaluator (the primary)
    assert run.summary["best/cosine_ndcg@10"] == pytest.approx(trainer.state.best_metric)
    _assert_product(run, ("scifact", "scifact_small"), metric="cosine_ndcg@10")
    # values equal to their own evaluator's on the model the trainer holds now (the best, reloaded)
    best_step = run.summary["best/step"]
    logged = next(e for e in evals if e["step"] == best_step)
    fresh = _ir("scifact")(trainer.model)
    assert logged["eval_scifact_cosine_ndcg@10"] == pytest.approx(fresh["scifact_cosine_ndcg@10"], abs=1e-6)
    assert logged["eval_scifact_cosine_map@100"] == pytest.approx(fresh["scifact_cosine_map@100"], abs=1e-6)


@SPARSE
def test_splade_pipeline_with_their_sparse_evaluator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss

    from tests.helpers.tiny_models import make_tiny_sparse_encoder

    _offline(monkeypatch, tmp_path)
    model = make_tiny_sparse_encoder(tmp_path / "model")
    loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=3e-3,
                      query_regularizer_weight=5e-3)  # fmt: skip
    args = SparseEncoderTrainingArguments(
        str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=8, logging_steps=2, eval_strategy="steps",
        eval_steps=4, save_strategy="no", learning_rate=1e-3, seed=1, report_to="none", disable_tqdm=True,
    )  # fmt: skip
    evaluator = _sparse_ir("splade")
    trainer = SparseEncoderTrainer(
        model=model, args=args, train_dataset=_anchors(), loss=loss, evaluator=evaluator
    )
    callback = SearchWandbCallback()
    trainer.add_callback(callback)
    trainer.train()
    callback.finish()
    run = only_run(tmp_path)

    last = [e for e in trainer.state.log_history if "eval_splade_dot_ndcg@10" in e][-1]
    for key in ("dot_mrr@10", "dot_map@100", "query_active_dims", "corpus_sparsity_ratio", "avg_flops"):
        assert f"eval_splade_{key}" in last, key
        assert f"val/{key}" in run.history[-1] or run.series(f"val/{key}"), key
    fresh = _sparse_ir("splade")(trainer.model)  # the model after its last step = the last evaluation's
    for key, value in fresh.items():
        assert last[f"eval_{key}"] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    _assert_product(run, ("",))


@RERANKING
def test_reranker_pipeline_with_their_reranking_evaluator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from tests.helpers.tiny_models import make_tiny_cross_encoder

    _offline(monkeypatch, tmp_path)
    model = make_tiny_cross_encoder(tmp_path / "model")
    rows = pairs(24)
    train = Dataset.from_list(
        [{"query": r["query"], "doc": r["document"][:120], "label": 1.0} for r in rows]
        + [{"query": r["query"], "doc": rows[(i + 5) % len(rows)]["document"][:120], "label": 0.0}
           for i, r in enumerate(rows)]
    )  # fmt: skip
    args = CrossEncoderTrainingArguments(
        str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=6, logging_steps=2, eval_strategy="steps",
        eval_steps=3, save_strategy="no", learning_rate=1e-3, seed=1, report_to="none", disable_tqdm=True,
        use_cpu=True,
    )  # fmt: skip
    evaluator = _reranking("rerank")
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=train, loss=BinaryCrossEntropyLoss(model),
                                  evaluator=evaluator)  # fmt: skip
    callback = SearchWandbCallback()
    trainer.add_callback(callback)
    trainer.train()
    callback.finish()
    run = only_run(tmp_path)

    last = [e for e in trainer.state.log_history if "eval_rerank_ndcg@10" in e][-1]
    fresh = _reranking("rerank")(trainer.model)
    for key, value in fresh.items():  # map, mrr@10, ndcg@10 and the base_* of their first stage
        assert last[f"eval_{key}"] == pytest.approx(value, abs=1e-6), key
    assert run.series("val/base_map") and run.series("val/first_stage/ndcg@10")
    _assert_product(run, ("",), examples="reranking_examples")


def _local_nanobeir(root: Path) -> str:
    """A NanoBEIR-layout dataset saved locally (configs corpus / queries / qrels, split `NanoSciFact`), as a
    user mirrors `sentence-transformers/NanoBEIR-en` for an offline cluster."""
    from datasets import Dataset

    queries, corpus, relevant = _slice()
    parts = {
        "corpus": Dataset.from_dict({"_id": list(corpus), "text": list(corpus.values())}),
        "queries": Dataset.from_dict({"_id": list(queries), "text": list(queries.values())}),
        "qrels": Dataset.from_list([{"query-id": q, "corpus-id": d} for q, docs in relevant.items() for d in sorted(docs)]),
    }
    lines = ["---", "configs:"]
    for subset, dataset in parts.items():
        (root / subset).mkdir(parents=True)
        dataset.to_parquet(root / subset / "NanoSciFact.parquet")
        lines += [f"- config_name: {subset}", "  data_files:", "  - split: NanoSciFact", f"    path: {subset}/NanoSciFact.parquet"]
    (root / "README.md").write_text("\n".join([*lines, "---", ""]))
    return str(root)


def test_nanobeir_evaluator_on_local_data_is_adopted_member_by_member(tmp_path: Path) -> None:
    NanoBEIREvaluator = compat.st_evaluation().NanoBEIREvaluator
    if "dataset_id" not in NanoBEIREvaluator.__init__.__code__.co_varnames:
        pytest.skip("this sentence-transformers' NanoBEIREvaluator loads only from the Hub (no dataset_id=)")
    from hf_search_wandb.trainer.evaluator_set import adopt_evaluators, flatten_evaluators
    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(tmp_path / "model")
    local = _local_nanobeir(tmp_path / "nanobeir")
    theirs = NanoBEIREvaluator(["scifact"], dataset_id=local, write_csv=False)(model)
    nano, tried = adopt_evaluators(NanoBEIREvaluator(["scifact"], dataset_id=local, write_csv=False))
    assert [t.adopted for t in tried] == [True]
    assert [type(e).__name__ for e in flatten_evaluators(nano)] == ["AdoptedRetrievalEvaluator"]
    ours = nano(model)
    assert "NanoBEIR_mean_cosine_ndcg@10" in theirs  # their aggregate, still computed from their keys
    assert {k: ours[k] for k in theirs} == pytest.approx(theirs, abs=1e-6)


def test_a_pipeline_with_no_retrieval_evaluator_is_told_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    TripletEvaluator = compat.st_evaluation().TripletEvaluator
    MultipleNegativesRankingLoss = compat.st_losses().MultipleNegativesRankingLoss

    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    _offline(monkeypatch, tmp_path)
    model = make_tiny_sentence_transformer(tmp_path / "model")
    rows = pairs(8)
    triplets = TripletEvaluator([r["query"] for r in rows], [r["document"] for r in rows],
                                [r["document"] for r in rows[1:] + rows[:1]], name="triplets")  # fmt: skip
    args = SentenceTransformerTrainingArguments(str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=1,
                                                report_to="none", disable_tqdm=True, save_strategy="no")  # fmt: skip
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=_anchors(8),
                                         loss=MultipleNegativesRankingLoss(model), evaluator=triplets)  # fmt: skip
    callback = SearchWandbCallback()
    trainer.add_callback(callback)
    with caplog.at_level(logging.WARNING):
        trainer.train()
    callback.finish()
    warned = [r.message for r in caplog.records if "no retrieval evaluator among the trainer's" in r.message]
    assert len(warned) == 1 and "TripletEvaluator" in warned[0] and "Fix: add a RetrievalEvaluator" in warned[0]
    run = only_run(tmp_path)
    assert run.series("triplets/cosine_accuracy") or run.series("val/cosine_accuracy")  # still logged (itself)

"""SearchWandbCallback on a MultiVectorEncoderTrainer (ColBERT-style), read back from wandb's offline files.

A tiny random multi-vector model (query expansion to 8 tokens, a document skiplist) trains 8 steps with
MultiVectorMultipleNegativesRankingLoss, our RetrievalEvaluator as the trainer's evaluator, wandb offline.
Asserted on what `wandb leet inspect --json` reads: the prescribed names and the token figures, the
`multi-vector` config, the tables and histograms, and the best model as an artifact that loads back as a
MultiVectorEncoder and scores what was logged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.training import (
    SPEC_CONFIG_KEYS,
    TRAIN_METRICS,
    VAL_METRICS,
    assert_one_step_axis,
    make_evaluator,
    only_run,
    pairs,
    scifact,
)

TOKEN_METRICS = ("val/query_tokens", "val/corpus_tokens", "val/index_mb")


@pytest.fixture(scope="module")
def colbert_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from datasets import Dataset
    from sentence_transformers.multi_vector_encoder import (
        MultiVectorEncoderTrainer,
        MultiVectorEncoderTrainingArguments,
    )
    from sentence_transformers.multi_vector_encoder.losses import MultiVectorMultipleNegativesRankingLoss

    from tests.helpers.tiny_models import make_tiny_multi_vector

    root = tmp_path_factory.mktemp("colbert")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_DIR", str(root))
    try:
        import wandb

        wandb.teardown()
        model = make_tiny_multi_vector(
            root / "model", query_expansion={"strategy": "fixed", "length": 8}, skiplist_words=["the", "of"]
        )
        evaluator = make_evaluator()
        rows = pairs(32)
        train = Dataset.from_dict(
            {"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]}
        )
        args = MultiVectorEncoderTrainingArguments(
            str(root / "out"), per_device_train_batch_size=8, num_train_epochs=2, logging_steps=1,
            eval_strategy="steps", eval_steps=4, save_strategy="no", learning_rate=1e-3, seed=1,
            report_to="none", disable_tqdm=True,
        )  # fmt: skip
        callback = SearchWandbCallback(
            evaluator, dataset_name="scifact", log_tables="1", model_artifact="best"
        )
        trainer = MultiVectorEncoderTrainer(
            model=model, args=args, train_dataset=train, loss=MultiVectorMultipleNegativesRankingLoss(model),
            evaluator=evaluator, callbacks=[callback],
        )  # fmt: skip
        trainer.train()
        callback.finish()  # the run stays open after train() for later evaluations: close it to read it whole
        yield only_run(root), trainer, evaluator, root
    finally:
        mp.undo()
        import wandb

        wandb.teardown()


def test_every_prescribed_name_and_the_token_figures(colbert_run: Any) -> None:
    run, trainer, evaluator, _ = colbert_run
    keys = {k for row in run.history for k in row}
    for name in (*TRAIN_METRICS, *VAL_METRICS, *TOKEN_METRICS):
        assert name in keys, name
    assert run.series("val/query_tokens") == [8.0, 8.0]  # one per evaluation: every query expanded to 8
    last = evaluator.last_result
    assert run.series("val/corpus_tokens")[-1] == pytest.approx(float(last.doc_tokens.mean()))
    assert run.series("val/index_mb")[-1] == pytest.approx(last.doc_tokens.sum() * 32 * 4 / 2**20)
    assert run.series("train/global_step")[-1] == trainer.state.global_step == 8
    assert_one_step_axis(run)


def test_config_says_multi_vector_with_dim_similarity_lengths_expansion_skiplist(colbert_run: Any) -> None:
    run, _, _, _ = colbert_run
    config = run.config
    missing = [k for k in SPEC_CONFIG_KEYS if k not in config]
    assert not missing, missing
    assert config["model_type"] == "multi-vector"
    assert config["token_dim"] == 32 and config["similarity"] == "maxsim"
    assert config["query_length"] == 8 and config["document_length"] == 64
    assert config["query_expansion"] == "fixed:8"
    assert config["skiplist_words"] == ["the", "of"] and config["skiplist_tasks"] == ["document"]
    assert config["loss_function"] == "MultiVectorMultipleNegativesRankingLoss"
    assert run.summary_view["name"].startswith("multi-vector-")


def test_tables_and_histograms(colbert_run: Any) -> None:
    run, _, _, _ = colbert_run
    media = [row for row in run.history if "retrieval_examples._type" in row]
    assert len(media) == 2
    for row in media:
        for key in ("retrieval_examples", "error_analysis", "score_distribution", "document_tokens"):
            assert f"{key}._type" in row, key
    _, _, evaluator, _ = colbert_run
    last = media[-1]  # every query expanded to 8 scored tokens; one count per document
    assert sum(last["query_tokens_distribution.values"]) == len(evaluator.queries)
    assert last["query_tokens_distribution.bins"][0] <= 8 <= last["query_tokens_distribution.bins"][-1]
    assert sum(last["document_tokens.values"]) == len(evaluator.doc_ids)


def test_best_model_artifact_loads_back_as_a_multi_vector_encoder_and_scores_the_same(
    colbert_run: Any,
) -> None:
    from sentence_transformers import MultiVectorEncoder

    from hf_search_wandb.tracking.artifacts import load_model_from_artifact, restore_staged_artifact

    run, _, evaluator, root = colbert_run
    records = [a for a in run.artifacts if a.get("type") == "model"]
    assert records and json.loads(records[-1]["metadata"])["model_type"] == "multi-vector"
    run_id = run.summary_view["run_id"]
    restored = restore_staged_artifact(f"search-model-{run_id}:best", root / "restored", wandb_dir=root)
    model = load_model_from_artifact(str(restored))
    assert isinstance(model, MultiVectorEncoder)
    assert model[0].query_expansion["length"] == 8 and model[1].skiplist_words == ["the", "of"]
    best_step = run.summary["best/step"]
    logged = next(r for r in run.history if r["train/global_step"] == best_step and "val/mrr@10" in r)
    result = evaluator.evaluate(model)
    for name, value in result.metrics.items():
        assert value == pytest.approx(logged[f"val/{name}"], abs=1e-6), name


def test_a_first_stage_re_scored_is_logged_as_such(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """MultiVectorEncoderTrainer + RerankingEvaluator(candidates="bm25"): the way to evaluate a late-interaction
    model on a corpus too big for exact search. The run holds the re-scored metrics beside the first stage's, the
    token figures of what was encoded, `eval_search` saying what was done, and the reranking tables."""
    from datasets import Dataset
    from sentence_transformers.multi_vector_encoder import (
        MultiVectorEncoderTrainer,
        MultiVectorEncoderTrainingArguments,
    )
    from sentence_transformers.multi_vector_encoder.losses import MultiVectorMultipleNegativesRankingLoss

    from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
    from tests.helpers.tiny_models import make_tiny_multi_vector

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    model = make_tiny_multi_vector(tmp_path / "model", query_expansion={"strategy": "fixed", "length": 8})
    data = scifact("test")
    evaluator = RerankingEvaluator(data.queries, data.corpus, data.qrels, "bm25", depth=20, max_queries=12)
    rows = pairs(16)
    train = Dataset.from_dict({"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]})
    args = MultiVectorEncoderTrainingArguments(
        str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=2, logging_steps=1, eval_strategy="steps",
        eval_steps=2, save_strategy="no", seed=1, report_to="none", disable_tqdm=True,
    )  # fmt: skip
    callback = SearchWandbCallback(evaluator, log_tables="every", model_artifact="off")
    trainer = MultiVectorEncoderTrainer(
        model=model, args=args, train_dataset=train, loss=MultiVectorMultipleNegativesRankingLoss(model),
        evaluator=evaluator, callbacks=[callback],
    )  # fmt: skip
    trainer.train()
    callback.finish()
    run = only_run(tmp_path)
    assert run.config["eval_search"] == "bm25 top 20, re-scored" and run.config["model_type"] == "multi-vector"
    result = evaluator.last_result
    assert result.scorer == "maxsim"
    row = next(r for r in run.history if "val/ndcg@10" in r)
    assert row["val/ndcg@10"] == pytest.approx(result.metrics["ndcg@10"])
    assert row["val/first_stage/ndcg@10"] == pytest.approx(result.first_stage_metrics["ndcg@10"])
    assert row["val/query_tokens"] == 8.0 and row["val/index_mb"] > 0
    media = [r for r in run.history if "reranking_examples._type" in r]
    assert len(media) == 1 and "error_analysis._type" in media[0]

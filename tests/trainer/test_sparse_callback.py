"""SearchWandbCallback on a SparseEncoderTrainer (SPLADE), read back from wandb's offline files.

A tiny random SPLADE model trains 8 steps with SpladeLoss (in-batch negatives + FLOPS regularisers), our
RetrievalEvaluator as the trainer's evaluator, wandb offline. Asserted on what `wandb leet inspect --json`
reads: the prescribed names, the sparsity figures and regulariser terms, the `splade` config, the media
(tables + document-length histogram), and the best model as an artifact that loads back as a SparseEncoder
and scores what was logged.
"""

from __future__ import annotations

import json
import math
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
)
from tests.helpers.versions import requires

pytestmark = requires("SparseEncoder")

SPARSE_METRICS = ("val/query_active_dims", "val/corpus_active_dims", "val/flops")
REGULARIZER_TERMS = (
    "train/base_loss",
    "train/document_regularizer_loss",
    "train/query_regularizer_loss",
    "train/document_regularizer_weight",
    "train/query_regularizer_weight",
)


@pytest.fixture(scope="module")
def splade_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from datasets import Dataset
    from sentence_transformers.sparse_encoder import (
        SparseEncoderTrainer,
        SparseEncoderTrainingArguments,
    )
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss

    from tests.helpers.tiny_models import make_tiny_sparse_encoder

    root = tmp_path_factory.mktemp("splade")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_DIR", str(root))
    try:
        import wandb

        wandb.teardown()
        model = make_tiny_sparse_encoder(root / "model")
        evaluator = make_evaluator()
        rows = pairs(32)
        train = Dataset.from_dict(
            {"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]}
        )
        loss = SpladeLoss(
            model, SparseMultipleNegativesRankingLoss(model),
            document_regularizer_weight=3e-3, query_regularizer_weight=5e-3,
        )  # fmt: skip
        args = SparseEncoderTrainingArguments(
            str(root / "out"), per_device_train_batch_size=8, num_train_epochs=2, logging_steps=1,
            eval_strategy="steps", eval_steps=4, save_strategy="no", learning_rate=1e-3, seed=1,
            report_to="none", disable_tqdm=True,
        )  # fmt: skip
        callback = SearchWandbCallback(
            evaluator, dataset_name="scifact", log_tables="1", model_artifact="best"
        )
        trainer = SparseEncoderTrainer(
            model=model, args=args, train_dataset=train, loss=loss, evaluator=evaluator, callbacks=[callback]
        )
        trainer.train()
        callback.finish()  # the run stays open after train() for later evaluations: close it to read it whole
        yield only_run(root), trainer, evaluator, root
    finally:
        mp.undo()
        import wandb

        wandb.teardown()


def test_every_prescribed_name_and_the_sparsity_figures(splade_run: Any) -> None:
    run, trainer, _, _ = splade_run
    keys = {k for row in run.history for k in row}
    for name in (*TRAIN_METRICS, *VAL_METRICS, *SPARSE_METRICS, *REGULARIZER_TERMS, "system/throughput"):
        assert name in keys, name
    assert len(run.series("val/corpus_active_dims")) == 2  # one per evaluation, with the IR metrics
    assert all(0 < v <= 126 for v in run.series("val/corpus_active_dims"))
    assert all(v > 0 and math.isfinite(v) for v in run.series("val/flops"))
    assert all(v >= 0 for v in run.series("train/document_regularizer_loss"))
    # the weights ramp up from 0 (sentence-transformers' scheduler) to at most the configured maximum
    weights = run.series("train/document_regularizer_weight")
    assert weights[0] < weights[-1] <= 3e-3
    assert run.series("train/global_step")[-1] == trainer.state.global_step == 8
    assert_one_step_axis(run)
    assert run.summary["val/flops"] == {"last": run.series("val/flops")[-1]}


def test_config_says_splade_with_pooling_activation_and_weights(splade_run: Any) -> None:
    run, _, _, _ = splade_run
    config = run.config
    missing = [k for k in SPEC_CONFIG_KEYS if k not in config]
    assert not missing, missing
    assert config["model_type"] == "splade"
    assert config["pooling_mode"] == "max" and config["activation_function"] == "relu"
    assert config["loss_function"] == "SpladeLoss"
    assert config["splade_base_loss"] == "SparseMultipleNegativesRankingLoss"
    # the maximum weights, although the scheduler had set the loss's weights to 0 when training began
    assert config["document_regularizer_weight"] == 3e-3 and config["query_regularizer_weight"] == 5e-3
    assert config["regularizer_weight_schedule"] == "quadratic"
    assert config["vocab_size"] == 126 and config["document_regularizer"] == "FlopsLoss"
    assert run.summary_view["name"].startswith("splade-")


def test_tables_and_the_document_length_histogram(splade_run: Any) -> None:
    run, _, evaluator, _ = splade_run
    media = [row for row in run.history if "retrieval_examples._type" in row]
    assert len(media) == 2
    for row in media:
        for key in ("retrieval_examples", "error_analysis", "score_distribution", "document_active_dims"):
            assert f"{key}._type" in row, key
    prefix = "document_active_dims."
    histogram = {k[len(prefix) :]: v for k, v in media[-1].items() if k.startswith(prefix)}
    assert histogram["_type"] == "histogram"
    assert sum(histogram["values"]) == len(evaluator.corpus)  # one count per document


def test_best_model_artifact_loads_back_as_a_sparse_encoder_and_scores_the_same(splade_run: Any) -> None:
    from sentence_transformers.sparse_encoder import SparseEncoder

    from hf_search_wandb.tracking.artifacts import load_model_from_artifact, restore_staged_artifact

    run, _, evaluator, root = splade_run
    records = [a for a in run.artifacts if a.get("type") == "model"]
    assert records and json.loads(records[-1]["metadata"])["model_type"] == "splade"
    run_id = run.summary_view["run_id"]
    restored = restore_staged_artifact(f"search-model-{run_id}:best", root / "restored", wandb_dir=root)
    model = load_model_from_artifact(str(restored))
    assert isinstance(model, SparseEncoder)
    best_step = run.summary["best/step"]
    logged = next(r for r in run.history if r["train/global_step"] == best_step and "val/mrr@10" in r)
    result = evaluator.evaluate(model)
    for name, value in result.metrics.items():
        assert value == pytest.approx(logged[f"val/{name}"], abs=1e-6), name


def test_regularizer_terms_are_training_series(splade_run: Any) -> None:
    run, _, _, _ = splade_run
    rows = [r for r in run.history if "train/loss" in r]
    assert len(rows) == 8
    for row in rows:  # every logged step carries the loss split into its terms
        terms = (
            row["train/base_loss"]
            + row["train/document_regularizer_loss"]
            + row["train/query_regularizer_loss"]
        )
        assert row["train/loss"] == pytest.approx(terms, abs=2e-4)  # ST rounds the terms to 4 decimals

"""Evaluations after `train()` land in the same run (issue 11.2); several evaluators each get their own
namespace, tables and histograms, and best tracking follows the primary one (issue 11.3).

Tiny models, wandb offline, every assertion on the run as wandb's reader reads it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hf_search_wandb.core import compat
from hf_search_wandb.trainer.callback import SearchWandbCallback
from hf_search_wandb.trainer.evaluator_set import evaluator_set
from tests.helpers.training import make_evaluator, named_evaluator, only_run, pairs, plain_trainer
from tests.helpers.wandb_records import RunRecords


def st_trainer(root: Path, callback: SearchWandbCallback, evaluator: Any, **overrides: Any) -> Any:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(root / "model")
    rows = pairs(16)
    train = Dataset.from_dict({"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]})
    kwargs: dict[str, Any] = dict(
        per_device_train_batch_size=8, max_steps=4, logging_steps=1, eval_strategy="steps", eval_steps=2,
        save_strategy="no", learning_rate=1e-3, seed=1, report_to="none", disable_tqdm=True,
    )  # fmt: skip
    kwargs.update(overrides)
    return SentenceTransformerTrainer(
        model=model, args=SentenceTransformerTrainingArguments(str(root / "out"), **kwargs), train_dataset=train,
        loss=compat.st_losses().MultipleNegativesRankingLoss(model), evaluator=evaluator, callbacks=[callback],
    )  # fmt: skip


def rows_with(run: RunRecords, key: str) -> list[dict[str, Any]]:
    return [r for r in run.history if key in r]


# --------------------------------------------------------------------------- 2. after train()


def test_train_then_evaluate_on_test_is_one_run_with_test_metrics(wandb_offline: Path) -> None:
    val = make_evaluator()
    callback = SearchWandbCallback(val, dataset_name="scifact", model_artifact="off", log_histograms=False)
    trainer = st_trainer(wandb_offline, callback, val)
    trainer.train()
    assert callback.active  # the run stays open for what comes after train()
    test = named_evaluator("test", max_queries=20, corpus_sample=60)
    logged = callback.evaluate(test)
    trainer.evaluate()  # the trainer's own evaluator again, after training
    callback.finish()
    assert not callback.active
    run = only_run(wandb_offline)
    assert run.state == "finished"
    final = trainer.state.global_step
    # the test split: its own namespace, at the final step, its value in the summary
    assert run.summary["test/ndcg@10"] == pytest.approx(logged["test/ndcg@10"])
    assert logged["test/ndcg@10"] == pytest.approx(test.last_result.metrics["ndcg@10"])
    assert [r["train/global_step"] for r in rows_with(run, "test/ndcg@10")] == [final]
    # with its own tables, namespaced; the training's tables stay top-level
    assert [r["train/global_step"] for r in rows_with(run, "test/retrieval_examples._type")] == [final]
    assert rows_with(run, "retrieval_examples._type")
    # trainer.evaluate() after train(): one more val/ row, at the final step; best tracking is training's
    val_steps = [r["train/global_step"] for r in rows_with(run, "val/mrr@10")]
    assert val_steps == [2, 4, final]
    assert run.summary["best/step"] in (2, 4)


def test_plain_trainer_evaluate_and_predict_after_train(wandb_offline: Path, tiny_bert_dir: Path) -> None:
    callback = SearchWandbCallback(make_evaluator(), log_tables="off", model_artifact="off")
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, max_steps=4, eval_steps=2)
    trainer.train()
    metrics = trainer.evaluate()
    output = trainer.predict(trainer.eval_dataset)
    callback.finish()
    run = only_run(wandb_offline)
    final = trainer.state.global_step
    assert [r["train/global_step"] for r in rows_with(run, "val/mrr@10")] == [2, 4, final]
    assert run.series("val/mrr@10")[-1] == pytest.approx(metrics["eval_val_mrr@10"])
    # predict(): the trainer's metrics under the prediction's prefix, same run, final step
    (row,) = rows_with(run, "test/loss")
    assert row["test/loss"] == pytest.approx(output.metrics["test_loss"]) and row["train/global_step"] == final
    assert "system/test_runtime" in row


def test_the_next_train_finishes_the_previous_run(wandb_offline: Path, tiny_bert_dir: Path) -> None:
    from tests.helpers.wandb_records import read_run, run_dirs

    callback = SearchWandbCallback(log_tables="off", model_artifact="off")
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, max_steps=2, eval_strategy="no")
    trainer.train()
    first = callback.run
    trainer.train()  # e.g. a sweep or hyperparameter search re-training with the same callback
    assert first._is_finished and callback.run is not first
    callback.finish()
    runs = [read_run(d) for d in run_dirs(wandb_offline)]
    assert [r.state for r in runs] == ["finished", "finished"]


# --------------------------------------------------------------------------- 3. several evaluators


def test_several_evaluators_on_a_plain_trainer_each_get_a_namespace(
    wandb_offline: Path, tiny_bert_dir: Path
) -> None:
    first, second = named_evaluator("scifact", 12), named_evaluator("scifact_small", 8, corpus_sample=30)
    callback = SearchWandbCallback([first, second], primary="scifact_small", model_artifact="best",
                                   log_histograms=True)  # fmt: skip
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, max_steps=4, eval_steps=2,
                            metric_for_best_model="eval_scifact_small_mrr@10")  # fmt: skip
    trainer.train()
    callback.finish()
    run = only_run(wandb_offline)
    for name in ("scifact", "scifact_small"):
        assert len(run.series(f"{name}/ndcg@10")) == 2, name
        assert run.summary[f"{name}/mrr@10"] == {"max": max(run.series(f"{name}/mrr@10"))}
        for media in ("retrieval_examples", "error_analysis", "score_distribution"):
            assert len(rows_with(run, f"{name}/{media}._type")) == 2, (name, media)
    assert not rows_with(run, "retrieval_examples._type") and not rows_with(run, "val/ndcg@10")
    assert len(run.series("val/loss")) == 2  # the trainer's loss: computed once for all evaluators
    # the trainer's metrics carry each evaluator; best tracking and the artifact follow the primary one
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert len(evals) == 2  # not vacuous: both evaluations are there to check
    assert all("eval_scifact_mrr@10" in h and "eval_scifact_small_mrr@10" in h for h in evals)
    primary = run.series("scifact_small/mrr@10")
    assert run.summary["best/mrr@10"] == pytest.approx(max(primary))
    if compat.transformers_version() >= compat.Version("4.47"):  # 4.46 tracks it only when it saves a checkpoint
        assert trainer.state.best_metric == pytest.approx(max(primary))
    (model,) = {a["name"] for a in run.artifacts if a.get("type") == "model"}
    assert model == f"search-model-{run.summary_view['run_id']}"


def test_sequential_evaluator_on_a_sentence_transformer_trainer(wandb_offline: Path) -> None:
    SequentialEvaluator = compat.st_evaluation().SequentialEvaluator
    first, second = named_evaluator("scifact", 12), named_evaluator("scifact_small", 8, corpus_sample=30)
    sequential = SequentialEvaluator([first, second])
    callback = SearchWandbCallback(sequential, model_artifact="off", log_histograms=False)
    trainer = st_trainer(wandb_offline, callback, sequential)
    trainer.train()
    callback.finish()
    run = only_run(wandb_offline)
    for name in ("scifact", "scifact_small"):
        assert len(run.series(f"{name}/mrr@10")) == 2, name
        assert len(rows_with(run, f"{name}/retrieval_examples._type")) == 2, name
    assert run.summary["best/mrr@10"] == pytest.approx(max(run.series("scifact/mrr@10")))  # the first


def test_evaluator_names_must_be_distinct_and_primary_known() -> None:
    with pytest.raises(ValueError, match="several evaluators are named 'val'"):
        SearchWandbCallback([make_evaluator(), make_evaluator()], mode="disabled")
    with pytest.raises(ValueError, match="primary='nope' is none of the evaluators"):
        SearchWandbCallback([named_evaluator("a", 5), named_evaluator("b", 5)], primary="nope", mode="disabled")
    with pytest.raises(ValueError, match="'train', a namespace the callback writes"):
        evaluator_set([named_evaluator("train", 5), named_evaluator("b", 5)])


def test_the_trainers_evaluator_replaces_a_same_named_callback_evaluator() -> None:
    """`SearchWandbCallback(ev_a)` with a `SentenceTransformerTrainer(evaluator=ev_b)`, both named `val`: the
    trainer's runs and keeps the rankings, so it is the one the callback reads (not an error, not two)."""
    callback_side, trainer_side = named_evaluator("val", 5), named_evaluator("val", 6)
    merged = evaluator_set(callback_side, trainer_side, primary=callback_side, strict=False)
    assert merged.evaluators == (trainer_side,) and merged.primary is trainer_side and not merged.several

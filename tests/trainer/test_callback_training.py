"""SearchWandbCallback on real (tiny) training runs, read back from wandb's offline files.

Each scenario trains a tiny model for a few steps with wandb in offline mode, then asserts on what
`wandb leet inspect --json` reads from the run directory: metric names and values, config keys,
summary, run count, state. Nothing is mocked.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest

from hf_search_wandb.core import compat
from hf_search_wandb.trainer.callback import SearchWandbCallback
from hf_search_wandb.trainer.resume import RUN_FILE
from tests.helpers.training import (
    SPEC_CONFIG_KEYS,
    TRAIN_METRICS,
    VAL_METRICS,
    assert_one_step_axis,
    make_evaluator,
    only_run,
    pairs,
    plain_trainer,
)
from tests.helpers.versions import resumable
from tests.helpers.wandb_records import RunRecords, read_run, run_dirs

# --------------------------------------------------------------------------- SentenceTransformerTrainer


@pytest.fixture(scope="module")
def st_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunRecords, Any, Any]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    root = tmp_path_factory.mktemp("st")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_DIR", str(root))
    try:
        model = make_tiny_sentence_transformer(root / "model")
        evaluator = make_evaluator()
        calls = {"n": 0}
        original = evaluator.evaluate

        def counting(m: Any) -> Any:
            calls["n"] += 1
            return original(m)

        evaluator.evaluate = counting  # type: ignore[method-assign]
        rows = pairs(32)
        train = Dataset.from_dict(
            {"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]}
        )
        args = SentenceTransformerTrainingArguments(
            str(root / "out"), per_device_train_batch_size=8, num_train_epochs=2, logging_steps=1,
            eval_strategy="steps", eval_steps=4, save_strategy="no", learning_rate=1e-3, seed=1,
            report_to="none", disable_tqdm=True,
        )  # fmt: skip
        callback = SearchWandbCallback(
            evaluator, dataset_name="scifact", log_tables="2", model_artifact="end"
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=train, loss=compat.st_losses().MultipleNegativesRankingLoss(model),
            evaluator=evaluator, callbacks=[callback],
        )  # fmt: skip
        trainer.train()
        yield only_run(root), trainer, calls
    finally:
        mp.undo()


def test_st_trainer_logs_every_prescribed_metric(st_run: tuple[RunRecords, Any, Any]) -> None:
    run, trainer, _ = st_run
    keys = {k for row in run.history for k in row}
    for name in (*TRAIN_METRICS, *VAL_METRICS, "system/throughput"):
        assert name in keys, name
    assert all(0.0 <= v <= 1.0 for name in VAL_METRICS for v in run.series(name))
    assert all(v > 0 and math.isfinite(v) for v in run.series("train/loss"))
    assert run.series("train/lr")[0] == pytest.approx(1e-3, rel=0.3)
    assert all(v > 0 for v in run.series("system/throughput"))
    # 8 steps, logging every step, 2 evaluations, 2 epochs
    assert run.series("train/global_step")[-1] == trainer.state.global_step == 8
    assert len(run.series("train/loss")) == 8
    assert len(run.series("val/mrr@10")) == 2
    assert len(run.series("train/epoch_loss")) == 2
    assert_one_step_axis(run)
    assert not [k for k in keys if k.startswith("eval/") or k == "train/learning_rate"]


def test_st_trainer_epoch_loss_is_mean_of_epoch_losses(st_run: tuple[RunRecords, Any, Any]) -> None:
    run, _, _ = st_run
    rows = [r for r in run.history if "train/loss" in r]
    first_epoch = [r["train/loss"] for r in rows if r["train/global_step"] <= 4]
    assert run.series("train/epoch_loss")[0] == pytest.approx(sum(first_epoch) / len(first_epoch))


def test_st_trainer_config_and_summary(st_run: tuple[RunRecords, Any, Any]) -> None:
    run, _, _ = st_run
    config = run.config
    missing = [k for k in SPEC_CONFIG_KEYS if k not in config]
    assert not missing, missing
    assert config["loss_function"] == "MultipleNegativesRankingLoss"
    assert config["effective_batch_size"] == 8 and config["batch_size"] == 8
    assert config["dataset_name"] == "scifact" and config["val_size"] == 12 and config["train_size"] == 32
    assert config["pooling_mode"] == "mean" and config["model_type"] == "bi-encoder"
    assert run.summary_view["name"].startswith("bi-encoder-bert-scifact-")
    assert "scifact" in run.summary_view["tags"]
    summary = run.summary
    assert summary["val/mrr@10"] == {"max": max(run.series("val/mrr@10"))}
    assert summary["best/mrr@10"] == pytest.approx(max(run.series("val/mrr@10")))
    assert run.state == "finished"


def test_st_trainer_evaluator_runs_once_per_evaluation(st_run: tuple[RunRecords, Any, Any]) -> None:
    run, _, calls = st_run
    assert calls["n"] == len(run.series("val/mrr@10")) == 2


def test_st_trainer_model_artifact_at_end(st_run: tuple[RunRecords, Any, Any]) -> None:
    run, _, _ = st_run
    names = [a.get("name") for a in run.artifacts if a.get("type") == "model"]
    assert names == [f"search-model-{run.summary_view['run_id']}"]


def test_st_trainer_tables_every_second_evaluation(st_run: tuple[RunRecords, Any, Any]) -> None:
    run, _, _ = st_run  # log_tables="2", two evaluations: media once, at the second one
    rows = [r for r in run.history if "retrieval_examples._type" in r]
    assert [r["train/global_step"] for r in rows] == [8]
    for key in ("error_analysis", "score_distribution", "positive_scores", "negative_scores"):
        assert f"{key}._type" in rows[0], key


# --------------------------------------------------------------------------- plain Trainer


def test_plain_trainer_runs_evaluator_and_feeds_best_model(wandb_offline: Path, tiny_bert_dir: Path) -> None:
    evaluator = make_evaluator()
    callback = SearchWandbCallback(evaluator, dataset_name="scifact", log_histograms=False)
    trainer = plain_trainer(
        tiny_bert_dir, wandb_offline / "out", callback, save_strategy="steps", save_steps=3,
        metric_for_best_model="eval_val_mrr@10", load_best_model_at_end=True,
    )  # fmt: skip
    trainer.train()
    run = only_run(wandb_offline)
    keys = {k for row in run.history for k in row}
    for name in (*TRAIN_METRICS, *VAL_METRICS, "val/loss", "system/throughput"):
        assert name in keys, name
    mrr = run.series("val/mrr@10")
    assert len(mrr) == 2 and len(run.series("val/loss")) == 2
    # the callback's metrics reached the trainer: best-model selection and log history use them
    assert trainer.state.best_metric == pytest.approx(max(mrr))
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert [h["eval_val_mrr@10"] for h in evals] == pytest.approx(mrr)
    # val/loss and val metrics of one evaluation are one row
    assert all("val/loss" in row for row in run.history if "val/mrr@10" in row)
    assert run.summary["val/loss"] == {"min": min(run.series("val/loss"))}
    assert run.config["pooling_mode"] == "mean" and run.config["train_size"] == 32
    assert_one_step_axis(run)
    assert (wandb_offline / "out" / "checkpoint-3" / RUN_FILE).is_file()
    # default policies: media after every evaluation, a model artifact version on each new best
    media = [r for r in run.history if "retrieval_examples._type" in r]
    assert [r["train/global_step"] for r in media] == [3, 6]
    assert not any("score_distribution._type" in r for r in media)
    improvements = 1 + sum(b > a for a, b in itertools.pairwise(mrr))
    models = [a for a in run.artifacts if a.get("type") == "model"]
    assert len(models) == improvements
    assert {a.get("name") for a in models} == {f"search-model-{run.summary_view['run_id']}"}


# --------------------------------------------------------------------------- coexistence with WandbCallback


@pytest.mark.parametrize("late", [False, True], ids=["callbacks-arg", "add_callback"])
def test_report_to_wandb_gives_one_run_without_duplicates(
    wandb_offline: Path, tiny_bert_dir: Path, late: bool, caplog: pytest.LogCaptureFixture
) -> None:
    import wandb
    from transformers.integrations import WandbCallback

    # transformers' WandbCallback calls wandb.init without dir=: make wandb re-read WANDB_DIR
    wandb.teardown()
    callback = SearchWandbCallback(
        make_evaluator(), dataset_name="scifact", log_tables="off", model_artifact="off"
    )
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, late=late, report_to=["wandb"])
    with caplog.at_level("WARNING", logger="hf_search_wandb.trainer.callback"):
        trainer.train()
    assert not any(isinstance(cb, WandbCallback) for cb in trainer.callback_handler.callbacks)
    run = only_run(wandb_offline)
    keys = {k for row in run.history for k in row}
    assert {"train/loss", "train/lr", "val/mrr@10", "val/loss"} <= keys
    # transformers' own names never appear: no second copy of the metrics
    assert not [k for k in keys if k.startswith("eval/") or k == "train/learning_rate"]
    assert len(run.series("train/loss")) == 6
    assert_one_step_axis(run)
    assert run.summary_view["name"].startswith("bi-encoder-tiny-scifact-")
    assert run.state == "finished"
    assert "took over" in caplog.text or "taking over" in caplog.text


# --------------------------------------------------------------------------- modes, failure, resume


def test_disabled_mode_writes_nothing(
    tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-root"))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    callback = SearchWandbCallback(make_evaluator(), mode="disabled")
    trainer = plain_trainer(tiny_bert_dir, tmp_path / "out", callback, max_steps=3)
    trainer.train()
    assert not (tmp_path / "wandb-root").exists() or not run_dirs(tmp_path / "wandb-root")
    assert callback.run is None
    # the evaluator still feeds the trainer's metrics
    assert any("eval_val_mrr@10" in h for h in trainer.state.log_history)


def test_failing_training_marks_run_failed_and_keeps_data(wandb_offline: Path, tiny_bert_dir: Path) -> None:
    callback = SearchWandbCallback(make_evaluator(), log_tables="off", model_artifact="off")
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, fail_at_call=5)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    run = only_run(wandb_offline)
    assert run.state == "failed" and run.exit_code == 1
    assert run.series("train/global_step")[-1] == 4
    assert len(run.series("train/loss")) == 4 and len(run.series("val/mrr@10")) == 1
    assert (wandb_offline / "out" / RUN_FILE).is_file()


@resumable()
def test_resume_continues_the_run_without_duplicate_steps(wandb_offline: Path, tiny_bert_dir: Path) -> None:
    out = wandb_offline / "out"
    first = SearchWandbCallback(log_tables="off", model_artifact="off")
    trainer = plain_trainer(tiny_bert_dir, out, first, fail_at_call=5, save_strategy="steps", save_steps=2,
                            eval_strategy="no")  # fmt: skip
    with pytest.raises(RuntimeError):
        trainer.train()
    (first_dir,) = run_dirs(wandb_offline)
    second = SearchWandbCallback(log_tables="off", model_artifact="off")
    trainer = plain_trainer(
        tiny_bert_dir, out, second, save_strategy="steps", save_steps=2, eval_strategy="no"
    )
    trainer.train(resume_from_checkpoint=str(out / "checkpoint-2"))
    dirs = run_dirs(wandb_offline)
    assert len(dirs) == 2
    before, after = read_run(first_dir), read_run(next(d for d in dirs if d != first_dir))
    assert after.summary_view["run_id"] == before.summary_view["run_id"]
    steps = [r["train/global_step"] for r in before.history + after.history if "train/loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 3 and 4 re-trained after the resume are not logged twice
    assert after.state == "finished"

"""SearchWandbCallback on real (tiny) training runs, read back from wandb's offline files.

Each scenario trains a tiny model for a few steps with wandb in offline mode, then asserts on what
`wandb leet inspect --json` reads from the run directory: metric names and values, config keys,
summary, run count, state. Nothing is mocked.
"""

from __future__ import annotations

import functools
import itertools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from hf_search_wandb.trainer.callback import SearchWandbCallback
from hf_search_wandb.trainer.resume import RUN_FILE
from tests.conftest import SCIFACT
from tests.wandb_records import RunRecords, read_run, run_dirs

SPEC_CONFIG_KEYS = (
    "model_name",
    "model_type",
    "base_model",
    "max_seq_length",
    "pooling_mode",
    "learning_rate",
    "batch_size",
    "effective_batch_size",
    "gradient_accumulation_steps",
    "num_epochs",
    "warmup_ratio",
    "weight_decay",
    "max_grad_norm",
    "scheduler",
    "loss_function",
    "negative_sampling",
    "num_hard_negatives",
    "amp_dtype",
    "gradient_checkpointing",
    "dataset_name",
    "train_size",
    "val_size",
    "eval_metric",
    "eval_steps",
    "seed",
    "torch_version",
    "transformers_version",
    "sentence_transformers_version",
    "cuda_version",
    "gpu_name",
    "gpu_count",
    "accelerate_version",
    "wandb_version",
    "hf_search_wandb_version",
    "world_size",
    "mixed_precision",
)
VAL_METRICS = ("val/mrr@10", "val/ndcg@10", "val/recall@100", "val/map", "val/hit@10")
TRAIN_METRICS = ("train/loss", "train/lr", "train/global_step", "train/grad_norm", "train/epoch_loss")


@functools.lru_cache(maxsize=2)
def scifact(split: str) -> Any:
    """SciFact parsed once per test session (each scenario builds a fresh evaluator from it)."""
    from hf_search_wandb.core.data.beir import load_beir

    return load_beir(SCIFACT, split)


def make_evaluator() -> Any:
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

    data = scifact("test")
    return RetrievalEvaluator(data.queries, data.corpus, data.qrels, max_queries=12, corpus_sample=40)


def pairs(n: int = 32) -> list[dict[str, str]]:
    data = scifact("train")
    rows = []
    for qid, docs in data.qrels.items():
        doc = next(iter(docs))
        if qid in data.queries and doc in data.corpus:
            rows.append({"query": data.queries[qid], "document": data.corpus[doc][:200]})
        if len(rows) == n:
            break
    return rows


class BiEncoder(nn.Module):
    """AutoModel + mean pooling, trained with an in-batch contrastive loss (what a plain Trainer user writes)."""

    def __init__(self, path: str | Path, *, fail_at_call: int | None = None) -> None:
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(str(path))
        self.pooling = "mean"
        self.fail_at_call = fail_at_call
        self.calls = 0

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)

    def forward(self, q_input_ids, q_attention_mask, d_input_ids, d_attention_mask, labels=None):  # type: ignore[no-untyped-def]
        if self.training:
            self.calls += 1
            if self.fail_at_call is not None and self.calls >= self.fail_at_call:
                raise RuntimeError("boom: simulated training failure")
        scores = self.embed(q_input_ids, q_attention_mask) @ self.embed(d_input_ids, d_attention_mask).T * 20
        target = torch.arange(scores.shape[0], device=scores.device)
        return {"loss": nn.functional.cross_entropy(scores, target), "scores": scores}


class PairCollator:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict[str, str]]) -> dict[str, torch.Tensor]:
        q = self.tokenizer(
            [r["query"] for r in rows], padding=True, truncation=True, max_length=32, return_tensors="pt"
        )
        d = self.tokenizer(
            [r["document"] for r in rows], padding=True, truncation=True, max_length=48, return_tensors="pt"
        )
        return {
            "q_input_ids": q["input_ids"], "q_attention_mask": q["attention_mask"],
            "d_input_ids": d["input_ids"], "d_attention_mask": d["attention_mask"],
            "labels": torch.arange(len(rows)),
        }  # fmt: skip


def plain_trainer(
    model_dir: Path,
    out: Path,
    callback: SearchWandbCallback | None,
    *,
    late: bool = False,
    fail_at_call: int | None = None,
    **arg_overrides: Any,
) -> Any:
    """A plain transformers.Trainer on the custom bi-encoder; `late=True` adds the callback after init."""
    from datasets import Dataset
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    kwargs: dict[str, Any] = dict(
        per_device_train_batch_size=8, per_device_eval_batch_size=8, max_steps=6, logging_steps=1,
        eval_strategy="steps", eval_steps=3, save_strategy="no", learning_rate=5e-4, report_to="none",
        remove_unused_columns=False, seed=3, disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    kwargs.update(arg_overrides)
    rows = pairs(40)
    trainer = Trainer(
        model=BiEncoder(model_dir, fail_at_call=fail_at_call),
        args=TrainingArguments(str(out), **kwargs),
        train_dataset=Dataset.from_list(rows[:32]),
        eval_dataset=Dataset.from_list(rows[32:]),
        data_collator=PairCollator(tokenizer),
        processing_class=tokenizer,
        callbacks=[callback] if callback is not None and not late else None,
    )
    if callback is not None and late:
        trainer.add_callback(callback)
    return trainer


def only_run(root: Path) -> RunRecords:
    dirs = run_dirs(root)
    assert len(dirs) == 1, f"expected exactly one wandb run, found {[d.name for d in dirs]}"
    return read_run(dirs[0])


def assert_one_step_axis(run: RunRecords) -> None:
    """Every history row carries train/global_step and it never decreases."""
    steps = [row["train/global_step"] for row in run.history]
    assert len(steps) == len(run.history)
    assert steps == sorted(steps)


# --------------------------------------------------------------------------- SentenceTransformerTrainer


@pytest.fixture(scope="module")
def st_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunRecords, Any, Any]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses

    from tests.tiny_models import make_tiny_sentence_transformer

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
            model=model, args=args, train_dataset=train, loss=losses.MultipleNegativesRankingLoss(model),
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

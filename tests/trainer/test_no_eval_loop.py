"""A Trainer without an eval loop, as retrieval toolkits build it (FlagEmbedding's runner and similar): a
`transformers.Trainer` subclass with its own contrastive `compute_loss` on a plain `AutoModel`, no
`eval_dataset`, `eval_strategy="no"`. The callback runs its evaluator itself: at `eval_steps` when set, else at
each epoch's end, and at the end of training, and says so once. A trainer expected to evaluate that never did
gets one evaluation at the end and a warning. Before: the run held `train/*` only, with no word."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.training import PairCollator, make_evaluator, only_run, pairs


def _toolkit_trainer(model_dir: Path, out: Path, callback: SearchWandbCallback, *, skip_evaluate: bool = False,
                     eval_pairs: int = 0, **overrides: Any) -> Any:  # fmt: skip
    from datasets import Dataset
    from transformers import AutoModel, AutoTokenizer, Trainer, TrainingArguments

    class Toolkit(Trainer):
        """Its own loss on query/document pairs, CLS pooling, in-batch negatives; no eval loop."""

        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):  # type: ignore[no-untyped-def]
            q = model(
                input_ids=inputs["q_input_ids"], attention_mask=inputs["q_attention_mask"]
            ).last_hidden_state[:, 0]
            d = model(
                input_ids=inputs["d_input_ids"], attention_mask=inputs["d_attention_mask"]
            ).last_hidden_state[:, 0]
            scores = nn.functional.normalize(q, dim=-1) @ nn.functional.normalize(d, dim=-1).T * 20
            loss = nn.functional.cross_entropy(scores, torch.arange(len(scores)))
            return (loss, {"scores": scores}) if return_outputs else loss

        def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
            if skip_evaluate:  # a toolkit whose evaluate() does nothing
                return {}
            return super().evaluate(*args, **kwargs)

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    settings: dict[str, Any] = dict(
        per_device_train_batch_size=8, max_steps=6, logging_steps=1, eval_strategy="no", save_strategy="no",
        learning_rate=5e-4, report_to="none", remove_unused_columns=False, seed=3, disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    settings.update(overrides)
    trainer = Toolkit(
        model=AutoModel.from_pretrained(str(model_dir)), args=TrainingArguments(str(out), **settings),
        train_dataset=Dataset.from_list(pairs(32)), data_collator=PairCollator(tokenizer), processing_class=tokenizer,
        eval_dataset=Dataset.from_list(pairs(eval_pairs)) if eval_pairs else None,
    )  # fmt: skip
    trainer.add_callback(callback)
    return trainer


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    wandb.teardown()
    from tests.helpers.tiny_models import make_tiny_bert

    return make_tiny_bert(tmp_path / "bert")


def _val_steps(run: Any) -> list[int]:
    return [row["train/global_step"] for row in run.history if "val/mrr@10" in row]


def test_eval_steps_set_the_callback_evaluates_every_eval_steps(
    offline: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = SearchWandbCallback(make_evaluator())
    trainer = _toolkit_trainer(offline, tmp_path / "out", callback, eval_steps=2)
    with caplog.at_level(logging.WARNING):
        trainer.train()
    callback.finish()
    run = only_run(tmp_path)
    assert _val_steps(run) == [2, 4, 6]
    assert (
        sum(
            "SearchWandbCallback runs its evaluator itself, every 2 steps" in r.message
            for r in caplog.records
        )
        == 1
    )
    assert "best/mrr@10" in run.summary
    assert [a for a in run.artifacts if a.get("type") == "model"]
    assert any("retrieval_examples._type" in row for row in run.history)
    assert [e["step"] for e in trainer.state.log_history if "eval_val_mrr@10" in e] == [2, 4, 6]


def test_no_eval_steps_the_callback_evaluates_at_each_epoch_end(offline: Path, tmp_path: Path) -> None:
    callback = SearchWandbCallback(make_evaluator())
    trainer = _toolkit_trainer(offline, tmp_path / "out", callback, max_steps=-1, num_train_epochs=2)
    trainer.train()
    callback.finish()
    run = only_run(tmp_path)
    assert _val_steps(run) == [4, 8]  # 32 pairs / 8 = 4 steps per epoch; the end adds none (step 8 done)


def test_a_trainer_that_never_evaluated_gets_one_evaluation_at_the_end_and_a_warning(
    offline: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = SearchWandbCallback(make_evaluator())
    trainer = _toolkit_trainer(offline, tmp_path / "out", callback, skip_evaluate=True, eval_strategy="steps",
                               eval_steps=2, eval_pairs=8)  # fmt: skip
    with caplog.at_level(logging.WARNING):
        trainer.train()
    callback.finish()
    run = only_run(tmp_path)
    assert _val_steps(run) == [6]
    assert any("never ran an evaluation during train()" in r.message for r in caplog.records)


def test_a_collapsed_model_leaves_the_tie_warning_in_the_run_summary(offline: Path, tmp_path: Path) -> None:
    from tests.helpers.training import plain_trainer

    callback = SearchWandbCallback(make_evaluator())
    trainer = plain_trainer(offline, tmp_path / "out", callback, learning_rate=0.0, max_steps=2, eval_steps=2)
    with torch.no_grad():  # every weight 0: one embedding for every text, every score tied
        for parameter in trainer.model.encoder.parameters():
            parameter.zero_()
    trainer.train()
    callback.finish()
    run = only_run(tmp_path)
    assert "step 2:" in run.summary["val/tie_warning"] and "tie order" in run.summary["val/tie_warning"]

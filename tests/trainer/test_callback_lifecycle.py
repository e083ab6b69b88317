"""How the callback reaches its trainer and marks a failed `train()`, read back from wandb's offline files.

Ways to link (`callbacks=[...]`, `add_callback`, `SearchWandbCallback.attach`) and ways to fail (the loss,
the evaluator, the data collator, Ctrl-C) each train a tiny model with wandb offline; the run must end
`failed` with exit code 1 and hold every row logged before the failure. Nothing is mocked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from hf_search_wandb.trainer import trainer_link
from hf_search_wandb.trainer.callback import NO_TRAINER, SearchWandbCallback
from hf_search_wandb.trainer.resume import RUN_FILE
from tests.helpers.training import PairCollator, make_evaluator, only_run, plain_trainer
from tests.helpers.wandb_records import read_run, run_dirs


class Boom(Exception):
    """The failure the tests inject (a type no library raises by itself)."""


def logged_losses(trainer: Any) -> list[int]:
    """Steps at which the trainer logged a training loss (what the run must hold)."""
    return [h["step"] for h in trainer.state.log_history if "loss" in h]


def link(how: str, model_dir: Path, out: Path, **kwargs: Any) -> tuple[Any, SearchWandbCallback]:
    options: dict[str, Any] = {"log_tables": "off", "model_artifact": "off"}
    if how == "attach":
        trainer = plain_trainer(model_dir, out, None, **kwargs)
        return trainer, SearchWandbCallback.attach(trainer, make_evaluator(), **options)
    callback = SearchWandbCallback(make_evaluator(), **options)
    return plain_trainer(model_dir, out, callback, late=how == "add_callback", **kwargs), callback


def fail_evaluator_at(callback: SearchWandbCallback, call: int) -> None:
    evaluate, calls = callback.evaluator.evaluate, []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) >= call:
            raise Boom("evaluator failed")
        return evaluate(*args, **kwargs)

    callback.evaluator.evaluate = failing


class FailingCollator(PairCollator):
    def __init__(self, tokenizer: Any, fail_at: int, error: BaseException) -> None:
        super().__init__(tokenizer)
        self.calls, self.fail_at, self.error = 0, fail_at, error

    def __call__(self, rows: list[dict[str, str]]) -> Any:
        self.calls += 1
        if self.calls >= self.fail_at:
            raise self.error
        return super().__call__(rows)


@pytest.mark.parametrize(
    ("how", "where"),
    [
        ("init", "loss"),
        ("attach", "evaluator"),
        ("init", "collator"),
        ("attach", "keyboard"),
    ],
)
def test_a_failing_train_marks_the_run_failed_and_keeps_every_row(
    wandb_offline: Path, tiny_bert_dir: Path, how: str, where: str
) -> None:
    out = wandb_offline / "out"
    trainer, callback = link(how, tiny_bert_dir, out)
    error: type[BaseException] = KeyboardInterrupt if where == "keyboard" else Boom
    if where == "loss":
        trainer.model.fail_at_call = 5
        error = RuntimeError
    elif where == "evaluator":
        fail_evaluator_at(callback, 2)
    else:
        # calls 1-3: steps 1-3, call 4: the evaluation at step 3, calls 5-6: steps 4-5
        trainer.data_collator = FailingCollator(trainer.processing_class, 6, error())
    with pytest.raises(error):
        trainer.train()
    run = only_run(wandb_offline)
    assert run.state == "failed" and run.exit_code == 1
    steps = logged_losses(trainer)
    assert steps and [r["train/global_step"] for r in run.history if "train/loss" in r] == steps
    evaluations = [h["step"] for h in trainer.state.log_history if "eval_val_mrr@10" in h]
    assert evaluations == [3] and run.series("val/mrr@10") == [
        h["eval_val_mrr@10"] for h in trainer.state.log_history if "eval_val_mrr@10" in h
    ]
    assert (out / RUN_FILE).is_file()
    assert callback.run is None


def test_attach_links_without_the_stack_lookup(
    wandb_offline: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_lookup(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("attach() must not need the stack lookup")

    monkeypatch.setattr(trainer_link, "find_trainer_in_stack", no_lookup)
    trainer, callback = link("attach", tiny_bert_dir, wandb_offline / "out", max_steps=3)
    assert callback in trainer.callback_handler.callbacks and callback._trainer is trainer
    assert SearchWandbCallback.attach(trainer) is callback  # the trainer's own callback, linked again
    with pytest.raises(ValueError, match="already has a SearchWandbCallback"):
        SearchWandbCallback.attach(trainer, dataset_name="other")
    trainer.train()
    run = only_run(wandb_offline)
    assert run.state == "finished" and run.config["train_size"] == 32  # read from the trainer


def test_the_stack_lookup_finds_the_trainer_of_the_running_event(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """The one hack (`find_trainer_in_stack`): found from inside an event of `add_callback`ed callbacks."""
    from transformers import TrainerCallback

    seen: list[Any] = []

    class Probe(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            seen.append(trainer_link.find_trainer_in_stack())

    trainer = plain_trainer(tiny_bert_dir, tmp_path / "out", None, max_steps=1, eval_strategy="no")
    trainer.add_callback(Probe())
    trainer.train()
    assert seen == [trainer]
    assert trainer_link.find_trainer_in_stack() is None


def test_add_callback_links_at_train_begin_and_a_caught_failure_is_closed_at_the_next_train(
    wandb_offline: Path, tiny_bert_dir: Path
) -> None:
    trainer, callback = link("add_callback", tiny_bert_dir, wandb_offline / "out", max_steps=4)
    trainer.model.fail_at_call = 3
    with pytest.raises(RuntimeError):
        trainer.train()  # linked (and guarded) only from inside this call: the run stays open
    assert callback._trainer is trainer and getattr(trainer.train, trainer_link.GUARD_MARK)
    trainer.model.fail_at_call = None
    trainer.train()  # the guarded entry closes the previous run as failed before starting the next
    states = sorted((run.state, run.exit_code) for run in map(read_run, run_dirs(wandb_offline)))
    assert states == [("failed", 1), ("finished", 0)]


def test_without_a_trainer_it_logs_what_it_can_and_warns_once(
    wandb_offline: Path,
    tiny_bert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(trainer_link, "find_trainer_in_stack", lambda *a, **k: None)
    trainer, _ = link("init", tiny_bert_dir, wandb_offline / "out", max_steps=3)
    with caplog.at_level(logging.WARNING):
        trainer.train()
        trainer.train()
    assert sum(NO_TRAINER in r.getMessage() for r in caplog.records) == 1
    runs = [read_run(d) for d in run_dirs(wandb_offline)]
    assert len(runs) == 2 and all(r.state == "finished" for r in runs)
    assert [r["train/global_step"] for r in runs[0].history if "train/loss" in r] == [1, 2, 3]
    assert len(runs[0].series("val/mrr@10")) == 1
    assert runs[0].config["train_size"] == 32  # from the train_dataloader the event carries


def test_an_out_of_memory_retry_inside_train_is_not_a_failure(
    wandb_offline: Path, tiny_bert_dir: Path
) -> None:
    """`auto_find_batch_size` retries an OOM inside `train()`: it never leaves it, so the run ends finished."""
    import torch

    trainer, _ = link("attach", tiny_bert_dir, wandb_offline / "out", max_steps=3, auto_find_batch_size=True)
    forward, calls = trainer.model.forward, []

    def oom_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(*args, **kwargs)

    trainer.model.forward = oom_once
    trainer.train()
    assert trainer._train_batch_size < 8  # transformers reduced the batch and retried
    run = only_run(wandb_offline)
    assert run.state == "finished" and run.exit_code == 0
    # one run, each step once (the retry's step 1 is not logged again)
    assert [r["train/global_step"] for r in run.history if "train/loss" in r] == [1, 2, 3]

"""A full disk never ends a training and never hides a loss (docs/reliability.md, "Disk and files").

Each test mounts a small tmpfs (2-4 MiB) (root only; skipped elsewhere) where wandb's run folder, wandb's artifact
staging folder or the trainer's `output_dir` lives, fills it at a chosen step, trains the tiny model to the
end, and reads the run back with wandb's own reader.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback

from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.tmpfs import fill, small_tmpfs
from tests.helpers.training import make_evaluator, plain_trainer
from tests.helpers.wandb_records import read_run, run_dirs

LOST = re.compile(r"(\d+) rows could not be written to (\S+) \(")


class FillAt(TrainerCallback):
    """Fill `folder` at the end of step `step`, and note which warnings were said by the end of each step.

    `pause`: seconds to wait once filled, so that the next row is checked (the watch checks at most every
    `RowWatch.every` seconds: on a fast machine the remaining steps can all fit in that time, and the fault is
    then said only when the run ends)."""

    def __init__(
        self, folder: Path, step: int, log: pytest.LogCaptureFixture, settle: SearchWandbCallback | None = None,
        pause: float = 0.0,
    ) -> None:  # fmt: skip
        self.folder, self.step, self.log, self.settle, self.pause = folder, step, log, settle, pause
        self.said_by_step: dict[int, int] = {}

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            if self.settle is not None:  # what was logged before this step is on disk first, however loaded
                _settle(self.settle)
            fill(self.folder)
            time.sleep(self.pause)
        self.said_by_step[state.global_step] = len(self.log.records)


def _settle(callback: SearchWandbCallback, quiet: float = 0.5, bound: float = 20.0) -> None:
    """Hand every queued row to wandb, then wait until the run's `.wandb` file stops growing (wandb's service
    writes it asynchronously), so a test fills the disk after the rows it expects to survive are written."""
    callback._flush()
    tracked = callback.tracked
    if tracked is None or tracked.run_dir is None:
        return
    files = list(Path(tracked.run_dir).glob("*.wandb"))
    size, still_since, deadline = -1, time.monotonic(), time.monotonic() + bound
    while files and time.monotonic() < deadline:
        now = files[0].stat().st_size
        if now != size:
            size, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            return
        time.sleep(0.05)


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="hf_search_wandb")
    return caplog


def said(log: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().removeprefix("hf_search_wandb: ")
        for r in log.records
        if r.name.startswith("hf_search_wandb")
    ]


def full_wandb_dir(wandb_offline: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with small_tmpfs(wandb_offline / "small", size="4m") as mount:  # room for the first tables
        monkeypatch.setenv("WANDB_DIR", str(mount))
        yield mount


@pytest.mark.parametrize("path", ["checked-before", "wandb-raises"])
def test_a_full_run_folder_with_tables_on_ends_no_training_and_counts_the_lost_rows(
    wandb_offline: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, warnings: pytest.LogCaptureFixture,
    path: str,
) -> None:  # fmt: skip
    """Before: killed at the next evaluation by an OSError raised while wandb moved a table file into the run
    folder. `wandb-raises`: no free-space check first (`LOW_SPACE_BYTES=0`), wandb's own OSError is caught."""
    if path == "wandb-raises":
        from hf_search_wandb.tracking import disk_space

        monkeypatch.setattr(disk_space, "LOW_SPACE_BYTES", 0)
    for mount in full_wandb_dir(wandb_offline, monkeypatch):
        callback = SearchWandbCallback(make_evaluator(), log_tables="every", model_artifact="off")
        trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, max_steps=12, eval_steps=3)
        filler = FillAt(mount, 4, warnings, settle=callback)
        trainer.add_callback(filler)
        trainer.train()  # returns: the training is not ended by logging
        assert trainer.state.global_step == 12
        tracked = callback.tracked
        callback.finish()
        (run_dir,) = run_dirs(mount)
        messages = said(warnings)
        dropped = [m for m in messages if "Dropping media and artifacts" in m]
        assert len(dropped) == 1 and str(run_dir) in dropped[0] and " free)" in dropped[0], messages
        last = LOST.search(messages[-1])
        assert last is not None and last.group(2) == str(run_dir), messages[-1]
        run = read_run(run_dir)
        steps = [r["train/global_step"] for r in run.history]
        assert run.of_type("history") and max(steps) < 12
        assert int(last.group(1)) == tracked.rows.handed - len(steps)
        assert not (run.state == "finished" and run.exit_code == 0)  # never looks complete
        media = [r for r in run.history if any(k.startswith("error_analysis") for k in r)]
        assert [r["train/global_step"] for r in media] == [3]  # the tables before the disk filled up


def test_a_run_folder_that_fills_up_with_tables_off_is_said_at_once_and_counted(
    wandb_offline: Path,
    tiny_bert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    warnings: pytest.LogCaptureFixture,
) -> None:
    """Before: train() returned, the .wandb file held steps 1-5, no exit record, state running, not a word."""
    for mount in full_wandb_dir(wandb_offline, monkeypatch):
        callback = SearchWandbCallback(make_evaluator(), log_tables="off", model_artifact="off")
        trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, max_steps=12, eval_steps=3)
        filler = FillAt(mount, 3, warnings, pause=0.6)
        trainer.add_callback(filler)
        trainer.train()
        tracked = callback.tracked
        callback.finish()
        (run_dir,) = run_dirs(mount)
        messages = said(warnings)
        at_once = [
            m for m in messages if m.startswith(f"wandb cannot write the rows of this run to {run_dir}")
        ]
        assert len(at_once) == 1 and "0 B free" in at_once[0], messages
        # said while training, within 2 steps of the disk filling up (a check runs at most every 0.5 s)
        index = next(i for i, r in enumerate(warnings.records) if r.getMessage().endswith(at_once[0]))
        assert min(step for step, n in filler.said_by_step.items() if n > index) <= 5
        last = LOST.search(messages[-1])
        assert last is not None, messages[-1]
        run = read_run(run_dir)
        on_disk = len(run.history)
        assert int(last.group(1)) == tracked.rows.handed - on_disk > 0
        assert not (run.state == "finished" and run.exit_code == 0)


def test_a_full_output_dir_at_the_end_leaves_a_finished_training_and_run(
    wandb_offline: Path, tiny_bert_dir: Path, warnings: pytest.LogCaptureFixture
) -> None:
    """Before: train() raised from writing wandb_run.json, the run was marked failed, the file left at 0 bytes."""
    with small_tmpfs(wandb_offline / "out") as out:
        callback = SearchWandbCallback(make_evaluator(), log_tables="off", model_artifact="off")
        trainer = plain_trainer(tiny_bert_dir, out, callback, max_steps=6, eval_steps=3)
        trainer.add_callback(FillAt(out, 6, warnings))
        trainer.train()  # returns normally
        callback.finish()
        record = out / "wandb_run.json"
        assert not record.exists() or record.stat().st_size > 0
        assert not list(out.glob(".wandb_run.json.tmp-*"))
        messages = said(warnings)
        assert any(
            m.startswith(f"could not write the resume record {record} ({out} (0 B free))") for m in messages
        )
        run = read_run(run_dirs(wandb_offline)[0])
        assert run.state == "finished" and run.exit_code == 0  # the run itself is complete
        assert max(r["train/global_step"] for r in run.history) == 6


def test_a_full_artifact_staging_folder_drops_the_artifacts_and_training_goes_on(
    wandb_offline: Path,
    tiny_bert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    warnings: pytest.LogCaptureFixture,
) -> None:
    """Before: training died at the first evaluation, copying the best model into WANDB_DATA_DIR."""
    with small_tmpfs(wandb_offline / "data") as data:
        monkeypatch.setenv("WANDB_DATA_DIR", str(data))
        callback = SearchWandbCallback(make_evaluator(), log_tables="off", model_artifact="best")
        out = wandb_offline / "out"
        trainer = plain_trainer(tiny_bert_dir, out, callback, max_steps=6, eval_steps=3)
        trainer.add_callback(FillAt(data, 1, warnings))
        trainer.train()
        callback.finish()
        staging = data / "artifacts" / "staging"
        messages = said(warnings)
        dropped = [m for m in messages if "Dropping artifacts" in m]
        assert len(dropped) == 1 and dropped[0].startswith(f"cannot write to {staging} ("), messages
        assert f"the model stays in {out / 'wandb-best-model'}" in dropped[0]
        assert (out / "wandb-best-model" / "config.json").is_file()
        run = read_run(run_dirs(wandb_offline)[0])
        assert run.state == "finished" and run.exit_code == 0
        assert not [a for a in run.artifacts if a.get("type") == "model"]
        assert "artifacts" in run.summary["system/not_logged"]
        assert max(r["train/global_step"] for r in run.history) == 6

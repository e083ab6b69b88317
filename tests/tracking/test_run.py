"""`tracking.run.TrackedRun`, the one owner of the wandb run, on its own (no Trainer): rows on the step axis,
summary goals, the summary, held rows of a resumed run, artifacts, and the three ends (finished, failed,
preempted). Offline wandb for real; every assertion reads what wandb stored (`tests/wandb_records.py`)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from hf_search_wandb.tracking.log_keys import STEP_KEY
from hf_search_wandb.tracking.run import TrackedRun, current_run_id
from hf_search_wandb.tracking.run_history import LoggedRows
from hf_search_wandb.tracking.run_options import RunSettings
from tests.helpers.wandb_records import read_run, run_dirs

SETTINGS = RunSettings(project="search-model-training", name="tracked-run-test", tags=["test"])


def start(**kwargs: object) -> TrackedRun:
    return TrackedRun.start(SETTINGS, mode="offline", config={"seed": 7, "model_type": "bi-encoder"}, **kwargs)


@pytest.mark.parametrize("background", [True, False])
def test_rows_go_on_one_step_axis_with_summary_goals_and_the_summary(wandb_offline: Path, background: bool) -> None:
    run = start(background=background)
    assert run.created and not run.reused and run.run_dir is not None
    run.define("val/mrr@10")
    run.define_all(["val/loss", "system/eval_runtime"])
    run.log({"train/loss": 1.5}, step=1)
    run.log({"val/mrr@10": 0.25, "val/loss": 2.0, "system/eval_runtime": 0.1}, step=2)
    run.log({"val/mrr@10": 0.5, "val/loss": 1.0}, step=4)
    run.update_summary({"best/mrr@10": 0.5, "best/step": 4})
    assert run.last_logged == 4 and run.summary == {"best/mrr@10": 0.5, "best/step": 4}
    run.finish()
    run.finish()  # idempotent
    assert not run.is_open

    records = read_run(run.run_dir)
    assert records.state == "finished" and records.exit_code == 0
    assert records.config["seed"] == 7 and records.config["model_type"] == "bi-encoder"
    assert records.series(STEP_KEY) == [1, 2, 4]
    assert records.series("val/mrr@10") == [0.25, 0.5]
    goals = {d["name"]: d.get("summary") for d in records.metric_definitions if "name" in d}
    assert goals["val/mrr@10"] == {"max": True} and goals["val/loss"] == {"min": True}
    assert "system/eval_runtime" not in goals  # timings get no summary goal
    steps = [d for d in records.metric_definitions if d.get("glob_name") == "*"]
    assert steps and steps[0]["step_metric"] == STEP_KEY
    assert records.summary["best/mrr@10"] == 0.5 and records.summary["best/step"] == 4
    assert records.summary["val/mrr@10"] == {"max": 0.5} and records.summary["val/loss"] == {"min": 1.0}


def test_fail_marks_the_run_failed_and_keeps_every_queued_row(wandb_offline: Path) -> None:
    run = start(background=True)
    for step in range(1, 51):
        run.log({"train/loss": 1.0 / step}, step=step)
    run.fail()
    run.log({"train/loss": 0.0}, step=51)  # after the end: ignored, not an error
    assert not run.is_open

    records = read_run(run.run_dir)
    assert records.state == "failed" and records.exit_code == 1
    assert records.series(STEP_KEY) == list(range(1, 51))


def test_preempted_finishes_with_the_signal_exit_code(wandb_offline: Path) -> None:
    run = start()
    run.log({"train/loss": 1.0}, step=3)
    run.preempted(signal.SIGTERM)

    records = read_run(run.run_dir)
    assert records.state == "failed" and records.exit_code == 128 + signal.SIGTERM
    assert records.series("train/loss") == [1.0]


def test_rows_a_resumed_run_holds_are_not_logged_again(wandb_offline: Path) -> None:
    run = start(held=LoggedRows(last_step=2, keys_at_last=frozenset({"train/loss"})), background=False)
    run.log({"train/loss": 9.0}, step=1)  # held
    run.log({"train/loss": 9.0, "val/map": 0.5}, step=2)  # only the key the run does not hold
    run.log({"train/loss": 1.0}, step=3)
    assert run.log_media(object(), None, step=2) == {}  # media of a held step: skipped before any work
    run.hold_logged()  # a retried train(): what this session logged counts as held too
    run.log({"train/loss": 9.0}, step=3)
    run.finish()

    history = read_run(run.run_dir).history
    assert [(row[STEP_KEY], sorted(k for k in row if not k.startswith("_"))) for row in history] == [
        (2, [STEP_KEY, "val/map"]),
        (3, [STEP_KEY, "train/loss"]),
    ]


def test_a_run_the_user_started_is_reused_and_left_open(wandb_offline: Path) -> None:
    import wandb

    user_run = wandb.init(project="search-model-training", mode="offline")
    try:
        assert current_run_id() == user_run.id
        run = start(user_run_id=user_run.id)
        assert run.reused and not run.created and run.wandb_run is user_run
        run.log({"train/loss": 1.0}, step=1)
        run.finish()
        assert not user_run._is_finished  # theirs to finish
    finally:
        user_run.finish()
    assert len(run_dirs(wandb_offline)) == 1
    assert read_run(run_dirs(wandb_offline)[0]).series("train/loss") == [1.0]


def test_model_and_dataset_artifacts_and_the_resume_record(wandb_offline: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "best"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    run = start()
    run.log({"val/mrr@10": 0.5}, step=5)
    run.log_model(model_dir, metadata={"best_mrr@10": 0.5, "best_step": 5}, description="Best model")
    run.log_dataset(dataset_name="scifact", train=[{"anchor": "q", "positive": "d"}], val=None,
                    metadata={"num_hard_negatives": 0})  # fmt: skip
    record = run.resume_record(global_step=6)
    assert record["run_id"] == run.id and record["name"] == "tracked-run-test"
    assert record["global_step"] == 6 and record["last_logged_step"] == 5 and record["run_dir"] == str(run.run_dir)
    run.finish()

    artifacts = {a["name"]: a for a in read_run(run.run_dir).artifacts}
    assert set(artifacts) == {f"search-model-{run.id}", "training-data-scifact"}
    assert sorted(artifacts[f"search-model-{run.id}"]["aliases"]) == ["best", "latest"]

"""The online sweep path, tested up to the W&B server boundary.

`wandb.sweep` and `wandb.agent` need the W&B server (it holds the sweep and chooses parameters), so they
are the ONLY fakes here: the fake agent does what wandb's Python agent does for each run (writes the
chosen parameters to a file, points WANDB_SWEEP_PARAM_PATH at it, resets wandb's settings and calls the
function). Everything after that is real: `wandb.init` reads the parameters into `run.config` (offline),
the program builds TrainingArguments from them and trains a real Trainer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import wandb
import yaml
from wandb.sdk.lib import config_util

from hf_search_wandb.sweeps.config import load_sweep_config
from hf_search_wandb.sweeps.online import run_online_sweep
from hf_search_wandb.sweeps.training import loss_columns, training_arguments
from tests.helpers.sweeps import trainer_program
from tests.helpers.wandb_records import read_run, run_dirs


class FakeServer:
    """Stands in for the W&B server: records the sweep and hands out parameter sets like a grid."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch
        self.sweeps: list[dict] = []  # wandb.sweep calls
        self.known: dict[str, dict] = {}  # sweep id -> config, as the server would hold it
        self.agent_calls: list[dict] = []
        monkeypatch.setattr(wandb, "sweep", self.sweep)
        monkeypatch.setattr(wandb, "agent", self.agent)

    def sweep(self, config, project=None, entity=None):
        self.sweeps.append({"config": config, "project": project, "entity": entity})
        self.known["fake-sweep-1"] = config
        return "fake-sweep-1"

    def agent(self, sweep_id, function=None, count=None, project=None, entity=None):
        self.agent_calls.append({"sweep_id": sweep_id, "count": count, "project": project})
        params = self.known[sweep_id]["parameters"]
        for i in range(count):
            chosen = {k: v["values"][i % len(v["values"])] if "values" in v else v.get("value", v.get("min"))
                      for k, v in params.items()}
            path = self.tmp_path / f"sweep-params-{i}.yaml"
            config_util.save_config_file_from_dict(str(path), {k: {"value": v} for k, v in chosen.items()})
            self.monkeypatch.setenv("WANDB_SWEEP_PARAM_PATH", str(path))
            wandb.teardown()  # as wandb's agent does: the next wandb.init reads the new parameters
            function()


@pytest.fixture
def server(tmp_path, monkeypatch, wandb_offline):
    wandb.teardown()
    yield FakeServer(tmp_path, monkeypatch)
    wandb.teardown()


SWEEP = {
    "program": "train.py", "method": "random", "count": 2, "name": "online",
    "metric": {"name": "val/mrr@10", "goal": "maximize"},
    "parameters": {"quality": {"values": [0.7, 0.3]}, "learning_rate": {"values": [0.05, 0.01]},
                   "batch_size": {"value": 4}, "num_epochs": {"value": 1}, "warmup_ratio": {"value": 0.1},
                   "weight_decay": {"value": 0.01}},
}


def test_online_sweep_sends_validated_config_and_trains_each_run(server, wandb_offline, tmp_path):
    seen: list[dict] = []

    def program(config, callbacks):
        seen.append(dict(config))
        args = training_arguments(config, tmp_path / "args")
        assert (args.learning_rate, args.per_device_train_batch_size, args.num_train_epochs) == (
            config["learning_rate"], 4, 1)
        assert args.weight_decay == 0.01
        return trainer_program(config, callbacks)

    sweep_id = run_online_sweep(SWEEP, program, project="proj")
    assert sweep_id == "fake-sweep-1"
    (sent,) = server.sweeps
    assert sent["project"] == "proj" and "count" not in sent["config"] and sent["config"]["run_cap"] == 2
    assert sent["config"]["metric"] == {"name": "val/mrr@10", "goal": "maximize"}
    assert server.agent_calls == [{"sweep_id": "fake-sweep-1", "count": 2, "project": "proj"}]
    assert [(c["quality"], c["learning_rate"]) for c in seen] == [(0.7, 0.05), (0.3, 0.01)]

    runs = [read_run(d) for d in run_dirs(wandb_offline)]
    assert len(runs) == 2
    for run, config in zip(runs, seen, strict=True):
        assert run.config["learning_rate"] == config["learning_rate"]
        assert run.of_type("run")[0]["job_type"] == "sweep-trial"
        assert run.state == "finished" and run.exit_code == 0
        assert max(run.series("train/global_step")) == 6  # the trainer ran


def test_joining_an_existing_sweep_creates_none(server):
    server.known["abc"] = load_sweep_config(SWEEP).to_wandb()
    calls: list[dict] = []
    run_online_sweep(SWEEP, lambda config, callbacks: calls.append(config), sweep_id="abc", count=1)
    assert server.sweeps == [] and server.agent_calls[0]["sweep_id"] == "abc"
    assert [c["quality"] for c in calls] == [0.7]


def test_a_failing_program_marks_the_run_failed(server, wandb_offline):
    server.known["fake-sweep-1"] = load_sweep_config(SWEEP).to_wandb()

    def broken(config, callbacks):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_online_sweep(SWEEP, broken, sweep_id="fake-sweep-1", count=1)
    (run,) = [read_run(d) for d in run_dirs(wandb_offline)]
    assert run.exit_code == 1


def test_training_arguments_for_sentence_transformers_and_trainer(tmp_path):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from transformers import TrainingArguments

    config = yaml.safe_load("""
    learning_rate: 2.0e-5
    batch_size: 64
    num_epochs: 3
    warmup_ratio: 0.1
    weight_decay: 0.01
    max_seq_length: 256
    loss_function: TripletLoss
    pooling_mode: cls
    lr_scheduler_type: cosine
    """)
    for cls in (TrainingArguments, SentenceTransformerTrainingArguments):
        args = training_arguments(config, tmp_path, args_class=cls, eval_steps=50)
        assert isinstance(args, cls)
        assert (args.learning_rate, args.per_device_train_batch_size, args.per_device_eval_batch_size) == (2e-5, 64, 64)
        assert (args.num_train_epochs, args.weight_decay, args.lr_scheduler_type.value) == (3, 0.01, "cosine")
        warmup = getattr(args, "warmup_ratio", None) or args.warmup_steps
        assert warmup == 0.1
        assert args.eval_strategy.value == "steps" and args.report_to in ([], "none", ["none"])


def test_loss_columns_from_triplets():
    rows = [{"anchor": "q1", "positive": "p1", "negative": "n1"}, {"anchor": "q2", "positive": "p2", "negative": "n2"}]
    assert loss_columns(rows, "TripletLoss") == {"anchor": ["q1", "q2"], "positive": ["p1", "p2"],
                                                 "negative": ["n1", "n2"]}
    cosine = loss_columns(rows, "CosineSimilarityLoss")
    assert cosine["sentence2"] == ["p1", "n1", "p2", "n2"] and cosine["score"] == [1.0, 0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="loss_function must be one of"):
        loss_columns(rows, "ContrastiveLoss")

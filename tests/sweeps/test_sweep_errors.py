"""Sweep mistakes found early: YAML syntax and `--program` errors exit 2 with one line; a sweep metric the
program cannot produce fails the first trial at its first evaluation, not after training."""

from __future__ import annotations

from typing import ClassVar

import pytest
import yaml
from transformers import TrainerCallback

from hf_search_wandb.cli import main
from hf_search_wandb.sweeps.local import run_local_sweep
from hf_search_wandb.sweeps.pruning import SweepMetricMissingError
from tests.helpers.sweeps import ScriptedMetric

SWEEP = {"name": "s", "method": "random", "count": 2, "metric": {"name": "val/mrr@10", "goal": "maximize"},
         "parameters": {"quality": {"min": 0.0, "max": 1.0}}}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_yaml_syntax_error_exits_2_with_one_line_naming_the_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("method: random\nmetric:\n  name: val/mrr@10\n   goal: maximize\n")
    assert main(["sweep", "validate", str(path)]) == 2
    err = _one_error_line(capsys)
    assert str(path) in err and "not valid YAML at line 4" in err
    assert main(["sweep", "run", str(path), "--offline", "--output-dir", str(tmp_path / "o")]) == 2
    assert "not valid YAML" in _one_error_line(capsys)


@pytest.mark.parametrize("program, expected", [
    ("no_such_module_xyz:train", "ModuleNotFoundError"),
    ("{dir}/broken.py:train", "SyntaxError"),
    ("{dir}/absent.py:train", "no file"),
    ("json:no_such_function", "no callable"),
    ("train", "module:function"),
])
def test_bad_program_exits_2_with_one_line(tmp_path, capsys, program, expected):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    (tmp_path / "broken.py").write_text("def train(config, callbacks:\n    pass\n")
    code = main(["sweep", "run", str(path), "--offline", "--output-dir", str(tmp_path / "o"),
                 "--program", program.format(dir=tmp_path)])
    assert code == 2
    assert expected in _one_error_line(capsys)


class StepRecorder(TrainerCallback):
    steps: ClassVar[list[int]] = []

    def on_step_end(self, args, state, control, **kwargs):
        StepRecorder.steps.append(state.global_step)


def evaluating_program(config: dict, callbacks: list) -> dict:
    """A real Trainer (one weight, 6 steps, evaluation every 2) whose evaluations carry eval_val_mrr@10."""
    import tempfile

    import torch
    from datasets import Dataset
    from transformers import Trainer

    from hf_search_wandb.sweeps.training import training_arguments

    class OneWeight(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, labels=None):
            return {"loss": ((self.w - x) ** 2).mean()}

    data = Dataset.from_dict({"x": [0.5] * 24, "labels": [0.0] * 24})
    args = training_arguments(config, tempfile.mkdtemp(), max_steps=6, eval_steps=2, logging_steps=2,
                              use_cpu=True, per_device_train_batch_size=4)
    trainer = Trainer(model=OneWeight(), args=args, train_dataset=data, eval_dataset=data,
                      callbacks=[ScriptedMetric(float(config["quality"])), StepRecorder(), *callbacks])
    trainer.train()
    return {"eval_val_mrr@10": float(config["quality"])}


def test_a_metric_the_program_never_logs_fails_the_first_trial_at_its_first_evaluation(tmp_path):
    """val/ndcg@20 is a valid sweep metric, but this program's evaluations only hold eval_val_mrr@10: the
    first trial stops right after its first evaluation (step 2 of 6) and the agent stops with the reason,
    instead of training every trial fully and failing each one after the fact."""
    StepRecorder.steps = []
    sweep = {**SWEEP, "metric": {"name": "val/ndcg@20", "goal": "maximize"}, "count": 3}
    with pytest.raises(SweepMetricMissingError, match=r"'val/ndcg@20' is not among the metrics of the first "
                                                      r"evaluation \(step 2\): .*eval_val_mrr@10"):
        run_local_sweep(sweep, evaluating_program, output_dir=tmp_path, wandb_mode="disabled")
    assert max(StepRecorder.steps) == 3  # the step after the first evaluation; 6 without the check
    import optuna

    (trial,) = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'sweep.db'}").get_trials()
    assert trial.state.name == "FAIL" and "val/ndcg@20" in trial.user_attrs["error"]


def test_the_cli_reports_a_missing_sweep_metric_in_one_line(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**SWEEP, "metric": {"name": "val/ndcg@20", "goal": "maximize"}}))
    code = main(["sweep", "run", str(path), "--offline", "--output-dir", str(tmp_path / "o"),
                 "--program", "tests.sweeps.test_sweep_errors:evaluating_program"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error: the sweep metric 'val/ndcg@20' is not among" in err

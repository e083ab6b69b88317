"""`hf-search-wandb sweep validate|run`: exit codes and where the reasons go."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import wandb
import yaml

from hf_search_wandb.cli import main
from hf_search_wandb.sweeps.config import recommended_config_path
from tests.helpers.sweeps import SEED_YAML


@pytest.fixture(autouse=True)
def _fresh_wandb_settings():
    wandb.teardown()
    yield
    wandb.teardown()


def write(tmp_path: Path, config: dict | str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def test_validate_recommended_exits_0(capsys):
    assert main(["sweep", "validate", str(recommended_config_path())]) == 0
    out, err = capsys.readouterr()
    assert "valid (bayes, val/mrr@10 maximize, 8 parameters, count 30)" in out and err == ""


def test_validate_seed_needs_count(tmp_path, capsys):
    path = write(tmp_path, SEED_YAML)
    assert main(["sweep", "validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "count (the maximum number of runs) is required" in err
    assert main(["sweep", "validate", str(path), "--count", "20"]) == 0


def test_validate_refuses_the_seven_parameter_grid_with_every_reason(tmp_path, capsys):
    config = yaml.safe_load(SEED_YAML)
    config["method"] = "grid"
    del config["parameters"]["learning_rate"]
    config["metric"]["goal"] = "best"
    path = write(tmp_path, config)
    assert main(["sweep", "validate", str(path), "--count", "50", "--hours-per-run", "2"]) == 2
    err = capsys.readouterr().err
    assert "2,187 runs" in err and "4,374 h" in err and "182 days" in err
    assert "goal must be minimize or maximize" in err and "2 problem(s)" in err


def test_validate_missing_file_exits_2(tmp_path, capsys):
    assert main(["sweep", "validate", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_run_refuses_an_invalid_config_before_training(tmp_path, capsys):
    path = write(tmp_path, {"method": "bayes", "metric": {"name": "val/mrr@10", "goal": "maximize"},
                            "parameters": {"lr": {"distribution": "log_unifrom", "min": 1, "max": 2}}})
    assert main(["sweep", "run", str(path), "--offline", "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "count" in err and "log_unifrom" in err
    assert not (tmp_path / "out").exists()


def test_run_offline_with_a_program(tmp_path, wandb_offline, capsys):
    path = write(tmp_path, {"name": "cli", "method": "random", "count": 2,
                            "metric": {"name": "val/mrr@10", "goal": "maximize"},
                            "parameters": {"quality": {"min": 0.0, "max": 1.0}}})
    out_dir = tmp_path / "out"
    code = main(["sweep", "run", str(path), "--offline", "--output-dir", str(out_dir),
                 "--program", "tests.helpers.sweeps:scripted_program"])
    assert code == 0
    assert "this agent ran 2 trial(s)" in capsys.readouterr().out
    study = optuna.load_study(study_name="cli", storage=f"sqlite:///{out_dir / 'sweep.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    # --count raises the cap of the same sweep: one more trial, same store.
    assert main(["sweep", "run", str(path), "--offline", "--output-dir", str(out_dir), "--count", "3",
                 "--program", "tests.helpers.sweeps:scripted_program", "--agent-id", "1"]) == 0
    assert len(optuna.load_study(study_name="cli", storage=f"sqlite:///{out_dir / 'sweep.db'}").trials) == 3


def test_run_offline_exits_1_when_every_trial_fails(tmp_path, wandb_offline, capsys):
    path = write(tmp_path, {"name": "broken", "method": "random", "count": 2,
                            "metric": {"name": "val/mrr@10", "goal": "maximize"},
                            "parameters": {"quality": {"min": 0.0, "max": 1.0}, "fail": {"value": True}}})
    code = main(["sweep", "run", str(path), "--offline", "--output-dir", str(tmp_path / "out"),
                 "--program", "tests.helpers.sweeps:scripted_program"])
    assert code == 1
    assert "count=2 is used up: 2 trial(s) FAILED" in capsys.readouterr().err


def test_run_online_without_a_server_points_to_offline(tmp_path, wandb_offline, capsys):
    path = write(tmp_path, {"method": "random", "count": 1, "metric": {"name": "val/mrr@10", "goal": "maximize"},
                            "parameters": {"quality": {"values": [0.5]}}})
    assert main(["sweep", "run", str(path), "--program", "tests.helpers.sweeps:scripted_program"]) == 1
    assert "--offline" in capsys.readouterr().err


def test_run_with_an_unloadable_program_exits_2(tmp_path, capsys):
    path = write(tmp_path, {"method": "random", "count": 1, "metric": {"name": "val/mrr@10", "goal": "maximize"},
                            "parameters": {"quality": {"values": [0.5]}}})
    assert main(["sweep", "run", str(path), "--offline", "--program", "json:no_such_function"]) == 2
    assert "no callable" in capsys.readouterr().err

"""Sweep agents as separate processes (`hf-search-wandb sweep run --offline`) on one shared SQLite store: trials
split between agents, exact `count` under contention, a SIGKILLed agent's finished trials kept.

Split from tests/sweeps/test_sweep_local.py (the in-process engine tests) because these launch agent processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from hf_search_wandb.sweeps.local import run_local_sweep
from tests.helpers.paths import REPO_ROOT
from tests.helpers.sweeps import scripted_program
from tests.helpers.wandb_records import read_run, run_dirs


def _agent(config: Path, storage: str, agent_id: int, wandb_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir), "WANDB_SILENT": "true",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "hf_search_wandb.cli", "sweep", "run", str(config), "--offline",
               "--storage", storage, "--agent-id", str(agent_id),
               "--output-dir", str(wandb_dir / f"agent{agent_id}"), *extra]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _ran(trials: list) -> list:
    return [t for t in trials if not t.user_attrs.get("skipped")]


def _seed_whose_first_grid_point_is(space: dict, name: str, value) -> int:
    """The engine's grid gives trial n the n-th point of a seeded shuffle; find a seed whose trial 0 has
    `name == value`, with the same sampler the engine builds."""
    for seed in range(50):
        study = optuna.create_study(sampler=optuna.samplers.GridSampler(space, seed=seed))
        if study.ask().suggest_categorical(name, space[name]) == value:
            return seed
    raise AssertionError(f"no seed starts the grid with {name}={value}")


def _wait_for(condition, study_name: str, storage: str, timeout: float = 400) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
        except KeyError:  # the agent has not created the study yet
            continue
        if condition(trials):
            return
    raise AssertionError(f"timed out waiting on study {study_name}")


@pytest.mark.timeout(900)
def test_two_agents_share_one_sqlite_sweep_exact_count_hyperband_prunes(tmp_path):
    """Two agent processes, one SQLite store, count=4 over a 2 x 2 grid: exactly 4 trials, one wandb run
    each, grouped under the sweep, split between the agents without repeats. The two quality=0.2 trials
    are pruned by hyperband at their first evaluation through the real Trainer -> pruning callback path:
    agent 1 starts once trial 0 (quality 0.8) has reported, so each bad trial meets a better one at the
    first rung and stops training there (step 2 of 6)."""
    space = {"quality": [0.8, 0.2], "learning_rate": [0.1, 0.01]}
    seed = _seed_whose_first_grid_point_is(space, "quality", 0.8)
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        "name": "two-agents", "method": "grid", "count": 4,
        "metric": {"name": "val/mrr@10", "goal": "maximize"},
        "parameters": {k: {"values": v} for k, v in space.items()},
        "early_terminate": {"type": "hyperband", "min_iter": 1, "max_iter": 2, "eta": 3},
    }))
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    wandb_dir = tmp_path / "wb"
    program = ["--program", "tests.helpers.sweeps:trainer_program", "--seed", str(seed)]
    agents = [_agent(config, storage, 0, wandb_dir, *program)]
    _wait_for(lambda trials: any(t.number == 0 and t.intermediate_values for t in trials), "two-agents", storage)
    agents.append(_agent(config, storage, 1, wandb_dir, *program))
    outputs = [agent.communicate(timeout=600)[0] for agent in agents]
    assert [a.returncode for a in agents] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert all("this agent ran" in out for out in outputs)

    trials = _ran(optuna.load_study(study_name="two-agents", storage=storage).get_trials())
    assert len(trials) == 4
    assert sorted((t.params["quality"], t.params["learning_rate"]) for t in trials) == sorted(
        (q, lr) for q in space["quality"] for lr in space["learning_rate"])
    for t in trials:
        if t.params["quality"] == 0.2:
            assert t.state.name == "PRUNED" and t.intermediate_values == {1: 0.2}
        else:
            assert t.state.name == "COMPLETE" and t.value == 0.8 and len(t.intermediate_values) == 3

    runs = [read_run(d) for d in run_dirs(wandb_dir)]
    assert len(runs) == 4
    by_trial = {r.summary["sweep/trial_number"]: r for r in runs}
    assert sorted(by_trial) == sorted(t.number for t in trials)
    for t in trials:
        run = by_trial[t.number]
        header = run.of_type("run")[0]
        assert header["run_group"] == "two-agents" and header["job_type"] == "sweep-trial"
        assert run.config["quality"] == t.params["quality"]
        assert run.config["learning_rate"] == t.params["learning_rate"]
        assert run.summary["sweep/trial_state"] == t.state.name
        assert run.state == "finished" and run.exit_code == 0
        # A pruned trial stopped at its first evaluation (step 2 of 6); a complete one trained to the end.
        assert max(run.series("train/global_step")) == (2 if t.state.name == "PRUNED" else 6)
        if t.state.name == "COMPLETE":
            assert run.summary["sweep/objective"] == 0.8


@pytest.mark.slow
def test_agents_race_for_the_last_slots_and_never_exceed_count(tmp_path):
    """Two processes on one SQLite store with a cheap program: count holds exactly under contention."""
    config = tmp_path / "race.yaml"
    config.write_text(yaml.safe_dump({
        "name": "race", "method": "random", "count": 6, "metric": {"name": "val/mrr@10", "goal": "maximize"},
        "parameters": {"quality": {"min": 0.0, "max": 1.0}, "sleep": {"value": 0.2}},
    }))
    storage = f"sqlite:///{tmp_path / 'race.db'}"
    agents = [_agent(config, storage, i, tmp_path / "wb", "--program", "tests.helpers.sweeps:scripted_program")
              for i in (0, 1)]
    outputs = [agent.communicate(timeout=300)[0] for agent in agents]
    assert [a.returncode for a in agents] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    trials = _ran(optuna.load_study(study_name="race", storage=storage).get_trials())
    assert len(trials) == 6 and {t.state.name for t in trials} == {"COMPLETE"}
    assert len({t.params["quality"] for t in trials}) == 6  # agents 0 and 1 sample differently
    assert len(run_dirs(tmp_path / "wb")) == 6


@pytest.mark.slow
def test_killed_agent_loses_no_finished_trial(tmp_path):
    """SIGKILL an agent mid-trial: its finished trials stay; the heartbeat fails the orphaned trial and a
    restarted agent runs that slot again, so the sweep still ends with exactly `count` trials."""
    config = tmp_path / "kill.yaml"
    config.write_text(yaml.safe_dump({
        "name": "kill", "method": "random", "count": 3, "metric": {"name": "val/mrr@10", "goal": "maximize"},
        "parameters": {"quality": {"min": 0.0, "max": 1.0}, "sleep": {"value": 1.5}},
    }))
    storage = f"sqlite:///{tmp_path / 'kill.db'}"
    agent = _agent(config, storage, 0, tmp_path / "wb", "--program", "tests.helpers.sweeps:scripted_program")
    _wait_for(lambda trials: any(t.state.name == "COMPLETE" for t in trials)
              and any(t.state.name == "RUNNING" for t in trials), "kill", storage)
    os.kill(agent.pid, signal.SIGKILL)
    agent.communicate(timeout=60)
    finished = {t.number: t.value for t in optuna.load_study(study_name="kill", storage=storage).get_trials()
                if t.state.name == "COMPLETE"}
    assert finished
    time.sleep(2.5)
    result = run_local_sweep(config, scripted_program, storage=storage, agent_id=1, grace_period=2,
                             wandb_mode="disabled")
    states = [t.state.name for t in _ran(result.trials)]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1  # the killed trial, not counted
    assert {t.number: t.value for t in result.trials if t.number in finished} == finished

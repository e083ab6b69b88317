"""Offline sweeps whose agents die: heartbeats, stale trials failed and retried, `count` reached exactly.

The multi-machine case runs on a real PostgreSQL server (started by `tests.postgres_server`): three agent
processes on one study, one killed with SIGKILL mid-trial (its whole process group, as when a machine dies).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from hf_search_wandb.sweeps.config import load_sweep_config
from hf_search_wandb.sweeps.local import run_local_sweep, suggest
from hf_search_wandb.sweeps.trial_slots import heartbeat_storage
from tests.helpers.paths import REPO_ROOT
from tests.helpers.postgres_server import postgres_server
from tests.helpers.sweeps import MARKERS_ENV, completing_program


def _sweep(name: str, count: int, sleep: float) -> dict:
    return {"name": name, "method": "random", "count": count, "metric": {"name": "val/mrr@10", "goal": "maximize"},
            "parameters": {"quality": {"min": 0.0, "max": 1.0}, "sleep": {"value": sleep}}}


def _agent(config: Path, storage: str, agent_id: int, workdir: Path, grace: int) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO_ROOT), MARKERS_ENV: str(workdir / "done.jsonl")}
    command = [sys.executable, "-m", "hf_search_wandb.cli", "sweep", "run", str(config), "--offline",
               "--storage", storage, "--agent-id", str(agent_id), "--grace-period", str(grace),
               "--output-dir", str(workdir / f"agent{agent_id}"),
               "--program", "tests.helpers.sweeps:completing_program"]
    # Its own process group, so that killing the "machine" kills everything the agent started.
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _trials(name: str, storage: str) -> list:
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    except KeyError:  # no agent has created the study yet
        return []


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_three_agents_on_postgres_one_killed_mid_trial_reach_count_exactly(tmp_path):
    """count=6 over 3 agents sharing one PostgreSQL study; the agent of the first trial seen running for
    0.5 s is SIGKILLed. The two others finish: exactly 6 COMPLETE trials, the killed one FAIL and retried
    once with the same parameters, and no parameter set ran to its end twice."""
    count, grace = 6, 3
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(_sweep("pg-failover", count, sleep=2.0)))
    markers = tmp_path / "done.jsonl"
    with postgres_server() as url:
        agents = [_agent(config, url, i, tmp_path, grace) for i in range(3)]
        try:
            deadline, victim = time.time() + 300, None
            while victim is None and time.time() < deadline:
                time.sleep(0.2)
                for trial in _trials("pg-failover", url):
                    started = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
                    if trial.state.name == "RUNNING" and "agent" in trial.user_attrs and time.time() - started > 0.5:
                        victim = trial
                        break
            assert victim is not None, "no trial ever ran"
            killed = next(a for a in agents if a.pid == victim.user_attrs["agent"]["pid"])
            os.killpg(killed.pid, signal.SIGKILL)
            killed_at = time.time()
            killed.communicate(timeout=60)
            survivors = [a for a in agents if a is not killed]
            outputs = [a.communicate(timeout=300)[0] for a in survivors]
            finished_at = time.time()
        finally:
            for agent in agents:
                if agent.poll() is None:
                    os.killpg(agent.pid, signal.SIGKILL)
                    agent.communicate()
        assert [a.returncode for a in survivors] == [0, 0], "\n".join(o[-3000:] for o in outputs)
        trials = [t for t in _trials("pg-failover", url) if not t.user_attrs.get("skipped")]

    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == count and states.count("FAIL") == 1, states
    dead = next(t for t in trials if t.number == victim.number)
    assert dead.state.name == "FAIL" and "error" not in dead.user_attrs
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.state.name == "COMPLETE" and retry.params == dead.params
    assert retry.user_attrs["agent"]["pid"] != killed.pid
    completions = [json.loads(line) for line in markers.read_text().splitlines()]
    assert len(completions) == count and len(set(completions)) == count  # no trial ran to its end twice
    assert sorted(completions) == sorted(t.params["quality"] for t in trials if t.state.name == "COMPLETE")
    retry_started = retry.datetime_start.timestamp() - killed_at
    print(f"\nfigures: count={count}, COMPLETE={states.count('COMPLETE')}, grace={grace}s, retry started "
          f"{retry_started:.1f}s after the kill, sweep done {finished_at - killed_at:.1f}s after the kill")


def test_a_restart_reruns_the_trial_of_a_killed_agent_even_when_count_looks_reached(tmp_path):
    """count=4, three trials COMPLETE and the fourth left RUNNING by a dead agent (its last heartbeat older
    than grace_period). Before: the restart counted the zombie, ran 0 trials and left
    {'COMPLETE': 3, 'RUNNING': 1}. Now Optuna fails the stale trial, re-queues it, and the restart runs it."""
    sweep = _sweep("zombie", 4, sleep=0.0)
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    os.environ[MARKERS_ENV] = str(tmp_path / "done.jsonl")
    try:
        first = run_local_sweep({**sweep, "count": 3}, completing_program, storage=storage, wandb_mode="disabled",
                                grace_period=2)
        assert first.states() == {"COMPLETE": 3}
        # The dead agent: a trial that started, beat once, and was never heard of again.
        study = optuna.load_study(study_name="zombie", storage=heartbeat_storage(optuna, storage, 2))
        with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna: ask() outside optimize() skips heartbeats
            zombie = study.ask()
        params = suggest(zombie, load_sweep_config(sweep))
        study._storage.record_heartbeat(zombie._trial_id)
        time.sleep(3.5)
        result = run_local_sweep(sweep, completing_program, storage=storage, wandb_mode="disabled", grace_period=2)
    finally:
        del os.environ[MARKERS_ENV]
    assert result.ran == 1
    assert result.states() == {"COMPLETE": 4, "FAIL": 1}
    (retry,) = [t for t in result.trials if t.system_attrs.get("failed_trial") == zombie.number]
    assert retry.state.name == "COMPLETE" and retry.params["quality"] == params["quality"]


def test_grace_period_below_two_seconds_is_refused():
    with pytest.raises(ValueError, match="grace_period must be at least 2"):
        heartbeat_storage(optuna, "sqlite:///:memory:", 1)

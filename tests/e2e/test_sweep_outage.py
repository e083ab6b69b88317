"""Offline sweep agents (`hf-search-wandb sweep run --offline` processes) on a real PostgreSQL server that is
stopped with `pg_ctl stop -m immediate` mid-sweep (every connection dropped at once, as a crash or a lost host):

- back ~10 s later: the agents wait for it, store the results that finished during the outage, fail no live
  trial as stale, and the sweep ends with exactly `count` COMPLETE trials, each parameter set trained once;
- never back: the agent exits within its `--db-retry` bound with exit code 3 and one line naming the cause.

Before: both agents exited at once with Optuna's "invalid data in the commit" traceback; the results that
finished during the outage were lost and their trials stayed RUNNING.
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

from tests.helpers.paths import REPO_ROOT
from tests.helpers.postgres_server import controlled_postgres_server
from tests.helpers.sweeps import MARKERS_ENV


def _config(tmp_path: Path, name: str, count: int, sleep: float) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "method": "random",
                "count": count,
                "metric": {"name": "val/mrr@10", "goal": "maximize"},
                "parameters": {"quality": {"min": 0.0, "max": 1.0}, "sleep": {"value": sleep}},
            }
        )
    )
    return path


def _agent(config: Path, storage: str, agent_id: int, workdir: Path, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "WANDB_SILENT": "true",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(REPO_ROOT),
        MARKERS_ENV: str(workdir / "done.jsonl"),
    }
    command = [
        sys.executable,
        "-m",
        "hf_search_wandb.cli",
        "sweep",
        "run",
        str(config),
        "--offline",
        "--storage",
        storage,
        "--agent-id",
        str(agent_id),
        "--grace-period",
        "3",
        "--output-dir",
        str(workdir / f"agent{agent_id}"),
        "--program",
        "tests.helpers.sweeps:stamped_program",
        *extra,
    ]
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _reader(url: str) -> optuna.storages.RDBStorage:
    """One storage for all of a test's reads (a new one per poll would open a connection each time, until the
    server refuses more clients); pre-pinged, so that its connections survive the server's restart."""
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def _trials(name: str, storage: optuna.storages.RDBStorage) -> list:
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    except KeyError:  # no agent has created the study yet
        return []


def _wait_until_running(name: str, storage: optuna.storages.RDBStorage, n: int, timeout: float = 300) -> list:
    """Wait until `n` trials run at once, each started at least 0.5 s ago, at least one trial completed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.2)
        trials = _trials(name, storage)
        running = [
            t
            for t in trials
            if t.state.name == "RUNNING"
            and "agent" in t.user_attrs
            and time.time() - t.datetime_start.timestamp() > 0.5
        ]
        if len(running) >= n and any(t.state.name == "COMPLETE" for t in trials):
            return running
    raise AssertionError(f"never saw {n} trials running at once")


def _stop_all(agents: list[subprocess.Popen]) -> None:
    for agent in agents:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.communicate()


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_postgres_stopped_mid_sweep_and_back_10_s_later_keeps_every_result(tmp_path):
    count, sleep, outage = 6, 3.0, 10.0
    config = _config(tmp_path, "outage", count, sleep)
    with controlled_postgres_server() as server:
        agents = [_agent(config, server.plain_url, i, tmp_path) for i in range(2)]
        reader = _reader(server.url)
        try:
            running = _wait_until_running("outage", reader, 2)
            server.stop("immediate")
            stopped_at = time.time()
            time.sleep(outage)
            server.start()
            back_at = time.time()
            outputs = [a.communicate(timeout=300)[0] for a in agents]
            done_at = time.time()
        finally:
            _stop_all(agents)
        trials = [t for t in _trials("outage", reader) if not t.user_attrs.get("skipped")]

    assert [a.returncode for a in agents] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE"] * count, states  # no trial failed as stale, none left RUNNING
    completions = [json.loads(line) for line in (tmp_path / "done.jsonl").read_text().splitlines()]
    # Each parameter set trained once.
    assert len(completions) == count and len({c["quality"] for c in completions}) == count
    assert sorted(c["quality"] for c in completions) == sorted(t.params["quality"] for t in trials)
    during = [c for c in completions if stopped_at < c["at"] < back_at]
    assert len(during) >= 2, (stopped_at, back_at, completions)  # the two trials running at the stop
    by_quality = {t.params["quality"]: t for t in trials}
    for finished in during:  # stored when the server came back
        assert by_quality[finished["quality"]].value == finished["quality"]
    assert {t.number for t in running} <= {by_quality[c["quality"]].number for c in during}
    print(
        f"\nfigures: count={count}, outage {back_at - stopped_at:.1f} s, {len(during)} results finished during it "
        f"and stored after it; {states.count('COMPLETE')} COMPLETE, 0 FAIL, 0 duplicates; sweep done "
        f"{done_at - back_at:.1f} s after the server came back"
    )


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_postgres_that_never_comes_back_ends_the_agent_in_one_line_within_its_bound(tmp_path):
    bound = 6
    config = _config(tmp_path, "gone", 4, 2.0)
    with controlled_postgres_server() as server:
        agent = _agent(config, server.plain_url, 0, tmp_path, "--db-retry", str(bound))
        try:
            _wait_until_running("gone", _reader(server.url), 1)
            server.stop("immediate")
            stopped_at = time.time()
            output = agent.communicate(timeout=120)[0]
            took = time.time() - stopped_at
        finally:
            _stop_all([agent])
    assert agent.returncode == 3, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith(
        f"error: could not reach the sweep database postgresql://postgres@127.0.0.1:{server.port}"
        f'/postgres: connection to server at "127.0.0.1", port {server.port} failed: '
        "Connection refused for "
    ), last
    assert bound <= took < bound + 30, took
    print(
        f"\nfigures: agent exited {took:.1f} s after the server stopped (bound {bound} s), exit code 3: {last}"
    )

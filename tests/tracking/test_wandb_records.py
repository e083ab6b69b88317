"""The test helper that lists run folders returns them in the order the runs started.

Tests that start several runs (sweeps, resumed runs) pair `run_dirs(...)` with what each run was given; wandb
names a folder by the second its run started and then a random id, so order by name alone is random for two
runs started in one second (a CI failure: the sweep's two trials came back swapped).
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.wandb_records import run_dirs


def _fake_run(root: Path, name: str, created: str) -> None:
    logs = root / "wandb" / name / "logs"
    logs.mkdir(parents=True)
    (logs / "debug.log").write_text(
        f"{created} INFO    MainThread:1 [wandb_setup.py:_flush():81] Current SDK version is 0.31.0\n"
        f"{created} INFO    MainThread:1 [wandb_init.py:setup_run_log_directory():740] "
        f"Logging user logs to {root / 'wandb' / name / 'logs' / 'debug.log'}\n",
        encoding="utf-8",
    )


def test_runs_started_in_one_second_come_back_in_start_order(tmp_path):
    # The later run's random id sorts first by name.
    _fake_run(tmp_path, "offline-run-20261203_005515-zzzzzzzz", "2026-12-03 00:55:15,100")
    _fake_run(tmp_path, "offline-run-20261203_005515-aaaaaaaa", "2026-12-03 00:55:15,900")
    _fake_run(tmp_path, "offline-run-20261203_005514-mmmmmmmm", "2026-12-03 00:55:14,999")
    (tmp_path / "wandb" / "latest-run").mkdir()
    assert [p.name[-8:] for p in run_dirs(tmp_path)] == ["mmmmmmmm", "zzzzzzzz", "aaaaaaaa"]

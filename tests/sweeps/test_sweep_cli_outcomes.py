"""What `hf-search-wandb sweep run --offline` does with the user's settings and says at the end: the documented
`postgresql://` URL with the driver the `sweeps` extra installs, `WANDB_MODE=disabled` (no run per trial), and a
`count` used up by failed trials (said, with how to go on, and a non-zero exit)."""

from __future__ import annotations

import configparser
import sys

import optuna
import pytest
import yaml

from hf_search_wandb.cli import main
from hf_search_wandb.sweeps.database import storage_url
from tests.helpers.paths import REPO_ROOT
from tests.helpers.postgres_server import controlled_postgres_server
from tests.helpers.sweeps import FAIL_ENV
from tests.helpers.wandb_records import run_dirs

PROGRAM = "tests.helpers.sweeps:broken_until_fixed_program"


def _config(tmp_path, name: str, count: int):
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "method": "random",
                "count": count,
                "metric": {"name": "val/mrr@10", "goal": "maximize"},
                "parameters": {"quality": {"min": 0.0, "max": 1.0}},
            }
        )
    )
    return path


@pytest.fixture(autouse=True)
def _fresh_wandb_settings():
    """wandb caches its settings (WANDB_DIR, WANDB_MODE) per process: reset them around each test."""
    import wandb

    wandb.teardown()
    yield
    wandb.teardown()


@pytest.mark.postgres
def test_the_documented_postgresql_url_runs_with_the_installed_driver(tmp_path, monkeypatch, capsys):
    """`--storage postgresql://...` as docs/sweeps.md writes it, with psycopg2 (what the `sweeps` extra
    installs) and no psycopg 3. Before: `ImportError: Failed to import DB access module` (SQLAlchemy 2.1 maps
    a bare postgresql:// to psycopg 3)."""
    # As on a machine where only the extra's driver is installed.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with controlled_postgres_server() as server:
        code = main(
            [
                "sweep",
                "run",
                str(_config(tmp_path, "pg-docs", 2)),
                "--offline",
                "--storage",
                server.plain_url,
                "--agent-id",
                "1",
                "--grace-period",
                "300",
                "--program",
                PROGRAM,
                "--output-dir",
                str(tmp_path / "out"),
            ]
        )
        trials = optuna.load_study(study_name="pg-docs", storage=server.url).get_trials()
        assert code == 0, capsys.readouterr().err
        # `report` reads the same documented URL (before: the same ImportError); with wandb disabled the trials
        # wrote no run folder, which is what it must say
        report_code = main(["report", server.plain_url, "-o", str(tmp_path / "report.html")])
    err = capsys.readouterr().err
    assert report_code == 2 and "no run folder found" in err and "import" not in err.lower(), err
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]


def test_the_sweeps_extra_installs_the_driver_a_postgresql_url_is_given(monkeypatch):
    extras = configparser.ConfigParser()
    extras.read(REPO_ROOT / "setup.cfg")
    assert "psycopg2-binary" in extras["options.extras_require"]["sweeps"]
    monkeypatch.setitem(sys.modules, "psycopg", None)
    assert storage_url("postgresql://u:p@db/s") == "postgresql+psycopg2://u:p@db/s"
    assert storage_url("postgres://u@db/s") == "postgresql+psycopg2://u@db/s"
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(
        ImportError,
        match=r"postgresql://u:\*\*\*@db/s needs a PostgreSQL driver: pip install "
        r"'hf-search-wandb\[sweeps\]'",
    ):
        storage_url("postgresql://u:p@db/s")


@pytest.mark.parametrize("mode, runs", [("disabled", 0), ("offline", 2)])
def test_wandb_mode_disabled_writes_no_run_per_trial(tmp_path, wandb_offline, monkeypatch, mode, runs):
    """`sweep run --offline` under WANDB_MODE=disabled trains its trials and writes no wandb run; under
    WANDB_MODE=offline one run per trial. Before: an offline run per trial in both cases."""
    monkeypatch.setenv("WANDB_MODE", mode)
    code = main(
        [
            "sweep",
            "run",
            str(_config(tmp_path, f"mode-{mode}", 2)),
            "--offline",
            "--program",
            PROGRAM,
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    trials = optuna.load_study(
        study_name=f"mode-{mode}", storage=f"sqlite:///{tmp_path / 'out' / 'sweep.db'}"
    ).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert len(run_dirs(wandb_offline)) == runs


def test_a_count_used_up_by_failed_trials_is_said_with_how_to_go_on(tmp_path, monkeypatch, capsys):
    """count=2, both trials fail (a bug in the program); the bug is fixed and the same command re-run. Before:
    exit 0 with "ran 0 trial(s) ... best = None". Now: exit 1 and one line saying count is used up by 2
    failed trials and to re-run with --count 4; that command then trains 2 trials."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    config = _config(tmp_path, "broken", 2)
    command = [
        "sweep",
        "run",
        str(config),
        "--offline",
        "--program",
        PROGRAM,
        "--output-dir",
        str(tmp_path / "o"),
    ]
    monkeypatch.setenv(FAIL_ENV, "1")
    assert main(command) == 1
    capsys.readouterr()
    monkeypatch.delenv(FAIL_ENV)  # the fix

    assert main(command) == 1
    out, err = capsys.readouterr()
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert line.startswith(
        "error: count=2 is used up: 2 trial(s) FAILED (last error: RuntimeError('scripted bug"
    )
    assert "0 COMPLETE" in line and "re-run with --count 4 to train 2 more trial(s)" in line
    assert "ran 0 trial(s)" in out

    assert main([*command, "--count", "4"]) == 0
    states = [
        t.state.name
        for t in optuna.load_study(
            study_name="broken", storage=f"sqlite:///{tmp_path / 'o' / 'sweep.db'}"
        ).get_trials()
    ]
    assert sorted(states) == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]

"""The installed `hf-search-wandb` console script runs as a process and reports config errors on stderr.

(Split from tests/test_cli.py, whose tests call `cli.main` in-process.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def write(tmp_path: Path, config: dict | str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def test_console_script_is_installed(tmp_path):
    exe = Path(sys.executable).with_name("hf-search-wandb")
    exe_path = str(exe) if exe.exists() else shutil.which("hf-search-wandb")
    if exe_path is None:
        pytest.skip("package not installed with its console script")
    bad = write(tmp_path, {"method": "grid"})
    # transformers prints "[INFO] Running in WANDB offline mode" on import when WANDB_MODE=offline (as
    # `make test` sets it); that line is not the CLI's output, so the check runs without it.
    env = {k: v for k, v in os.environ.items() if k != "WANDB_MODE"}
    done = subprocess.run(
        [exe_path, "sweep", "validate", str(bad)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 2 and "metric is required" in done.stderr and done.stdout == ""

"""Running the examples as a user does (a child process, wandb offline under a test folder) and reading the one
run each writes."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers.paths import REPO_ROOT
from tests.helpers.wandb_records import read_run, run_dirs


def example_env(wandb_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        WANDB_MODE="offline",
        WANDB_DIR=str(wandb_dir),
        WANDB_SILENT="true",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(REPO_ROOT),
        # show deprecations raised in library modules too (Python hides those outside __main__ by default)
        PYTHONWARNINGS="default::DeprecationWarning,default::FutureWarning",
    )
    return env


#: A deprecation notice: a DeprecationWarning / FutureWarning, or a library's logged advice
#: (sentence-transformers logs "The `warmup_ratio` argument is deprecated ...").
_DEPRECATION = re.compile(r"DeprecationWarning|FutureWarning|\bdeprecated\b", re.IGNORECASE)
#: Deprecations that libraries cause among themselves, whatever the example passes: sentence-transformers'
#: training arguments always set `ddp_broadcast_buffers=False`, which transformers hands to torch's
#: DistributedDataParallel, where torch 2.13 deprecates it (two-process runs only).
_NOT_OURS = ("`broadcast_buffers` is deprecated",)


def run_example(cmd: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    notices = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if _DEPRECATION.search(line) and not any(known in line for known in _NOT_OURS)
    ]
    assert not notices, "the example prints deprecation warnings: use the APIs they name\n" + "\n".join(notices[:10])
    return proc


def one_run(wandb_dir: Path):
    runs = run_dirs(wandb_dir)
    assert len(runs) == 1, f"expected exactly one wandb run, found {[p.name for p in runs]}"
    return read_run(runs[0])

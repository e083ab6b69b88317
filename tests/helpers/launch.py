"""Launching child processes: a free port for `accelerate launch`, 2-process CPU DDP commands, their output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import REPO_ROOT


def free_port() -> int:
    """A TCP port nothing listens on now (each test asks for its own, so parallel workers never share one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accelerate_2cpu(script: Path, *args: str | Path) -> list[str]:
    """`accelerate launch --multi_gpu --num_processes 2 SCRIPT ARGS...`: accelerate's multi-CPU DDP over gloo
    (its `--cpu` launcher starts ONE process in accelerate 1.x)."""
    accelerate = Path(sys.executable).with_name("accelerate")
    return [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
            str(script), *map(str, args)]  # fmt: skip


def run_ranks(command: list[str], out: Path) -> list[dict]:
    """Run `command` (one thread per process) and read the rank*.json files it wrote under `out`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


def end_process_group() -> None:
    """Destroy the process group before the interpreter exits (the end of each launched script).

    Without it, gloo's worker threads can still be alive while Python tears down, and the process dies with
    SIGABRT ("terminate called without an active exception", pytorch/pytorch#190489) after all its work is
    done: a test then fails now and then on a fast machine. The barrier lets every rank finish its last
    collective first.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

"""Read an offline wandb run back with wandb's own reader (`wandb leet inspect --json`).

Tests use this instead of mocking wandb: the run is written for real in offline mode and every
assertion is made on what wandb itself stored.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_search_wandb.tracking.run_history import started


def _wandb_cli() -> str:
    exe = Path(sys.executable).with_name("wandb")
    return str(exe) if exe.exists() else (shutil.which("wandb") or "wandb")


@dataclass
class RunRecords:
    """Everything `wandb leet inspect --json` printed for one run, grouped by record type."""

    run_dir: Path
    records: list[dict[str, Any]]
    summary_view: dict[str, Any] = field(default_factory=dict)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r[kind] for r in self.records if r.get("type") == kind]

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict per `run.log` call (the history row's items)."""
        return [h["item"] for h in self.of_type("history")]

    def series(self, key: str) -> list[Any]:
        """Every logged value of `key`, in log order."""
        return [row[key] for row in self.history if key in row]

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.summary_view.get("config", {}))

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self.summary_view.get("summary", {}))

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        return self.of_type("artifact")

    @property
    def metric_definitions(self) -> list[dict[str, Any]]:
        return self.of_type("metric")

    @property
    def state(self) -> str:
        return str(self.summary_view.get("state", ""))

    @property
    def exit_code(self) -> int | None:
        exits = self.of_type("exit")
        return exits[-1].get("exit_code", 0) if exits else None


def finish_if_open(run_dir: Path) -> None:
    """Finish the run of `run_dir` if it is still open in this process, as the process exit would.

    `SearchWandbCallback` keeps its run open after `train()` (for post-training evaluations) until
    `callback.finish()`, the next `train()` or the process exit; a test that reads the run before any of
    those ends it here.
    """
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None)
    directory = getattr(run, "dir", None)
    if run is not None and directory and Path(directory).parent.resolve() == run_dir.resolve():
        run.finish()


def read_run(run_dir: str | Path) -> RunRecords:
    """Run `wandb leet inspect --json` and `--summary --json` on `run_dir` and parse both (finishing the run
    first if this process still holds it open). The two readers run side by side: each is a process start,
    about half of a read's time, and every test that writes a run reads it."""
    run_dir = Path(run_dir)
    finish_if_open(run_dir)
    cli = _wandb_cli()
    records_proc, summary_proc = (
        subprocess.Popen([cli, "leet", "inspect", *extra, "--json", str(run_dir)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for extra in ([], ["--summary"])
    )
    outputs = []
    for proc in (records_proc, summary_proc):
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, out, err)
        outputs.append(out)
    records = [json.loads(line) for line in outputs[0].splitlines() if line.strip()]
    return RunRecords(run_dir=run_dir, records=records, summary_view=json.loads(outputs[1]))


def run_dirs(wandb_root: str | Path) -> list[Path]:
    """All run directories (offline-run-* / run-*) under a wandb directory, oldest first.

    Ordered by start time (`tracking.run_history.started`), not by name alone: names carry the second the
    run started and then a random id, so two runs started within one second would otherwise come back in
    random order.
    """
    root = Path(wandb_root)
    if (root / "wandb").is_dir():
        root = root / "wandb"
    dirs = [p for p in root.glob("*run-*") if p.is_dir() and p.name != "latest-run"]
    return sorted(dirs, key=started)

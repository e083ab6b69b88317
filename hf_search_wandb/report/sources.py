"""Which run folders a `report` PATH names: a run folder, a folder of runs, or an offline sweep's storage.

* a run folder holds wandb's log `run-<id>.wandb` (e.g. `wandb/offline-run-20240315_143000-abc123xy`);
* a folder of runs holds such folders (`wandb/`, or a project folder whose `wandb/` holds them);
* an offline sweep's storage is the Optuna URL its agents used (`sqlite:///outputs/sweep/sweep.db`,
  `postgresql://...`): each trial names its wandb run folder in its `wandb_run_dir` user attribute, set
  by `hf_search_wandb.sweeps.local`.

Nothing here reads a run; `hf_search_wandb.report.reader` does, with wandb's own reader.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_search_wandb.tracking.run_history import started

#: Trial user attributes written by the offline sweep engine (`hf_search_wandb.sweeps.local`).
RUN_ID_ATTR = "wandb_run_id"
RUN_DIR_ATTR = "wandb_run_dir"


class ReportInputError(ValueError):
    """A PATH given to the report names no run, or a run that cannot be read."""


@dataclass(frozen=True)
class SweepTrial:
    """What the sweep storage knows of one trial (the run's own log has the rest)."""

    study: str
    number: int
    state: str
    value: float | None
    params: dict[str, Any]


@dataclass
class RunSources:
    """The run folders to report on, and what the sweeps they came from say about them.

    Attributes:
        run_dirs: run folders, in the order given (a folder of runs: oldest first), without repeats.
        trials: `{run folder: SweepTrial}` for runs found through a sweep storage.
        sweep_metrics: `{study name: (metric name, goal)}` of those sweeps (`val/mrr@10`, `maximize`).
    """

    run_dirs: list[Path] = field(default_factory=list)
    trials: dict[Path, SweepTrial] = field(default_factory=dict)
    sweep_metrics: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, run_dir: Path) -> None:
        run_dir = run_dir.resolve()
        if run_dir not in self.run_dirs:
            self.run_dirs.append(run_dir)


def is_run_dir(path: Path) -> bool:
    """True when `path` is a wandb run folder (it holds a `run-*.wandb` log)."""
    return path.is_dir() and any(path.glob("run-*.wandb"))


def runs_under(folder: Path) -> list[Path]:
    """The run folders directly under `folder` (or under `folder/wandb`), oldest first (`started`); the
    `latest-run` link is skipped."""
    if (folder / "wandb").is_dir() and not any(folder.glob("*run-*")):
        folder = folder / "wandb"
    found = [p for p in folder.glob("*run-*") if p.name != "latest-run" and not p.is_symlink() and is_run_dir(p)]
    return sorted(found, key=started)


def is_storage_url(text: str) -> bool:
    """True for a database URL (`sqlite:///...`, `postgresql://...`), as Optuna takes it."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.replace("+", "").replace("-", "").isalnum()


def resolve_paths(paths: Sequence[str | Path], *, study: str | None = None) -> RunSources:
    """The run folders that `paths` name (see the module docstring).

    Args:
        paths: run folders, folders of runs, or Optuna storage URLs, in any mix.
        study: with a storage URL, report only this study (default: every study it holds).

    Returns:
        The run folders, without repeats, in the order given.

    Raises:
        ReportInputError: a path that does not exist or holds no run, a storage without the study or
            whose trials name no run folder; the message says which and what to pass instead.
    """
    if not paths:
        raise ReportInputError("no PATH given: pass a run folder, a folder of runs (e.g. wandb/) or a sweep "
                               "storage URL (e.g. sqlite:///outputs/sweep/sweep.db)")
    sources = RunSources()
    for raw in paths:
        text = str(raw)
        if is_storage_url(text):
            _add_sweep(sources, text, study)
            continue
        path = Path(text).expanduser()
        if path.is_file() and path.suffix == ".wandb":
            path = path.parent
        if not path.exists():
            raise ReportInputError(f"{text}: no such file or folder")
        if is_run_dir(path):
            sources.add(path)
            continue
        found = runs_under(path) if path.is_dir() else []
        if not found:
            raise ReportInputError(f"{text}: neither a wandb run folder (no run-*.wandb inside) nor a folder "
                                   "of runs (no */run-*.wandb below it); pass e.g. wandb/ or "
                                   "wandb/offline-run-<time>-<id>")
        for run_dir in found:
            sources.add(run_dir)
    return sources


def _add_sweep(sources: RunSources, url: str, study: str | None) -> None:
    from hf_search_wandb.sweeps.local import CONFIG_ATTR, require_optuna

    optuna = require_optuna()
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///"))
        if not db.is_file():
            raise ReportInputError(f"{url}: no such SQLite file {db} (the offline sweep's default storage is "
                                   "sqlite:///<output-dir>/sweep.db)")
    from hf_search_wandb.sweeps.database import storage_url

    try:
        storage = optuna.storages.RDBStorage(storage_url(url), skip_table_creation=True)  # postgresql:// as the agents
    except ImportError as err:
        raise ReportInputError(f"{url}: {err}") from None
    names = [s.study_name for s in storage.get_all_studies()]
    if study is not None:
        if study not in names:
            raise ReportInputError(f"{url}: no study {study!r}; it holds {', '.join(names) or 'none'}")
        names = [study]
    if not names:
        raise ReportInputError(f"{url}: the storage holds no study")
    for name in names:
        loaded = optuna.load_study(study_name=name, storage=storage)
        metric = (loaded.user_attrs.get(CONFIG_ATTR) or {}).get("metric") or {}
        if metric.get("name"):
            sources.sweep_metrics[name] = (str(metric["name"]), str(metric.get("goal", "maximize")))
        missing: list[str] = []
        for trial in loaded.get_trials(deepcopy=False):
            if trial.user_attrs.get("skipped"):
                continue
            run_dir = _trial_run_dir(trial.user_attrs, url)
            if run_dir is None:
                missing.append(f"trial {trial.number} (run {trial.user_attrs.get(RUN_ID_ATTR, '?')})")
                continue
            sources.add(run_dir)
            sources.trials[run_dir.resolve()] = SweepTrial(
                study=name, number=trial.number, state=trial.state.name, value=trial.value,
                params=dict(trial.params),
            )
        if missing:
            raise ReportInputError(
                f"{url}, study {name!r}: no run folder found for {', '.join(missing)}; the runs were written "
                "on another machine or moved: pass their wandb/ folder(s) as PATH instead")


def _trial_run_dir(attrs: dict[str, Any], url: str) -> Path | None:
    """The trial's run folder: its `wandb_run_dir` attribute, else looked up by run id in the usual places."""
    recorded = attrs.get(RUN_DIR_ATTR)
    if recorded and is_run_dir(Path(recorded)):
        return Path(recorded)
    run_id = attrs.get(RUN_ID_ATTR)
    if not run_id:
        return None
    for folder in _candidate_wandb_dirs(url):
        for run_dir in folder.glob(f"*run-*-{run_id}"):
            if is_run_dir(run_dir):
                return run_dir
    return None


def _candidate_wandb_dirs(url: str) -> Iterable[Path]:
    """Where a sweep's runs usually are: `$WANDB_DIR/wandb`, `./wandb`, and beside a SQLite storage."""
    if os.environ.get("WANDB_DIR"):
        yield Path(os.environ["WANDB_DIR"]) / "wandb"
    yield Path.cwd() / "wandb"
    if url.startswith("sqlite:///"):
        db_dir = Path(url.removeprefix("sqlite:///")).parent
        yield db_dir / "wandb"
        yield db_dir.parent / "wandb"

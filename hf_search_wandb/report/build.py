"""`build_report`: offline wandb runs -> one self-contained HTML page (what `hf-search-wandb report` runs)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hf_search_wandb.report.page_data import build_page_data
from hf_search_wandb.report.reader import UnreadableRun, read_available_runs
from hf_search_wandb.report.render import render_html
from hf_search_wandb.report.sources import ReportInputError, resolve_paths


@dataclass(frozen=True)
class ReportResult:
    """What `build_report` wrote.

    Attributes:
        path: the HTML file.
        runs: how many runs it shows.
        size_bytes: its size.
        read_s / build_s: seconds spent reading the runs with wandb / building and writing the page.
        skipped: the run folders wandb could not read, left out of the page (each with the reason).
        warnings: one line per run left out or drawn from a damaged log (`folder: what is wrong`), the
            lines the page shows at its top and `hf-search-wandb report` prints on stderr.
    """

    path: Path
    runs: int
    size_bytes: int
    read_s: float
    build_s: float
    skipped: tuple[UnreadableRun, ...] = ()
    warnings: tuple[str, ...] = ()


def build_report(
    paths: Sequence[str | Path],
    output: str | Path = "report.html",
    *,
    study: str | None = None,
    title: str | None = None,
    workers: int | None = None,
) -> ReportResult:
    """Write one HTML page showing the runs that `paths` name.

    Args:
        paths: run folders, folders of runs (e.g. `wandb/`) or offline sweep storage URLs
            (`sqlite:///outputs/sweep/sweep.db`), in any mix.
        output: the HTML file to write (its folder is created).
        study: with a storage URL, only this study.
        title: the page title (default: the run's name, or "N runs").
        workers: runs read in parallel (default: CPU count, at most 8).

    Returns:
        A `ReportResult`.

    A run folder whose log wandb cannot read (garbage bytes, an empty file) is left out and one whose log
    is damaged (cut off mid-record, a corrupt block) is drawn as far as it was read; either way the page
    says so at its top and the result's `warnings` name the folder and what is wrong.

    Raises:
        ReportInputError: a path names no run, or none of the runs can be read (the message says which and
            why, in one line).
        ImportError: plotly is missing (`pip install 'hf-search-wandb[report]'`).

    Example (needs offline runs on disk; `tests/test_report.py` runs it on real ones)::

        build_report(["wandb/"], "report.html")   # ReportResult(path=PosixPath('report.html'), runs=3, ...)
    """
    t0 = time.perf_counter()
    sources = resolve_paths(paths, study=study)
    runs, skipped = read_available_runs(sources.run_dirs, workers=workers)
    if not runs:
        raise ReportInputError(f"none of the {len(skipped)} run(s) can be read: "
                               + "; ".join(str(s) for s in skipped))
    t1 = time.perf_counter()
    data = build_page_data(runs, trials=sources.trials, sweep_metrics=sources.sweep_metrics, title=title,
                           skipped=skipped)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = render_html(data, generated=generated)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    t2 = time.perf_counter()
    warnings = [f"{s.run_dir}: left out: {s.reason}" for s in skipped]
    warnings += [f"{run.run_dir}: {problem}" for run in runs for problem in run.problems]
    return ReportResult(path=out, runs=len(runs), size_bytes=out.stat().st_size, read_s=t1 - t0, build_s=t2 - t1,
                        skipped=tuple(skipped), warnings=tuple(warnings))

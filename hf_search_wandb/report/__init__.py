"""See offline wandb runs as one self-contained HTML page (`hf-search-wandb report`).

Runs are read with wandb's own reader (`wandb leet inspect`); charts are drawn by the plotly.js that
the `plotly` package ships, inlined in the page, so the page opens with no network.
"""

from hf_search_wandb.report.build import ReportResult, build_report
from hf_search_wandb.report.page_data import build_page_data
from hf_search_wandb.report.reader import (
    RunLog,
    UnreadableRun,
    UnreadableRunError,
    read_available_runs,
    read_run,
    read_runs,
)
from hf_search_wandb.report.render import render_html
from hf_search_wandb.report.sources import ReportInputError, RunSources, resolve_paths

__all__ = [
    "ReportInputError",
    "ReportResult",
    "RunLog",
    "RunSources",
    "UnreadableRun",
    "UnreadableRunError",
    "build_page_data",
    "build_report",
    "read_available_runs",
    "read_run",
    "read_runs",
    "render_html",
    "resolve_paths",
]

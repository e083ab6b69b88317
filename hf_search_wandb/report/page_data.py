"""The report's data: one JSON-ready dict the page draws from (runs, curves, media, sweep view).

Built from `RunLog`s (see `reader`) and, for runs of an offline sweep, what its storage says about each
trial. Pure Python: nothing here runs wandb or writes HTML.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hf_search_wandb.core.metrics.measures import logged_goal
from hf_search_wandb.report import series
from hf_search_wandb.report.reader import RunLog, UnreadableRun
from hf_search_wandb.report.significance import report_section
from hf_search_wandb.report.sources import SweepTrial

#: Config keys the callback records as the environment (`tracking.run_setup.environment_info`).
ENVIRONMENT_KEYS = frozenset({
    "torch_version", "transformers_version", "sentence_transformers_version", "cuda_version", "gpu_name",
    "gpu_count", "accelerate_version", "wandb_version", "hf_search_wandb_version", "world_size",
    "mixed_precision",
})
#: Config keys that identify a run rather than set it up: never drawn as hyperparameters.
_IDENTITY_SUFFIXES = ("_version", "_dir", "_path", "_name")
#: At most this many hyperparameter axes in the sweep view (plus the metric).
MAX_SWEEP_AXES = 12


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists as JSON text.

    Example:
        >>> flatten({"a": {"b": 1}, "c": [1, 2]})
        {'a.b': 1, 'c': '[1, 2]'}
    """
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list):
            out[name] = json.dumps(value, ensure_ascii=False, default=str)
        else:
            out[name] = value
    return out


def goal_of(key: str, definitions: Sequence[Mapping[str, Any]] = ()) -> str:
    """`maximize` / `minimize` for a metric: its `define_metric(summary=...)`, else its goal in the table of
    measures (`core/metrics/measures.py`), else `minimize` for losses."""
    for definition in definitions:
        if definition.get("name") == key:
            summary = definition.get("summary") or {}
            if summary.get("min"):
                return "minimize"
            if summary.get("max"):
                return "maximize"
    goal = logged_goal(key)
    if goal is not None:
        return "minimize" if goal == "min" else "maximize"
    return "minimize" if "loss" in key.rsplit("/", 1)[-1] else "maximize"


def best_point(xs: Sequence[float], ys: Sequence[float], goal: str) -> tuple[float, float] | None:
    """`(value, step)` of the best finite value (the first one on ties), None when there is none."""
    best: tuple[float, float] | None = None
    for x, y in zip(xs, ys, strict=True):
        if not math.isfinite(y):
            continue
        if best is None or (y > best[0] if goal == "maximize" else y < best[0]):
            best = (y, x)
    return best


def best_values(run: RunLog, curves: Mapping[str, tuple[list[float], list[float]]]) -> list[dict[str, Any]]:
    """The run's best values: each summary entry wandb aggregated (`{"max": ...}`) with the step it was
    reached at, and the callback's `best/*` summary keys."""
    rows: list[dict[str, Any]] = []
    for key, value in run.summary.items():
        if isinstance(value, Mapping) and "_type" not in value:
            for how in ("max", "min", "mean", "last", "first"):
                if how in value and series.is_number(value[how]):
                    step = None
                    if how in ("max", "min") and key in curves:
                        found = best_point(*curves[key], "maximize" if how == "max" else "minimize")
                        step = found[1] if found else None
                    rows.append({"metric": key, "value": float(value[how]), "how": how, "step": step})
        elif key.startswith("best/") and series.is_number(value):
            rows.append({"metric": key, "value": float(value), "how": "callback", "step": None})
    return sorted(rows, key=lambda r: series.key_order(r["metric"]))


def artifact_rows(run: RunLog) -> list[dict[str, Any]]:
    """One row per logged artifact version: name, type, the n-th logging of that name, aliases, ..."""
    seen: dict[str, int] = {}
    rows = []
    for artifact in run.artifacts:
        name = str(artifact.get("name", ""))
        seen[name] = seen.get(name, 0) + 1
        metadata: Any = artifact.get("metadata") or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                metadata = {"metadata": metadata}
        contents = (artifact.get("manifest") or {}).get("contents") or []
        size = sum(int(c.get("size") or 0) for c in contents)
        rows.append({
            "name": name, "type": artifact.get("type", ""), "logged": seen[name],
            "aliases": ", ".join(artifact.get("aliases") or []), "description": artifact.get("description", ""),
            "metadata": ", ".join(f"{k}={v}" for k, v in flatten(metadata).items()) if metadata else "",
            "files": len(contents), "size_bytes": size, "digest": artifact.get("digest", ""),
        })
    return rows


def environment_of(run: RunLog) -> dict[str, Any]:
    """The callback's environment keys from the config, then wandb's environment record."""
    env = {k: v for k, v in flatten(run.config).items() if k in ENVIRONMENT_KEYS}
    for key, value in flatten(run.environment).items():
        if key != "writer_id":
            env[f"wandb.{key}"] = value
    return env


def run_entry(run: RunLog, index: int, trial: SweepTrial | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page's record of one run, and its scalar curves (`{key: (x, y)}`, for the charts and best values)."""
    rows = series.rows_of(run)
    curves = series.scalar_series(run, rows)
    axis = rows.axis
    xs = [x for key, (x, _) in curves.items() if key.startswith(("train/", "val/"))]
    last_step = max((max(x) for x in xs if x), default=None)
    runtime = run.summary.get("_runtime")
    entry = {
        "index": index, "id": run.run_id, "name": run.name, "dir": str(run.run_dir), "project": run.project,
        "state": run.state, "exit_code": run.exit_code, "tags": run.tags, "notes": run.notes,
        "start_time": run.start_time, "runtime_s": runtime if series.is_number(runtime) else None,
        "problems": list(run.problems),
        "step_axis": axis, "last_step": last_step, "history_rows": len(run.history),
        "config": {k: v for k, v in flatten(run.config).items() if k not in ENVIRONMENT_KEYS},
        "environment": environment_of(run),
        "best": best_values(run, curves),
        "artifacts": artifact_rows(run),
        "histograms": series.histograms(run, rows),
        "tables": series.tables(run, rows),
        "other_media": series.other_media(run, rows),
        "trial": None if trial is None else {
            "study": trial.study, "number": trial.number, "state": trial.state, "value": trial.value,
            "params": trial.params,
        },
    }
    return entry, curves


def eval_metric(runs: Sequence[RunLog], curves: Sequence[Mapping[str, Any]],
                sweep_metrics: Mapping[str, tuple[str, str]]) -> dict[str, str] | None:
    """The metric the runs are compared on: the sweep's, else the config's `eval_metric` under `val/`."""
    for name, goal in sweep_metrics.values():
        return {"key": name, "goal": goal}
    logged = {key for c in curves for key in c}
    for run in runs:
        wanted = run.config.get("eval_metric")
        if not wanted:
            continue
        candidates = [f"val/{wanted}", *sorted(k for k in logged if k.endswith(f"/{wanted}"))]
        for key in candidates:
            if key in logged:
                return {"key": key, "goal": goal_of(key, run.metric_definitions)}
    return None


def hyperparameters(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Config keys that differ between runs and set a run up (the sweep's parameters when known)."""
    swept = sorted({p for e in entries if e["trial"] for p in e["trial"]["params"]})
    if swept:
        return swept
    keys = sorted({k for e in entries for k in e["config"]})
    out = []
    for key in keys:
        if key.endswith(_IDENTITY_SUFFIXES) or key in ("seed",):
            continue
        values = [e["config"].get(key) for e in entries]
        distinct = {json.dumps(v, sort_keys=True, default=str) for v in values}
        numeric = all(series.is_number(v) for v in values)
        if len(distinct) > 1 and (numeric or len(distinct) <= 20):
            out.append(key)
    return out


def _config_value(entry: Mapping[str, Any], key: str) -> Any:
    if entry["trial"] and key in entry["trial"]["params"]:
        return entry["trial"]["params"][key]
    return entry["config"].get(key)


def comparison(entries: Sequence[dict[str, Any]], curves: Sequence[Mapping[str, tuple[list[float], list[float]]]],
               metric: Mapping[str, str] | None) -> dict[str, Any]:
    """The comparison table (one row a run: state, steps, best eval metrics, differing hyperparameters) and
    the parallel-coordinates dimensions (hyperparameters against the eval metric)."""
    params = hyperparameters(entries)
    val_keys = sorted({k for c in curves for k in c if k.startswith("val/")}, key=series.key_order)
    columns = ["run", "state", "steps", "runtime_s"]
    if any(e["trial"] for e in entries):
        columns += ["trial", "trial_state"]
    columns += [f"best {k}" for k in val_keys] + params
    rows, metric_values = [], []
    for entry, curve in zip(entries, curves, strict=True):
        row: list[Any] = [entry["name"], entry["state"], entry["last_step"], entry["runtime_s"]]
        if "trial" in columns:
            trial = entry["trial"] or {}
            row += [trial.get("number"), trial.get("state")]
        for key in val_keys:
            found = _best_of(curve, key, goal_of(key))
            row.append(found[0] if found else None)
        row += [_config_value(entry, p) for p in params]
        rows.append(row)
        found = _best_of(curve, metric["key"], metric["goal"]) if metric else None
        metric_values.append(found[0] if found else None)
    return {"columns": columns, "rows": rows, "parallel": _parallel(entries, params[:MAX_SWEEP_AXES], metric,
                                                                     metric_values)}


def _best_of(curves: Mapping[str, tuple[list[float], list[float]]], key: str, goal: str) -> tuple[float, float] | None:
    if key not in curves:
        return None
    xs, ys = curves[key]
    return best_point(xs, ys, goal)


def _parallel(entries: Sequence[Mapping[str, Any]], params: Sequence[str], metric: Mapping[str, str] | None,
              metric_values: Sequence[float | None]) -> dict[str, Any] | None:
    """Plotly `parcoords` dimensions; None with fewer than 2 runs holding the metric or no parameter."""
    keep = [i for i, v in enumerate(metric_values) if v is not None]
    if metric is None or len(keep) < 2 or not params:
        return None
    dims = [_dimension(p, [_config_value(entries[i], p) for i in keep]) for p in params]
    values = [float(metric_values[i]) for i in keep]  # type: ignore[arg-type]
    dims.append({"label": f"best {metric['key']}", "values": values})
    return {"dimensions": dims, "color": values, "runs": keep, "metric": metric["key"], "goal": metric["goal"]}


def _dimension(label: str, values: Sequence[Any]) -> dict[str, Any]:
    """A parcoords axis: numbers as they are (log10 when they span two decades), else categories."""
    if all(series.is_number(v) for v in values):
        nums = [float(v) for v in values]
        if min(nums) > 0 and max(nums) / min(nums) >= 100:
            low, high = math.floor(math.log10(min(nums))), math.ceil(math.log10(max(nums)))
            ticks = list(range(low, high + 1))
            return {"label": f"{label} (log)", "values": [math.log10(v) for v in nums], "tickvals": ticks,
                    "ticktext": [f"1e{t}" for t in ticks]}
        return {"label": label, "values": nums}
    texts = ["—" if v is None else str(v) for v in values]
    categories = sorted(set(texts))
    return {"label": label, "values": [categories.index(t) for t in texts],
            "tickvals": list(range(len(categories))), "ticktext": categories}


def chart_groups(curves: Sequence[Mapping[str, tuple[list[float], list[float]]]],
                 pool: series.ArrayPool) -> list[dict[str, Any]]:
    """One chart per key, every run holding it overlaid: `[{"key", "group", "series": [{"run", "x", "y"}]}]`;
    `x` is a reference into `pool` (keys logged in the same rows share one), `y` an encoded array."""
    keys = sorted({k for c in curves for k in c}, key=series.key_order)
    return [{
        "key": key, "group": series.namespace(key),
        "series": [{"run": i, "x": pool.ref(c[key][0]), "y": series.encode(c[key][1])}
                   for i, c in enumerate(curves) if key in c],
    } for key in keys]


def build_page_data(runs: Sequence[RunLog], *, trials: Mapping[Path, SweepTrial] | None = None,
                    sweep_metrics: Mapping[str, tuple[str, str]] | None = None,
                    title: str | None = None, skipped: Sequence[UnreadableRun] = ()) -> dict[str, Any]:
    """Everything the page draws, JSON-ready (big number arrays base64-encoded, see `series.encode`).

    Args:
        runs: the runs, in the order to show them.
        trials: `{run folder: SweepTrial}` for runs of an offline sweep.
        sweep_metrics: `{study: (metric, goal)}` of those sweeps.
        title: the page title (default: the run's name, or "N runs").
        skipped: run folders left out because wandb cannot read them (the page lists them at its top).

    Returns:
        `{"title", "runs", "curves", "stats", "arrays", "eval_metric", "comparison", "significance", "skipped"}`
        (`significance`: `report.significance.report_section`, None without per-query scores; `arrays`:
        the curves' shared x arrays; each run's `problems` and `skipped` are what the page warns about).
    """
    trials = trials or {}
    entries, curves = [], []
    for i, run in enumerate(runs):
        entry, curve = run_entry(run, i, trials.get(Path(run.run_dir).resolve()))
        entries.append(entry)
        curves.append(curve)
    metric = eval_metric(runs, curves, sweep_metrics or {})
    pool = series.ArrayPool()
    return {
        "title": title or (runs[0].name if len(runs) == 1 else f"{len(runs)} runs"),
        "step_key": series.STEP_KEY,
        "runs": entries,
        "curves": chart_groups(curves, pool),
        "stats": chart_groups([series.stats_series(run) for run in runs], pool),
        "arrays": pool.arrays,
        "eval_metric": metric,
        "comparison": comparison(entries, curves, metric) if len(runs) > 1 else None,
        "significance": report_section([run.run_dir for run in runs], [run.name for run in runs]),
        "skipped": [{"dir": str(s.run_dir), "reason": s.reason} for s in skipped],
    }

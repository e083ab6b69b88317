"""Curves and media out of a run's history: what each history row holds, on which step.

Every metric the callback logs shares the `train/global_step` axis (`define_metric("*",
step_metric="train/global_step")`). wandb's step sync gives a row without that key the last value it
had, and so does `step_axis` here; a run that never logged it is drawn on wandb's own `_step`.
Numbers travel to the page as base64 little-endian float64 (NaN kept, 8 bytes a point instead of ~18
characters of JSON), or int32 where every value is a whole number that fits (steps: 4 bytes a point).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hf_search_wandb.report.reader import RunLog, finite
from hf_search_wandb.tracking.log_keys import STEP_KEY

#: Namespaces drawn first, in this order; any other prefix (another evaluator's) follows by name.
NAMESPACES = ("train", "val", "system")
#: wandb media `_type`s read as tables (their JSON file under `files/`).
TABLE_TYPES = frozenset({"table-file", "table"})


def encode(values: Iterable[float]) -> dict[str, Any]:
    """`{"f8": base64 of little-endian float64, "n": length}`, or `{"i4": ..., "n"}` (little-endian int32)
    when every value is a whole number within int32's range; the page decodes either to a Float64Array.

    Example:
        >>> encode([1.0, 2.5]), encode([1, 2])
        ({'f8': 'AAAAAAAA8D8AAAAAAAAEQA==', 'n': 2}, {'i4': 'AQAAAAIAAAA=', 'n': 2})
    """
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype="<f8")
    whole = np.isfinite(array).all() and (array == np.round(array)).all() and (np.abs(array) < 2**31).all()
    if array.size and whole:
        return {"i4": base64.b64encode(array.astype("<i4").tobytes()).decode("ascii"), "n": int(array.size)}
    return {"f8": base64.b64encode(array.tobytes()).decode("ascii"), "n": int(array.size)}


class ArrayPool:
    """Encoded arrays shared by reference: a run's keys logged in the same rows have the same x values,
    which the page then holds once (`{"ref": k}` points into `arrays`).

    Example:
        >>> pool = ArrayPool()
        >>> pool.ref([1, 2]), pool.ref([1, 2]), pool.ref([1, 3]), len(pool.arrays)
        ({'ref': 0}, {'ref': 0}, {'ref': 1}, 2)
    """

    def __init__(self) -> None:
        self.arrays: list[dict[str, Any]] = []
        self._index: dict[bytes, int] = {}

    def ref(self, values: Iterable[float]) -> dict[str, int]:
        array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype="<f8")
        key = array.tobytes()
        if key not in self._index:
            self._index[key] = len(self.arrays)
            self.arrays.append(encode(array))
        return {"ref": self._index[key]}


def is_number(value: Any) -> bool:
    """True for int / float values (bools are flags, not curves)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def media_keys(row: dict[str, Any]) -> dict[str, str]:
    """`{key: wandb media type}` of the media a history row holds (`key._type` entries)."""
    return {k[: -len("._type")]: str(v) for k, v in row.items() if k.endswith("._type")}


@dataclass(frozen=True)
class Rows:
    """One pass over a run's history: each row's x value, the axis name, and each row's media
    (`media_keys`), so the curves, histograms and tables do not each scan every key of every row again."""

    xs: list[float]
    axis: str
    media: list[dict[str, str]]


def rows_of(run: RunLog) -> Rows:
    """`Rows` of `run` (x values from `step_axis`; a row's media only where it has some)."""
    xs, axis = step_axis(run)
    media = [media_keys(row) if any(k.endswith("._type") for k in row) else {} for row in run.history]
    return Rows(xs, axis, media)


def step_axis(run: RunLog) -> tuple[list[float], str]:
    """The x value of each history row and the axis name (`train/global_step`, else `_step`)."""
    if any(STEP_KEY in row for row in run.history):
        out, last = [], 0.0
        for row in run.history:
            value = row.get(STEP_KEY)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                last = float(value)
            out.append(last)
        return out, STEP_KEY
    return [float(row.get("_step", i)) for i, row in enumerate(run.history)], "_step"


def namespace(key: str) -> str:
    """The part before the first `/` (`val/mrr@10` -> `val`), `other` without one."""
    head, sep, _ = key.partition("/")
    return head if sep else "other"


def key_order(key: str) -> tuple[int, str, str]:
    """Sort key: train/, val/, system/ first, then other namespaces by name."""
    space = namespace(key)
    rank = NAMESPACES.index(space) if space in NAMESPACES else len(NAMESPACES)
    return rank, space, key


def scalar_series(run: RunLog, rows: Rows | None = None) -> dict[str, tuple[list[float], list[float]]]:
    """`{key: (x, y)}` for every numeric history key except wandb's `_` keys, media fields and the axis."""
    rows = rows or rows_of(run)
    out: dict[str, tuple[list[float], list[float]]] = {}
    for x, row, media in zip(rows.xs, run.history, rows.media, strict=True):
        for key, value in row.items():
            if key.startswith("_") or key == STEP_KEY or not is_number(value):
                continue
            if media and "." in key and key.rsplit(".", 1)[0] in media:
                continue
            series = out.setdefault(key, ([], []))
            series[0].append(x)
            series[1].append(float(value))
    return out


def stats_series(run: RunLog) -> dict[str, tuple[list[float], list[float]]]:
    """wandb's own system metrics: `{key: (seconds since start, values)}`."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for elapsed, item in run.stats:
        for key, value in item.items():
            if is_number(value):
                series = out.setdefault(key, ([], []))
                series[0].append(elapsed)
                series[1].append(float(value))
    return out


def histograms(run: RunLog, rows: Rows | None = None) -> dict[str, list[dict[str, Any]]]:
    """`{key: [{"step", "bins", "values"}, ...]}`: each logged `wandb.Histogram`, in log order."""
    rows = rows or rows_of(run)
    out: dict[str, list[dict[str, Any]]] = {}
    for x, row, media in zip(rows.xs, run.history, rows.media, strict=True):
        for key, kind in media.items():
            if kind != "histogram":
                continue
            bins, values = row.get(f"{key}.bins"), row.get(f"{key}.values")
            if isinstance(bins, list) and isinstance(values, list):
                out.setdefault(key, []).append({"step": x, "bins": [finite_or_nan(b) for b in bins],
                                                "values": [finite_or_nan(v) for v in values]})
    return out


def tables(run: RunLog, rows: Rows | None = None) -> dict[str, list[dict[str, Any]]]:
    """`{key: [{"step", "columns", "rows", "path"} | {"step", "missing", "path"}, ...]}` per logged table."""
    rows = rows or rows_of(run)
    out: dict[str, list[dict[str, Any]]] = {}
    for x, row, media in zip(rows.xs, run.history, rows.media, strict=True):
        for key, kind in media.items():
            if kind not in TABLE_TYPES:
                continue
            path = str(row.get(f"{key}.path", ""))
            content = run.media_json(path) if path else None
            entry: dict[str, Any] = {"step": x, "path": path}
            if content is None or not isinstance(content.get("columns"), list):
                entry["missing"] = f"files/{path} is missing or not a wandb table"
            else:
                entry["columns"] = [str(c) for c in content["columns"]]
                entry["rows"] = [[jsonable(v) for v in r] for r in content.get("data") or []]
            out.setdefault(key, []).append(entry)
    return out


def other_media(run: RunLog, rows: Rows | None = None) -> dict[str, dict[str, Any]]:
    """Media the page does not draw (images, audio, ...): `{key: {"type", "count"}}`, so the page can say so."""
    rows = rows or rows_of(run)
    out: dict[str, dict[str, Any]] = {}
    for media in rows.media:
        for key, kind in media.items():
            if kind == "histogram" or kind in TABLE_TYPES:
                continue
            entry = out.setdefault(key, {"type": kind, "count": 0})
            entry["count"] += 1
    return out


def finite_or_nan(value: Any) -> float:
    """A number (or wandb's `"Infinity"`-style spelling of one) as float, anything else as NaN."""
    value = finite(value)
    return float(value) if is_number(value) else math.nan


def jsonable(value: Any) -> Any:
    """A table cell the page can show: non-finite floats as their wandb spelling, nested values as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)[:2000]
    return value

"""Per-query scores kept in the run: one small `.npz` per evaluation under the run's `files/per_query/`.

Each evaluation the callback logs writes `files/per_query/{namespace}/step-{step:09d}.npz` into the wandb run
folder (wandb uploads the `files/` folder with the run, `wandb sync` too), so any two evaluations, of one run or
of two, can be compared later (`hf-search-wandb compare`, the report) without the model or the data.

A file holds the query ids, one float64 array per measure (NaN where a query was skipped: no relevant
document) and a JSON header (namespace, step, primary measure, the measures left out). The primary measure is
always kept; the others are added in the evaluator's order while the values stay within `BUDGET_BYTES`
(8 bytes a query a measure; the ids come on top): 256 KiB keeps every default measure up to 6,500 queries and
the primary alone up to any size. Files are written beside and renamed into place (atomic).

This module imports numpy only (no wandb): the files are plain files in the run folder.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Folder under the run's `files/` that holds the per-query files.
PER_QUERY_DIR = "per_query"
#: Bytes of per-query values kept per evaluation beyond the primary measure (which is always kept).
BUDGET_BYTES = 256 * 1024
FORMAT_VERSION = 1


@dataclass
class QueryScores:
    """One evaluation's per-query values.

    Attributes:
        namespace: where its metrics were logged (`val`, `test`, an evaluator's name).
        step: the training step it was logged at.
        primary: the measure always kept (the callback's `eval_metric`, else the evaluator's primary).
        query_ids: the evaluated queries, in order.
        values: `{measure: float64 array, one value per query}` (NaN: the query was skipped).
        dropped: measures the evaluation computed but left out to stay within the byte budget.
        path: the file it was read from or written to (None before).
    """

    namespace: str
    step: int
    primary: str
    query_ids: list[str]
    values: dict[str, np.ndarray]
    dropped: list[str] = field(default_factory=list)
    path: Path | None = None

    def mean(self, metric: str) -> float:
        """The mean over the queries with a value (what the run logged as `{namespace}/{metric}`)."""
        values = self.values[metric]
        finite = values[np.isfinite(values)]
        return float(finite.mean()) if finite.size else float("nan")

    @property
    def label(self) -> str:
        """`val@step 120`: how tables and messages name this evaluation."""
        return f"{self.namespace}@step {self.step}"


def select(
    query_ids: Sequence[str],
    per_query: Mapping[str, np.ndarray],
    *,
    namespace: str,
    step: int,
    primary: str,
    budget_bytes: int = BUDGET_BYTES,
) -> QueryScores:
    """The measures to keep of one evaluation: `primary` always, then the others in order within the budget.

    Example:
        >>> s = select(["q1", "q2"], {"mrr@10": np.array([1.0, 0.5]), "ndcg@10": np.array([1.0, 0.6])},
        ...            namespace="val", step=0, primary="ndcg@10", budget_bytes=8)
        >>> list(s.values), s.dropped
        (['ndcg@10'], ['mrr@10'])
    """
    if primary not in per_query:
        raise KeyError(
            f"the primary measure {primary!r} has no per-query values (the evaluation holds "
            f"{', '.join(per_query) or 'none'})"
        )
    values = {primary: np.asarray(per_query[primary], dtype=np.float64)}
    dropped: list[str] = []
    used = 0
    for metric, array in per_query.items():
        if metric == primary:
            continue
        size = 8 * len(query_ids)
        if used + size > budget_bytes:
            dropped.append(metric)
            continue
        values[metric] = np.asarray(array, dtype=np.float64)
        used += size
    for metric, array in values.items():
        if array.shape != (len(query_ids),):
            raise ValueError(f"{metric}: {array.shape} per-query values for {len(query_ids)} queries")
    return QueryScores(namespace, int(step), primary, list(query_ids), values, dropped)


def relative_path(namespace: str, step: int) -> str:
    """`per_query/{namespace}/step-{step:09d}.npz` (the order of names is the order of steps; a namespace with
    a slash, `test/nfcorpus`, is a nested folder).

    Example:
        >>> relative_path("val", 120)
        'per_query/val/step-000000120.npz'
    """
    return f"{PER_QUERY_DIR}/{namespace}/step-{int(step):09d}.npz"


def write_scores(files_dir: str | os.PathLike[str], scores: QueryScores) -> Path:
    """Write `scores` under the run's files folder (beside, then renamed into place); returns the file."""
    target = Path(files_dir) / relative_path(scores.namespace, scores.step)
    target.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "format": FORMAT_VERSION,
        "namespace": scores.namespace,
        "step": scores.step,
        "primary": scores.primary,
        "measures": list(scores.values),
        "dropped": scores.dropped,
    }
    arrays: dict[str, Any] = {f"m{i}": values for i, values in enumerate(scores.values.values())}
    fd, tmp = tempfile.mkstemp(prefix=".per_query-", suffix=".npz", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(
                handle,
                header=np.array(json.dumps(header)),
                query_ids=np.array(scores.query_ids, dtype=np.str_),
                **arrays,
            )
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep the file from whoever reads the run folder
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    scores.path = target
    return target


def read_file(path: str | os.PathLike[str]) -> QueryScores:
    """One per-query file.

    Raises:
        ValueError: the file is not a per-query file this version can read (the message names it).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            query_ids = [str(q) for q in data["query_ids"].tolist()]
            values = {
                m: np.asarray(data[f"m{i}"], dtype=np.float64) for i, m in enumerate(header["measures"])
            }
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a per-query scores file ({type(err).__name__}: {err})") from err
    if header.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: per-query format {header.get('format')!r}, this version reads {FORMAT_VERSION}"
        )
    return QueryScores(
        str(header["namespace"]),
        int(header["step"]),
        str(header["primary"]),
        query_ids,
        values,
        list(header.get("dropped") or []),
        path,
    )


def run_files_dir(run_dir: str | os.PathLike[str]) -> Path:
    """The `files/` folder of a wandb run folder (`wandb/offline-run-.../files`); a `files/` folder as is."""
    path = Path(run_dir)
    return path if path.name == "files" else path / "files"


def read_scores(run_dir: str | os.PathLike[str], namespace: str | None = None) -> list[QueryScores]:
    """Every evaluation kept in a run folder (or its `files/`), by namespace then step; unreadable files are
    skipped (a run killed while writing leaves only whole files: they are renamed into place)."""
    root = run_files_dir(run_dir) / PER_QUERY_DIR
    out = []
    for path in sorted(root.glob("**/step-*.npz")):
        try:
            scores = read_file(path)
        except ValueError:
            continue
        if namespace is None or scores.namespace == namespace:
            out.append(scores)
    return sorted(out, key=lambda s: (s.namespace, s.step))

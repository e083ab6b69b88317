"""`TrackedRun`: the one owner of a wandb run, from `wandb.init` to `finish` (or a failed or preempted end).

Everything the training writes to wandb goes through it: it starts (or reuses) the run, puts every metric on
the one step axis (`log_keys.STEP_KEY`) with its summary goal, logs rows through the `BackgroundLogger` and
skips what a resumed run already holds, keeps the summary, logs tables and histograms (`tables.py`,
`reranking_tables.py`) and artifacts (`artifacts.py`), and ends the run: finished, failed (exit code 1) or
preempted (exit code 128 + signal). Every call that can wait on wandb first drains the queued rows, so the
order of records is the order of calls.

What is logged, and when, is decided by the caller (`trainer/callback.py`); this module never imports the
trainer layer, and imports wandb only when a run starts (`wandb_api.require_wandb`).

Example (offline, no server):

    >>> import tempfile
    >>> from hf_search_wandb.tracking.run_options import RunSettings
    >>> run = TrackedRun.start(RunSettings(project="doc", name="doc-run", tags=[]), mode="offline", config={"seed": 1},
    ...                        directory=tempfile.mkdtemp())
    >>> run.log({"train/loss": 0.5}, step=1)
    >>> run.update_summary({"best/step": 1})
    >>> run.finish()
    >>> run.last_logged, run.is_open
    (1, False)
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_search_wandb.core.evaluation.results import RerankingResult
from hf_search_wandb.tracking import artifacts, reranking_tables, tables  # looked up per call: patchable
from hf_search_wandb.tracking.background_logger import BackgroundLogger
from hf_search_wandb.tracking.disk_space import (
    DroppedWrites,
    describe,
    disk_error,
    folder_size,
    human_size,
    low_on_space,
)
from hf_search_wandb.tracking.log_keys import STEP_KEY, is_system, summary_goal
from hf_search_wandb.tracking.row_watch import RowWatch
from hf_search_wandb.tracking.run_history import LoggedRows
from hf_search_wandb.tracking.run_setup import init_run
from hf_search_wandb.tracking.wandb_api import require_wandb

if TYPE_CHECKING:
    from hf_search_wandb.tracking.run_options import RunSettings

logger = logging.getLogger(__name__)

# A SIGKILL loses at most the rows of the last ~1 s: the background queue waits at most this long, and
# wandb's service writes its transaction log this often (its default is 15 s).
FLUSH_SECONDS = 0.5
#: The summary key that says how many rows of the run's session could not be written to its folder.
ROWS_NOT_WRITTEN_KEY = "system/rows_not_written"
#: The summary key that names what the run stopped logging (tables, artifacts) and the folder that was full.
DROPPED_KEY = "system/not_logged"


def _warn(message: str) -> None:
    logger.warning("hf_search_wandb: %s", message)


def current_run_id() -> str | None:
    """The id of the wandb run active in this process (one the user started, say), or None; never imports
    wandb (no run can be active if it was never imported).

    Example:
        >>> current_run_id() is None or isinstance(current_run_id(), str)
        True
    """
    running = getattr(sys.modules.get("wandb"), "run", None)
    return getattr(running, "id", None)


def close_superseded(run: Any, project: str, say: Callable[[str], Any] = _warn) -> None:
    """Close `run`, which transformers' `WandbCallback` started in the wrong project before the callback
    could take over (its project cannot change once started), so the callback's own run replaces it.

    Offline, its folder is removed (nothing of it is left to `wandb sync`); online, the empty run stays on the
    server, tagged `superseded`, and the message says how to avoid it.
    """
    folder = Path(run.dir).parent if getattr(run, "dir", None) else None
    offline = bool(getattr(run, "offline", False))
    where = f"run {run.id} in project {run.project!r}"
    with contextlib.suppress(Exception):  # best effort: the run is closed either way
        run.tags = (*(run.tags or ()), "superseded")
        run.notes = f"superseded by hf_search_wandb's run in project {project!r}"
    run.finish()
    if offline and folder is not None and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    say(
        f"transformers' WandbCallback (report_to=wandb) had started {where} before this callback took over: "
        f"{'removed it' if offline else 'closed it empty (tagged superseded)'}; logging to project {project!r}. "
        "To avoid it, pass report_to='none', or give the callback in callbacks=[...] or with "
        "SearchWandbCallback.attach(trainer)"
    )


class TrackedRun:
    """One wandb run and everything written to it. Build it with `TrackedRun.start`.

    Attributes:
        wandb_run: the `wandb.Run` (for reading: id, name, config; write through this object).
        created: True when this object ends the run on `finish` (it started it, or took over an automatic
            one); a run the user started before is left open.
        reused: True when `start` found an active run and reused it instead of starting one.
        held: what the run already held when it started (a resumed run): rows up to it are not logged again.
        run_dir: the run's folder on disk (what `wandb sync` takes offline), kept after the run ends.
        last_logged: the last step a row was logged at (-1 before any).
        summary: every summary value set through `update_summary`, in order.
    """

    def __init__(
        self,
        wandb_run: Any,
        *,
        created: bool = True,
        reused: bool = False,
        held: LoggedRows | None = None,
        background: bool = True,
        flush_seconds: float = FLUSH_SECONDS,
        say: Callable[[str], Any] = _warn,
    ) -> None:
        self.wandb_run = wandb_run
        self.created = created
        self.reused = reused
        self.held = held if held is not None else LoggedRows()
        self.run_dir = Path(wandb_run.dir).parent if getattr(wandb_run, "dir", None) else None
        self.last_logged = -1
        self.summary: dict[str, Any] = {}
        self.is_open = True
        self._keys_at_last: set[str] = set()
        self._defined: set[str] = set()
        self._watching = False
        self._say = say
        self._bg = BackgroundLogger(wandb_run, max_lag=flush_seconds) if background else None
        # disk faults: what is no longer written, and whether wandb's service still writes the rows
        self.dropped = DroppedWrites(say)
        self.rows = RowWatch(self.run_dir, step_key=STEP_KEY, grace=max(30.0, 20 * flush_seconds))
        self.rows_not_written: int | None = 0

    @classmethod
    def start(
        cls,
        settings: RunSettings,
        *,
        mode: str,
        config: dict[str, Any],
        directory: str | None = None,
        resume_id: str | None = None,
        held: LoggedRows | None = None,
        user_run_id: str | None = None,
        adopted: bool = False,
        background: bool = True,
        flush_seconds: float = FLUSH_SECONDS,
        say: Callable[[str], Any] = _warn,
    ) -> TrackedRun:
        """Start the run (`run_setup.init_run`: bounded, offline when the server fails), or reuse the active one,
        and put every metric on the step axis.

        Args:
            settings: project, name, tags, ... (`run_options.resolve_run_settings`).
            mode: `online` or `offline` (`wandb_api.resolve_mode`).
            config: the run config (`run_setup.collect_config`).
            directory: where wandb writes the run (default `WANDB_DIR`).
            resume_id: continue this run (`resume="allow"`) unless a run is already active.
            held: what the resumed run already holds (`run_history.read_logged_rows`).
            user_run_id: the run the user had started before (never finished by this object).
            adopted: the active run was started by another integration (transformers' `WandbCallback`,
                from `report_to`) during this `train()`, not by the user: it takes our name, and when it
                went to another project than `settings.project` it is closed (`close_superseded`) and
                ours starts instead, so the precedence rule holds whoever started first.
            background: log rows from a worker thread (`BackgroundLogger`), else in the caller's thread.
            flush_seconds: how often wandb writes the run to disk, and the longest a queued row waits.
            say: where warnings go.
        """
        wandb = require_wandb()
        if adopted and wandb.run is not None and wandb.run.project != settings.project:
            close_superseded(wandb.run, settings.project, say)
        reused = wandb.run is not None
        run, created = init_run(
            wandb, settings, mode=mode, run_config=config, directory=directory,
            run_id=resume_id if not reused else None, flush_seconds=flush_seconds, rename=adopted,
        )  # fmt: skip
        tracked = cls(
            run, created=created or run.id != user_run_id, reused=reused, held=held, background=background,
            flush_seconds=flush_seconds, say=say,
        )  # fmt: skip
        run.define_metric(STEP_KEY)
        run.define_metric("*", step_metric=STEP_KEY, step_sync=True)
        return tracked

    # ------------------------------------------------------------------ who the run is
    @property
    def id(self) -> str:
        return str(self.wandb_run.id)

    @property
    def name(self) -> str:
        return str(self.wandb_run.name)

    def resume_record(self, global_step: int) -> dict[str, Any]:
        """What a checkpoint records to find this run again (`trainer/resume.py` writes it beside it)."""
        run = self.wandb_run
        return {
            "run_id": run.id,
            "project": run.project,
            "entity": getattr(run, "entity", None),
            "name": run.name,
            "global_step": global_step,
            "last_logged_step": self.last_logged,
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
        }

    # ------------------------------------------------------------------ metrics and rows
    def define(self, key: str) -> None:
        """Give `key` its summary goal (`log_keys.summary_goal`: max, min or last) on the step axis, once."""
        if key in self._defined:
            return
        self._defined.add(key)
        self.wandb_run.define_metric(key, step_metric=STEP_KEY, summary=summary_goal(key))

    def define_all(self, keys: Iterable[str]) -> None:
        """`define` every key but the `system/` ones (timings: no summary goal)."""
        for key in keys:
            if not is_system(key):
                self.define(key)

    def watch(self, model: Any, what: str, every: int) -> None:
        """`wandb.watch` the model's gradients / parameters / all every `every` steps; `what="false"`: not."""
        if what == "false":
            return
        self._watching = True
        if model is not None:
            self.wandb_run.watch(model, log=what, log_freq=max(1, every))

    def log(self, row: dict[str, Any], step: int) -> None:
        """Log `row` at `step` (added as `STEP_KEY`), less what the run already holds; queued when logging in
        the background."""
        if not self.is_open or not row:
            return
        row = self.held.new_part(row, step)
        if not row:
            return
        row[STEP_KEY] = step
        if self._bg is not None:
            self._bg.log(row)
        else:
            self.wandb_run.log(row)
        self._rows_fault(self.rows.note(step))
        if step > self.last_logged:
            self.last_logged, self._keys_at_last = step, set(row)
        elif step == self.last_logged:
            self._keys_at_last.update(row)

    def flush(self, *, stop: bool = False) -> None:
        """Wait until every queued row reached wandb; `stop=True` also ends the worker thread (rows logged
        after it go straight to wandb)."""
        if self._bg is not None:
            if stop:
                self._bg.close()
                self._bg = None
            else:
                self._bg.flush()
        self._rows_fault(self.rows.check())

    def _rows_fault(self, message: str | None) -> None:
        """wandb's service cannot write the run folder: say so at once, and drop the tables and artifacts
        that would take the space the rows need."""
        if message is None or self.run_dir is None:
            return
        self._say(message)
        self.dropped.drop(("media", "artifacts"), self.run_dir, str(self.rows.fault))

    def hold_logged(self) -> None:
        """Count what this run logged so far as held: a retried training (`auto_find_batch_size` after an
        out-of-memory error) logs into the same run from its first step again, and only new rows go out."""
        self.flush()
        self.held = self.held.merged(LoggedRows(self.last_logged, frozenset(self._keys_at_last)))

    def update_summary(self, values: Mapping[str, Any]) -> None:
        """Set summary values (end-of-training figures, `best/...`)."""
        for key, value in values.items():
            self.wandb_run.summary[key] = value
            self.summary[key] = value

    # ------------------------------------------------------------------ media and artifacts
    def log_media(
        self,
        result: Any,
        evaluator: Any,
        *,
        step: int,
        namespace: str = "",
        num_examples: int = 20,
        k: int = 5,
        error_k: int = 10,
        histograms: bool = True,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Tables and histograms of a kept evaluation result at `step`, under `namespace`: reranking tables for
        a `RerankingResult`, retrieval tables otherwise. Nothing for a step the run already holds."""
        if not self.is_open or step <= self.held.last_step:
            return {}
        self.flush()
        if self.run_dir is not None and self.dropped.allows("media") and low_on_space(self.run_dir):
            self.dropped.drop(("media", "artifacts"), self.run_dir, "the disk is (almost) full")
        if not self.dropped.allows("media"):
            return {}
        log_media: Callable[..., dict[str, Any]] = (
            reranking_tables.log_reranking_media if isinstance(result, RerankingResult) else tables.log_evaluation_media
        )
        try:
            return log_media(
                self.wandb_run, result, evaluator, step=step, num_examples=num_examples, k=k, error_k=error_k,
                histograms=histograms, seed=seed, namespace=namespace,
            )  # fmt: skip
        except Exception as err:
            self._disk_fault(err, ("media", "artifacts"), self.run_dir)
            return {}

    def _disk_fault(
        self, err: BaseException, what: tuple[str, ...], folder: Path | None, then: str = ""
    ) -> None:
        """`err` from writing `what` into `folder`: a full, read-only or over-quota folder drops `what` for the
        rest of the run (one warning naming the folder and its free space); any other error is raised."""
        fault = disk_error(err)
        if fault is None:
            raise err
        written = fault.filename2 or fault.filename
        place = folder
        if written is not None and (folder is None or not Path(str(written)).is_relative_to(folder)):
            place = Path(str(written)).parent
        reason = fault.strerror or str(fault)
        self.dropped.drop(what, place if place is not None else ".", reason, then)
        if place is not None and self.run_dir is not None and place == self.run_dir:
            self._rows_fault(self.rows.suspect(f"writing a file there failed: {reason}"))

    def log_model(
        self,
        directory: str | Path,
        *,
        metadata: Mapping[str, Any],
        description: str,
        aliases: Sequence[str] = ("best", "latest"),
    ) -> Any:
        """A saved model directory as a new version of `search-model-{run.id}` (`artifacts.log_model_artifact`);
        None when artifacts are dropped (a full, read-only or over-quota staging or run folder)."""
        self.flush()
        then = f"the model stays in {directory}"
        if not self._artifacts_fit(folder_size(directory), then):
            return None
        try:
            return artifacts.log_model_artifact(
                self.wandb_run, directory, metadata=metadata, description=description, aliases=aliases
            )
        except Exception as err:
            self._disk_fault(err, ("artifacts",), artifacts.staging_dir(), then)
            return None

    def log_dataset(self, *, dataset_name: str, train: Any, val: Any, metadata: Mapping[str, Any]) -> Any:
        """The training data as `training-data-{dataset_name}` (`artifacts.log_dataset_artifact`); None when
        artifacts are dropped."""
        if not self._artifacts_fit(0):
            return None
        try:
            return artifacts.log_dataset_artifact(
                self.wandb_run, dataset_name=dataset_name, train=train, val=val, metadata=metadata
            )
        except Exception as err:
            self._disk_fault(err, ("artifacts",), artifacts.staging_dir())
            return None

    def _artifacts_fit(self, size: int, then: str = "") -> bool:
        """True when artifacts are still logged and `size` bytes fit in wandb's staging folder (else they are
        dropped, said once)."""
        if not self.dropped.allows("artifacts"):
            return False
        staging = artifacts.staging_dir()
        if low_on_space(staging, size):
            self.dropped.drop(("artifacts",), staging, f"{human_size(size)} are needed", then)
            return False
        return True

    # ------------------------------------------------------------------ the end
    def finish(self) -> None:
        """Drain the rows, stop watching, and finish the run if this object owns it (idempotent).

        When wandb could not write some rows to the run folder (`RowWatch`), the run is finished as failed
        (exit code 1) with `system/rows_not_written` in its summary, and the last line said is
        "N rows could not be written to ...": a run is never left looking complete when it is not."""
        if not self.is_open:
            return
        self.is_open = False
        run = self.wandb_run
        self.flush(stop=True)
        lost = self._count_lost(wait=True)
        with contextlib.suppress(Exception):  # the run's own record of what it lacks, where it can be written
            if lost:
                self.update_summary({ROWS_NOT_WRITTEN_KEY: lost})
            if self.dropped.dropped:
                lacks = "; ".join(f"{what}: {where}" for what, where in self.dropped.dropped.items())
                self.update_summary({DROPPED_KEY: lacks})
        if self._watching:
            with contextlib.suppress(Exception):
                run.unwatch()
        if self.created and not getattr(run, "_is_finished", False):
            if lost:
                run.finish(exit_code=1)
            else:
                run.finish()
        self._report_lost(lost)

    def _count_lost(self, *, wait: bool) -> int | None:
        """Rows of this session its folder does not hold (0 when no fault was seen; None: unknown), after
        giving wandb's service `wait`-ing time to write what it was handed."""
        if self.rows.fault is None:
            self.rows.check()
        if self.rows.fault is None:
            return 0
        if wait:
            time.sleep(2 * FLUSH_SECONDS + 0.5)
        self.rows_not_written = self.rows.count_lost()
        return self.rows_not_written if self.rows_not_written is not None else self.rows.handed

    def _report_lost(self, lost: int | None) -> None:
        """The run's last line when rows are missing (recounted once the service closed the file)."""
        if self.rows.fault is None or self.run_dir is None:
            return
        recount = self.rows.count_lost()
        lost = recount if recount is not None else lost
        self.rows_not_written = lost
        if not lost:
            self._say(f"{describe(self.run_dir)} ran out of space ({self.rows.fault}); every row was written")
            return
        self._say(
            f"{lost} rows could not be written to {describe(self.run_dir)} ({self.rows.fault}): of the "
            f"{self.rows.handed} rows logged in this session, those from step {self.rows.fault_step} on may be "
            f"missing; the run there is incomplete"
        )

    def fail(self) -> None:
        """Keep every row logged so far and finish the run as failed (exit code 1), whoever started it.

        Never raises: the training's own exception is what the user must see."""
        if not self.is_open:
            return
        self.is_open = False
        lost: int | None = 0
        try:
            self.flush(stop=True)
            lost = self._count_lost(wait=False)
        except Exception as err:
            self._say(f"could not flush the run before marking it failed: {err!r}")
        finally:
            try:
                self.wandb_run.finish(exit_code=1)
            except Exception as err:
                self._say(f"could not finish wandb run {self.id} as failed: {err!r}")
        with contextlib.suppress(Exception):
            self._report_lost(lost)

    def preempted(self, signum: int) -> None:
        """The process dies of signal `signum`: mark the run preempting and finish it with exit code 128 +
        signal (the rows should be flushed first, `flush(stop=True)`). Never raises."""
        if not self.is_open:
            return
        self.is_open = False
        with contextlib.suppress(Exception):  # the caller flushed and reported; the run must still end
            self.flush(stop=True)
        try:
            self.wandb_run.mark_preempting()
            self.wandb_run.finish(exit_code=128 + signum)
        except Exception as err:
            self._say(f"could not finish wandb run {self.id} on signal {signum}: {err!r}")
        if self.rows.fault is not None and self.run_dir is not None:  # no time to count: the process is going
            self._say(f"rows from step {self.rows.fault_step} on may not be written to {describe(self.run_dir)} "
                      f"({self.rows.fault})")  # fmt: skip

"""The offline sweep engine: the same wandb sweep YAML run by Optuna, no W&B server needed.

wandb cannot run sweeps offline (its controller lives on the server), so `run_local_sweep` maps the
config onto Optuna: `bayes` -> `TPESampler`, `random` -> `RandomSampler`, `grid` -> `GridSampler`,
`early_terminate: hyperband` -> `HyperbandPruner` (`min_iter` -> `min_resource`, `max_iter` ->
`max_resource`, `eta` -> `reduction_factor`). The study lives in a database: by default SQLite in the
output directory (`sqlite:///{output_dir}/sweep.db`); any URL Optuna supports (PostgreSQL, MySQL, or
SQLite on a shared disk) lets agents on many machines work on one sweep. Every trial is committed
when it ends, so a killed agent loses no finished trial, and starting an agent again continues the
sweep (`load_if_exists`).

`count` holds across all agents, and is reached exactly even when agents die. Running trials send a
heartbeat to the database every `grace_period / 3` seconds (Optuna's `heartbeat_interval`); a trial
whose agent was killed (SIGKILL, a machine lost) stops beating and, `grace_period` seconds later, the
next agent that looks fails it (Optuna's `fail_stale_trials`) and Optuna's
`RetryHeartbeatStaleTrialCallback` queues a copy with the same parameters, which the first free agent
runs. An agent starts a new trial only while fewer than `count` trials hold a slot (running, queued or
ended; a stale trial hands its slot to its retry) and re-checks after Optuna numbered its trial; a trial
that lost that race is closed unrun (state FAIL, user attribute `skipped`) and does not count. An agent
with nothing left to start waits while other agents' trials run, so that it can take over a trial whose
agent dies, and returns once every slot is finished.

Random and bayes never draw a parameter set the sweep already holds (`distinct.py`: trial `n` is seeded by
`(seed, n)`; two agents drawing one set at the same instant are caught here, after the draw). The database may
go away for up to `db_retry` seconds (`retrying_storage.py`); past that the agent stops with
`SweepDatabaseUnreachable`. Failed trials count toward `count`; `LocalSweepResult.count_used_by_failures`
says when they used it up.

Why over 400 lines: the engine's run loop, the mapping of wandb's methods and hyperband onto Optuna,
heartbeats and retries, and the result object are one flow; slot counting is in `trial_slots.py`, sampling
in `search_space.py` and `distinct.py`, the database in `database.py` and `retrying_storage.py`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hf_search_wandb.sweeps import trial_slots
from hf_search_wandb.sweeps.config import SweepConfig, SweepConfigError, load_sweep_config
from hf_search_wandb.sweeps.database import SweepDatabaseUnreachable
from hf_search_wandb.sweeps.pruning import OptunaPruningCallback, SweepMetricMissingError, metric_value
from hf_search_wandb.sweeps.search_space import SearchSpaceUsedUp, params_key, suggest
from hf_search_wandb.sweeps.training import Program
from hf_search_wandb.tracking.run_options import sweep_destination

logger = logging.getLogger(__name__)

#: Distributions the local engine samples (normal, log_normal, beta and their q_ forms need the wandb server).
LOCAL_DISTRIBUTIONS = frozenset({
    "constant", "categorical", "categorical_w_probabilities", "int_uniform", "uniform", "q_uniform",
    "log_uniform", "log_uniform_values", "q_log_uniform", "q_log_uniform_values", "inv_log_uniform",
    "inv_log_uniform_values",
})
SKIPPED_ATTR = trial_slots.SKIPPED_ATTR
ERROR_ATTR = "error"
CONFIG_ATTR = "sweep_config"


class TrialsKeepFailing(RuntimeError):
    """`max_consecutive_failures` trials of this agent failed in a row; `__cause__` is the last one's error."""


def require_optuna() -> Any:
    """The `optuna` module, or an ImportError that says how to install it."""
    try:
        import optuna
    except ImportError as err:
        raise ImportError("The offline sweep engine needs Optuna: pip install 'hf-search-wandb[sweeps]' "
                          "(or pip install optuna).") from err
    return optuna


@dataclass
class LocalSweepResult:
    """What a local agent leaves behind.

    Attributes:
        study_name: the Optuna study (= the wandb group of the trial runs).
        storage: the database URL.
        trials: every trial of the study (all agents), oldest first.
        ran: trials this agent trained.
        best_value / best_params: the best completed trial so far (None if none completed).
        count: the sweep's `count` (0 when unknown).
    """

    study_name: str
    storage: str
    trials: list[Any]
    ran: int
    best_value: float | None
    best_params: dict[str, Any] | None
    count: int = 0

    def states(self) -> dict[str, int]:
        """Number of trials per state (`COMPLETE`, `PRUNED`, `FAIL`, ...), skipped trials left out."""
        out: dict[str, int] = {}
        for trial in self.trials:
            if not trial.user_attrs.get(SKIPPED_ATTR):
                out[trial.state.name] = out.get(trial.state.name, 0) + 1
        return out

    def count_used_by_failures(self) -> str | None:
        """When failed trials used up slots of `count`: what happened and how to go on; else None.

        Failed trials count toward `count` (as in wandb, whose `run_cap` counts failed runs): a sweep whose
        program fails cannot train forever. This message says so instead of an empty result.

        Example:
            >>> LocalSweepResult("s", "sqlite://", [], 0, None, None, count=4).count_used_by_failures() is None
            True
        """
        counted = [t for t in self.trials if t.number in trial_slots.counted_numbers(self.trials)]
        if self.count <= 0 or len(counted) < self.count:
            return None
        states = [t.state.name for t in counted]
        failed = states.count("FAIL")
        if not failed:
            return None
        done = states.count("COMPLETE") + states.count("PRUNED")
        errors = sorted({str(t.user_attrs[ERROR_ATTR]) for t in counted if t.user_attrs.get(ERROR_ATTR)})
        why = f" (last error: {errors[-1][:200]})" if errors else ""
        return (f"count={self.count} is used up: {failed} trial(s) FAILED{why}, {states.count('COMPLETE')} "
                f"COMPLETE, {states.count('PRUNED')} PRUNED; failed trials count toward count, so "
                f"{'nothing more runs' if done == 0 else 'the sweep holds fewer results than count'}: fix the "
                f"program and re-run with --count {self.count + failed} to train {failed} more trial(s)")


def default_storage(output_dir: str | Path) -> str:
    """`sqlite:///{output_dir}/sweep.db` (absolute), creating the folder."""
    path = Path(output_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / 'sweep.db'}"


def check_local_support(config: SweepConfig) -> None:
    """Raise SweepConfigError when the config uses something only the wandb server can run."""
    problems = [
        f"parameter {p.name}: distribution {p.distribution} is not supported offline (the local engine "
        f"samples {', '.join(sorted(LOCAL_DISTRIBUTIONS))}); run it online or use log_uniform_values/uniform"
        for p in config.parameters.values() if p.distribution not in LOCAL_DISTRIBUTIONS
    ]
    for p in config.parameters.values():
        values = p.grid_values() or []
        if any(not isinstance(v, (str, int, float, bool, type(None))) for v in values):
            problems.append(f"parameter {p.name}: the local engine takes str/number/bool values only")
    eta = (config.early_terminate or {}).get("eta", 3)
    if config.early_terminate and float(eta) != int(eta):
        problems.append(f"early_terminate.eta must be an integer offline (Optuna's reduction_factor), got {eta}")
    if problems:
        raise SweepConfigError(problems, f"sweep {config.name!r} (offline engine)")


def run_local_sweep(
    config: SweepConfig | str | Path | Mapping[str, Any],
    program: Program,
    *,
    output_dir: str | Path = "outputs/sweep",
    storage: str | Any | None = None,
    count: int | None = None,
    study_name: str | None = None,
    seed: int = 0,
    agent_id: int = 0,
    project: str | None = None,
    entity: str | None = None,
    wandb_mode: str | None = None,
    grace_period: int = 180,
    max_consecutive_failures: int = 3,
    db_retry: float | None = None,
) -> LocalSweepResult:
    """Run one agent of an offline sweep until the sweep has `count` trials.

    Start the same call on several machines with one `storage` URL to share the work.

    Args:
        config: a validated `SweepConfig`, or a YAML path / dict to validate.
        program: the trial train function, `program(config_dict, callbacks)` (see `training.Program`);
            it must add `callbacks` (the pruning callback) to its trainer.
        output_dir: where the default SQLite store goes.
        storage: an Optuna storage URL (or storage object); default `sqlite:///{output_dir}/sweep.db`.
        count: the sweep's maximum number of trials (overrides the config's `count`).
        study_name: default: the config's `name`, else `sweep`.
        seed: sampler seed. Random and bayes draw trial `n` with a sampler seeded by `(seed, n)` and never
            draw a parameter set the sweep already holds (`distinct.DistinctSampler`); grid agents share the
            seed's shuffle and split the grid.
        agent_id: recorded with each trial and in its run's summary, to tell agents apart.
        project / entity: where the trial runs go; default: the config's `project:`/`entity:`, else
            `WANDB_PROJECT`/`WANDB_ENTITY`, else `search-model-training` (`run_options.sweep_destination`).
        wandb_mode: `offline`, `online` or `disabled`; default (None): `offline`, or `disabled` when
            `WANDB_MODE=disabled` (or `WANDB_DISABLED=true`) is set (`trial_wandb_mode`).
        grace_period: seconds without a heartbeat after which a killed agent's trial is failed.
        max_consecutive_failures: stop (re-raising the error) after this many trials in a row fail.
        db_retry: seconds to keep retrying a sweep database that stops answering before giving up with
            `SweepDatabaseUnreachable`; default `$HF_SEARCH_WANDB_DB_RETRY`, else 300 (`database.retry_seconds`).

    Returns:
        A `LocalSweepResult` with every trial of the study.

    Raises:
        SweepDatabaseUnreachable: the database did not answer for `db_retry` seconds (one line: the cause).

    Example:
        >>> import tempfile
        >>> sweep = {"method": "random", "count": 3, "metric": {"name": "val/mrr@10", "goal": "maximize"},
        ...          "parameters": {"x": {"min": 0.0, "max": 1.0}}}
        >>> def program(config, callbacks):  # a real one trains: see BiEncoderProgram
        ...     return {"eval_val_mrr@10": config["x"]}
        >>> result = run_local_sweep(sweep, program, output_dir=tempfile.mkdtemp(), wandb_mode="disabled")
        >>> result.states(), result.ran
        ({'COMPLETE': 3}, 3)
    """
    optuna = require_optuna()
    if isinstance(config, SweepConfig):
        cfg = replace(config, count=count) if count is not None else config
    else:
        cfg = load_sweep_config(config, count=count)
    check_local_support(cfg)
    name = study_name or cfg.name
    url = storage if storage is not None else default_storage(output_dir)
    study, opened = _open_study(optuna, url, name, cfg, seed, grace_period, db_retry)
    _check_same_sweep(study, cfg)

    project, entity = sweep_destination(cfg.raw, project, entity)
    objective = _Objective(cfg, program, project=project, entity=entity, wandb_mode=trial_wandb_mode(wandb_mode),
                           agent_id=agent_id)
    try:
        _run_agent(optuna, study, objective, name, grace_period, max_consecutive_failures)
        trials = study.get_trials()
    except Exception as err:
        gave_up = getattr(opened, "gave_up", None)
        if gave_up is not None:  # whatever Optuna made of it on its way out (its own errors, a chained one)
            raise gave_up from None
        raise err
    completed = [t for t in trials if t.state.name == "COMPLETE"]
    best = (max if cfg.direction == "maximize" else min)(completed, key=lambda t: t.value) if completed else None
    result = LocalSweepResult(
        study_name=name, storage=str(url), trials=trials, ran=objective.ran,
        best_value=None if best is None else best.value, best_params=None if best is None else best.params,
        count=cfg.count,
    )
    used = result.count_used_by_failures()
    if used:
        logger.warning("Sweep %s: %s.", name, used)
    return result


def trial_wandb_mode(requested: str | None) -> str:
    """The wandb mode of the trial runs: `requested`, else `disabled` when `WANDB_MODE=disabled` (or
    `WANDB_DISABLED=true`) asks for no runs at all, else `offline` (no server needed: `wandb sync` later).

    Example:
        >>> trial_wandb_mode("online")
        'online'
    """
    if requested:
        return requested
    if os.environ.get("WANDB_MODE") == "disabled" or os.environ.get("WANDB_DISABLED", "").lower() in (
            "1", "true", "yes"):
        return "disabled"
    return "offline"


def _run_agent(optuna: Any, study: Any, objective: _Objective, name: str, grace_period: int,
               max_consecutive_failures: int) -> None:
    """Start trials until the sweep has no work left for this agent."""
    cfg = objective.cfg
    failures = 0
    while True:
        trial_slots.fail_stale_trials(optuna, study)
        if not trial_slots.has_work(study, cfg.count):
            others, interval = trial_slots.running(study), trial_slots.heartbeat_interval(study)
            if not others or interval is None:
                break
            # Another agent may die mid-trial: stay until its trial ends or goes stale, then run the retry.
            logger.info("Sweep %s: waiting for running trial(s) %s of other agents.", name, others)
            time.sleep(interval)
            continue
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        except SweepDatabaseUnreachable:
            raise
        except Exception:
            if not objective.went_stale(study):
                raise
            # This agent stalled past grace_period (a paused machine): another agent failed and re-queued
            # its trial, so Optuna refuses the late result; the retry holds the slot.
            logger.warning("Sweep %s: trial %d was failed as stale while this agent ran it (no heartbeat for "
                           "%d s); its result is discarded and its retry counts instead.", name,
                           objective.number, grace_period)
            continue
        if isinstance(objective.last_error, (SweepMetricMissingError, SweepDatabaseUnreachable)):
            raise objective.last_error
        if objective.last_error is None:
            failures = 0
            continue
        failures += 1
        if failures >= max_consecutive_failures:
            raise TrialsKeepFailing(f"{failures} trials in a row failed; stopping this agent.") from objective.last_error


def _open_study(
    optuna: Any, url: Any, name: str, cfg: SweepConfig, seed: int, grace_period: int, db_retry: float | None
) -> tuple[Any, Any]:
    """Create or load the study; return it and its storage. Retried, because agents starting together on a fresh
    database race to create its tables (SQLite answers the loser with an IntegrityError)."""
    import random

    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(6):
        try:
            storage = (trial_slots.heartbeat_storage(optuna, url, grace_period, db_retry)
                       if isinstance(url, str) else url)
            study = optuna.create_study(
                study_name=name, storage=storage, sampler=_sampler(optuna, cfg, seed), pruner=_pruner(optuna, cfg),
                direction=cfg.direction, load_if_exists=True,
            )
            return study, storage
        except SQLAlchemyError:
            if attempt == 5:
                raise
            time.sleep(0.5 * (attempt + 1) + random.random())
    raise AssertionError("unreachable")


def _sampler(optuna: Any, cfg: SweepConfig, seed: int) -> Any:
    if cfg.method == "grid":
        # GridSampler gives trial n the n-th point of a seeded shuffle: every agent needs the same seed.
        space = {p.name: p.grid_values() for p in cfg.parameters.values() if p.distribution != "constant"}
        return optuna.samplers.GridSampler(space, seed=seed)
    from hf_search_wandb.sweeps.distinct import DistinctSampler

    make = optuna.samplers.RandomSampler if cfg.method == "random" else optuna.samplers.TPESampler
    return DistinctSampler(lambda trial_seed: make(seed=trial_seed), cfg, seed)


def _pruner(optuna: Any, cfg: SweepConfig) -> Any:
    early = cfg.early_terminate
    if not early:
        return optuna.pruners.NopPruner()
    eta = int(early.get("eta", 3))
    if "min_iter" in early:
        min_resource = int(early["min_iter"])
    else:  # wandb's max_iter + s: brackets at max_iter / eta^k for k = 1..s
        min_resource = max(1, round(int(early["max_iter"]) / eta ** int(early["s"])))
    max_resource: int | str = int(early["max_iter"]) if "max_iter" in early else "auto"
    return optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=max_resource,
                                          reduction_factor=eta)


def _check_same_sweep(study: Any, cfg: SweepConfig) -> None:
    stored = study.user_attrs.get(CONFIG_ATTR)
    current = {k: v for k, v in cfg.raw.items() if k not in ("run_cap", "count")}
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, current)
    elif stored != current:
        raise SweepConfigError(
            [f"study {study.study_name!r} in this storage already holds a different sweep config; "
             "give this sweep its own `name:` (or --study-name) or another storage"], "sweep")


class _Skipped(Exception):
    """A trial closed unrun: the sweep was full, or its parameters were drawn at the same time elsewhere."""


class _Objective:
    def __init__(self, cfg: SweepConfig, program: Program, *, project: str, entity: str | None,
                 wandb_mode: str | None, agent_id: int) -> None:
        self.cfg, self.program, self.project, self.entity = cfg, program, project, entity
        self.wandb_mode, self.agent_id = wandb_mode, agent_id
        self.ran = 0
        self.number: int | None = None
        self.last_error: BaseException | None = None

    def went_stale(self, study: Any) -> bool:
        """Whether the trial this agent ran last was failed by another agent's stale-trial check."""
        if self.number is None:
            return False
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == self.number)
        return trial.state.name == "FAIL" and ERROR_ATTR not in trial.user_attrs

    def __call__(self, trial: Any) -> float:
        import optuna

        self.last_error, self.number = None, trial.number
        if trial_slots.counted(trial.study.get_trials(deepcopy=False), below=trial.number) >= self.cfg.count:
            trial.set_user_attr(SKIPPED_ATTR, "sweep count reached while this trial was being created")
            raise _Skipped(f"count={self.cfg.count} reached")
        try:
            params = suggest(trial, self.cfg)
        except SearchSpaceUsedUp as err:  # the sampler stops the sweep: nothing new is left to draw
            trial.set_user_attr(SKIPPED_ATTR, str(err))
            raise _Skipped(str(err)) from err
        twin = self._drawn_elsewhere(trial)
        if twin is not None:
            trial.set_user_attr(SKIPPED_ATTR, f"the same parameters as trial {twin}, drawn at the same time")
            raise _Skipped(f"parameters drawn by trial {twin} too")
        trial.set_user_attr("agent", {"id": self.agent_id, "host": socket.gethostname(), "pid": os.getpid()})
        run = self._init_run(trial, params)
        pruning = OptunaPruningCallback(trial, self.cfg.metric, self.cfg.goal)
        self.ran += 1
        try:
            final = self.program(_nest(params), [pruning])
        except KeyboardInterrupt:  # stopped on purpose: a restart samples afresh instead of retrying it
            trial.set_user_attr(trial_slots.INTERRUPTED_ATTR, True)
            _finish(run, "FAIL", None, exit_code=1)
            raise
        except SweepDatabaseUnreachable as err:  # not the program's fault: stop the agent, the trial is not failed
            self.last_error = err
            _finish(run, "FAIL", None, exit_code=1)
            raise
        except Exception as err:
            self.last_error = err
            _finish(run, "FAIL", None, exit_code=1)
            trial.set_user_attr(ERROR_ATTR, repr(err)[:500])
            raise
        value = pruning.best if pruning.values else metric_value(final, self.cfg.metric)
        if pruning.pruned:
            _finish(run, "PRUNED", value)
            raise optuna.TrialPruned(f"pruned after {len(pruning.values)} evaluation(s) "
                                     f"(last {self.cfg.metric}={pruning.values[-1]:.4g})")
        if value is None:
            missing = RuntimeError(f"the program never produced {self.cfg.metric}: the pruning callback saw no "
                                   f"evaluation and the returned metrics lack it")
            self.last_error = missing
            _finish(run, "FAIL", None, exit_code=1)
            trial.set_user_attr(ERROR_ATTR, str(missing))
            raise missing
        _finish(run, "COMPLETE", value)
        return value

    def _drawn_elsewhere(self, trial: Any) -> int | None:
        """Another trial holding the parameters just drawn: two agents drew the same set at the same moment,
        before either was stored (the sampler refuses sets already stored). Both may step back; never both run.
        A stale trial's retry reuses its parameters on purpose and is not checked."""
        trials = trial.study.get_trials(deepcopy=False)
        me = next(t for t in trials if t.number == trial.number)
        if "failed_trial" in me.system_attrs:
            return None
        mine = params_key(self.cfg, me.params)
        for other in trials:
            if (other.number != me.number and not other.user_attrs.get(SKIPPED_ATTR)
                    and set(other.params) == set(me.params) and params_key(self.cfg, other.params) == mine):
                return int(other.number)
        return None

    def _init_run(self, trial: Any, params: dict[str, Any]) -> Any:
        from hf_search_wandb.tracking.wandb_api import require_wandb, start_run

        wandb = require_wandb()
        kwargs: dict[str, Any] = {}
        if self.wandb_mode is not None:
            kwargs["mode"] = self.wandb_mode
        if self.entity is not None:
            kwargs["entity"] = self.entity
        if wandb.run is not None:  # a trial's metrics must not land in another run
            logger.warning("Finishing the active wandb run %s before sweep trial %d.", wandb.run.id, trial.number)
            wandb.finish()
        run = start_run(wandb, {
            "project": self.project, "group": trial.study.study_name, "job_type": "sweep-trial",
            "name": f"{trial.study.study_name}-trial-{trial.number:03d}", "config": _nest(params),
            "tags": ["sweep", self.cfg.method], **kwargs,
        })
        run.summary.update({"sweep/trial_number": trial.number, "sweep/trial_state": "RUNNING",
                            "sweep/study": trial.study.study_name, "sweep/agent_id": self.agent_id})
        trial.set_user_attr("wandb_run_id", run.id)
        if getattr(run, "dir", None) and not getattr(run, "disabled", False):  # for `hf-search-wandb report`
            trial.set_user_attr("wandb_run_dir", str(Path(run.dir).resolve().parent))
        return run


def _finish(run: Any, state: str, value: float | None, exit_code: int = 0) -> None:
    """Record the trial's end in the run's summary and finish the run (unless the program already did)."""
    if getattr(run, "_is_finished", False):
        logger.warning("The program finished wandb run %s itself; its trial state is not in its summary.", run.id)
        return
    update: dict[str, Any] = {"sweep/trial_state": state}
    if value is not None and math.isfinite(value):
        update["sweep/objective"] = value
    run.summary.update(update)
    run.finish(exit_code=exit_code)


def _nest(params: Mapping[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1}` -> `{"a": {"b": 1}}` (wandb's nested `parameters` blocks)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out

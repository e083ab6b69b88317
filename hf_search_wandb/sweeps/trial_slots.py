"""Which trials hold one of a sweep's `count` slots, across agents that may die at any time.

The offline engine keeps every trial in an Optuna RDB storage (SQLite on one machine, PostgreSQL or MySQL
across machines). Optuna's own mechanisms carry the failure handling:

- a running trial records a heartbeat every `heartbeat_interval` seconds (`RDBStorage(heartbeat_interval=...)`);
- `optuna.storages.fail_stale_trials` fails a RUNNING trial whose heartbeat is older than `grace_period`;
- `RetryHeartbeatStaleTrialCallback` (before Optuna 4.9: `RetryFailedTrialCallback`) then adds a WAITING copy
  of it with the same parameters, which the next `study.optimize` call of any agent runs first.

This module decides what counts: a trial holds a slot while it runs, waits or has ended, except a trial
closed unrun (`skipped`), one interrupted by its own agent (Ctrl-C: `interrupted`), and a stale trial that
has been retried (its slot passes to the retry; until the retry exists the stale trial keeps it, so no agent
starts an extra trial in between).
"""

from __future__ import annotations

import warnings
from typing import Any

SKIPPED_ATTR = "skipped"
INTERRUPTED_ATTR = "interrupted"
#: How many times a trial whose agent died is run again before it counts as failed.
MAX_RETRY = 3


def heartbeat_storage(optuna: Any, url: str, grace_period: int, retry_for: float | None = None) -> Any:
    """A storage at `url` whose running trials beat every `grace_period // 3` s (at least 1 s) and whose
    stale trials are failed after `grace_period` s and re-queued up to `MAX_RETRY` times; it retries a database
    that stops answering for `retry_for` seconds (default `database.retry_seconds()`; see `RetryingStorage`).
    `postgresql://` URLs get the installed driver (`database.storage_url`).

    Example:
        >>> import optuna
        >>> storage = heartbeat_storage(optuna, "sqlite:///:memory:", grace_period=6)
        >>> storage.heartbeat_interval, storage.grace_period
        (2, 6)
    """
    from hf_search_wandb.sweeps.database import display_url, retry_seconds, storage_url
    from hf_search_wandb.sweeps.retrying_storage import RetryingStorage

    if grace_period < 2:
        raise ValueError(f"grace_period must be at least 2 seconds (heartbeats are whole seconds), got {grace_period}")
    shown, url = display_url(url), storage_url(url)
    # pool_pre_ping: a connection the server dropped (restart, failover) is replaced instead of failing a call.
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 120}
    elif url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}  # a silent network: fail the attempt, retry
    kwargs: dict[str, Any] = {"engine_kwargs": engine_kwargs, "heartbeat_interval": max(1, grace_period // 3),
                              "grace_period": grace_period}
    with warnings.catch_warnings():  # heartbeats and the retry callback are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        if retry is not None:
            kwargs["heartbeat_stale_trial_callback"] = retry(max_retry=MAX_RETRY)
        else:  # Optuna < 4.9
            kwargs["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(max_retry=MAX_RETRY)
        return RetryingStorage(url, retry_for=retry_seconds(retry_for), shown_url=shown, **kwargs)


def heartbeat_interval(study: Any) -> int | None:
    """The study storage's heartbeat interval in seconds, None when its storage has no heartbeat."""
    getter = getattr(study._storage, "get_heartbeat_interval", None)
    return getter() if getter is not None else None


def fail_stale_trials(optuna: Any, study: Any) -> None:
    """Fail (and, through the storage's callback, re-queue) the trials of agents that stopped beating."""
    if heartbeat_interval(study) is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def counted(trials: list[Any], below: int | None = None) -> int:
    """Trials holding a slot of `count` (only those numbered below `below`, when given).

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> study.add_trial(optuna.create_trial(value=1.0))
        >>> study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.FAIL,
        ...                                     user_attrs={SKIPPED_ATTR: "count reached"}))
        >>> counted(study.get_trials())
        1
    """
    return sum(1 for number in counted_numbers(trials) if below is None or number < below)


def counted_numbers(trials: list[Any]) -> set[int]:
    """The numbers of the trials holding a slot of `count` (see the module docstring)."""
    retried = {t.system_attrs["retry_history"][-1] for t in trials if t.system_attrs.get("retry_history")}
    out = set()
    for t in trials:
        if t.user_attrs.get(SKIPPED_ATTR):
            continue
        if t.state.name == "FAIL" and (t.number in retried or t.user_attrs.get(INTERRUPTED_ATTR)):
            continue
        out.add(t.number)
    return out


def has_work(study: Any, count: int) -> bool:
    """Whether an agent should call `study.optimize` now: a retry is queued, or a slot is free and the
    sampler is not exhausted."""
    trials = study.get_trials(deepcopy=False)
    if any(t.state.name == "WAITING" for t in trials):
        return True
    exhausted = getattr(study.sampler, "is_exhausted", None)
    return counted(trials) < count and not (exhausted is not None and exhausted(study))


def running(study: Any) -> list[int]:
    """Numbers of the trials running now (in any agent)."""
    return [t.number for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]

"""Optuna's `RDBStorage` that rides out a sweep database going away (a restart, a failover, a network cut).

Every storage call that fails for a connection reason (`database.connection_problem`) is retried with backoff
until the database answers again, for at most `retry_for` seconds from the first failure; past that the agent
stops with `SweepDatabaseUnreachable` (one line: database, cause, time). A trial that finished during the outage
is stored when the database is back; a write that went through just before the connection broke is not
written twice.

Heartbeats never block or kill their thread: a beat that cannot be written is skipped (the next one, one interval
later, goes through once the database is back). Since no agent could beat during the outage, an agent that has just
seen the database come back does not fail other agents' trials as stale for one `grace_period`, the time their
heartbeats need to resume; without that pause every trial alive across an outage longer than `grace_period` would
be failed, re-queued and trained twice.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage

from hf_search_wandb.sweeps.database import (
    DEFAULT_RETRY_S,
    RETRY_ENV,
    SweepDatabaseUnreachable,
    cause_line,
    connection_problem,
    display_url,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


class RetryingStorage(RDBStorage):
    """`RDBStorage` that retries connection failures for `retry_for` seconds (see the module docstring).

    Example:
        >>> storage = RetryingStorage("sqlite:///:memory:", retry_for=5)
        >>> storage.retry_for
        5.0
    """

    #: The storage calls Optuna makes (through its `_CachedStorage` too); each is retried as one unit.
    CALLS = (
        "create_new_study",
        "delete_study",
        "set_study_user_attr",
        "set_study_system_attr",
        "get_study_id_from_name",
        "get_study_name_from_id",
        "get_study_directions",
        "get_study_user_attrs",
        "get_study_system_attrs",
        "get_trial_user_attrs",
        "get_trial_system_attrs",
        "get_all_studies",
        "create_new_trial",
        "_create_new_trial",
        "set_trial_param",
        "_set_trial_param",
        "get_trial_param",
        "set_trial_intermediate_value",
        "set_trial_user_attr",
        "set_trial_system_attr",
        "get_trial_id_from_study_id_trial_number",
        "get_trial",
        "get_all_trials",
        "_get_trials",
        "get_best_trial",
        "_get_best_trial_id",
    )

    def __init__(
        self, url: str, *, retry_for: float = DEFAULT_RETRY_S, shown_url: str | None = None, **kwargs: Any
    ) -> None:
        self.retry_for = float(retry_for)
        self.shown_url = shown_url or display_url(url)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._down_since: float | None = None
        self._cause = ""
        self._recovered_at: float | None = None
        self.gave_up: SweepDatabaseUnreachable | None = None
        self._retry(lambda: RDBStorage.__init__(self, url, **kwargs))

    # -- the retry loop -------------------------------------------------------------------------------------
    def _retry(self, call: Callable[[], T], *, finishing: Callable[[], bool] | None = None) -> T:
        if getattr(self._local, "inside", False):  # an inner call of a call being retried: no nested loop
            return call()
        self._local.inside = True
        try:
            attempt = 0
            while True:
                if self.gave_up is not None:
                    raise self.gave_up
                try:
                    result = call()
                except UpdateFinishedTrialError:
                    # A write that went through just before the connection broke: done, if it stored what we asked.
                    if attempt and finishing is not None and finishing():
                        self._up()
                        return True  # type: ignore[return-value]
                    raise
                except Exception as err:
                    problem = connection_problem(err)
                    if problem is None:
                        raise
                    self._down(problem)
                    time.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                self._up()
                return result
        finally:
            self._local.inside = False

    def _backoff(self, attempt: int) -> float:
        """0.25 s doubling, with jitter, capped at the heartbeat interval (at most 5 s), so that a result held
        back by the outage is stored well within `grace_period` of the database's return."""
        cap = min(5.0, float(getattr(self, "heartbeat_interval", None) or 5.0))
        return min(cap, 0.25 * 2**attempt) * (0.5 + random.random() / 2)

    def _down(self, problem: BaseException) -> None:
        with self._lock:
            now = time.monotonic()
            if self._down_since is None:
                self._down_since, self._cause = now, cause_line(problem)
                logger.warning(
                    "The sweep database %s does not answer (%s); retrying for up to %g s.",
                    self.shown_url,
                    self._cause,
                    self.retry_for,
                )
            else:
                self._cause = cause_line(problem)
            waited = now - self._down_since
            if waited >= self.retry_for and self.gave_up is None:
                self.gave_up = SweepDatabaseUnreachable(
                    f"could not reach the sweep database {self.shown_url}: {self._cause} for {waited:.0f} s "
                    f"(the bound, --db-retry / {RETRY_ENV}, is {self.retry_for:g} s); start the agent again once "
                    f"the database is back: finished trials are kept"
                )
                raise self.gave_up

    def _up(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is not None:
                logger.warning(
                    "The sweep database %s answers again after %.1f s.",
                    self.shown_url,
                    time.monotonic() - self._down_since,
                )
                self._down_since, self._recovered_at = None, time.monotonic()

    # -- Optuna's storage calls -----------------------------------------------------------------------------
    def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
        def stored() -> bool:
            trial = RDBStorage.get_trial(self, trial_id)
            return trial.state == state and (values is None or list(trial.values or []) == list(values))

        return self._retry(
            lambda: RDBStorage.set_trial_state_values(self, trial_id, state, values), finishing=stored
        )

    def record_heartbeat(self, trial_id: int) -> None:
        """One attempt: a beat lost to an outage is skipped, the heartbeat thread keeps its interval."""
        if self.gave_up is not None:
            return
        try:
            RDBStorage.record_heartbeat(self, trial_id)
        except Exception as err:
            problem = connection_problem(err)
            if problem is None:
                raise
            with contextlib.suppress(SweepDatabaseUnreachable):  # the main thread raises it at its next call
                self._down(problem)
            return
        self._up()

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = self._retry(lambda: RDBStorage._get_stale_trial_ids(self, study_id))
        recovered, grace = self._recovered_at, self.grace_period or 0
        if stale and recovered is not None and time.monotonic() - recovered < grace:
            logger.info(
                "Not failing trial(s) %s as stale yet: the database was back only %.1f s ago, their "
                "agents' heartbeats need up to grace_period=%d s to resume.",
                stale,
                time.monotonic() - recovered,
                grace,
            )
            return []
        return stale


def _retried(name: str) -> Callable[..., Any]:
    original = getattr(RDBStorage, name)

    def call(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._retry(lambda: original(self, *args, **kwargs))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = original.__doc__
    return call


for _name in RetryingStorage.CALLS:
    setattr(RetryingStorage, _name, _retried(_name))

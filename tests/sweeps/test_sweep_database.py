"""The sweep database going away under one agent's storage (a real PostgreSQL, stopped with `-m immediate`):
calls wait for it to come back, within a bound; past the bound, one line naming the cause. The whole sweep
across an outage is `tests/e2e/test_sweep_outage.py`."""

from __future__ import annotations

import re
import threading
import time

import optuna
import pytest

from hf_search_wandb.sweeps.database import SweepDatabaseUnreachable, connection_problem, retry_seconds
from hf_search_wandb.sweeps.trial_slots import heartbeat_storage
from tests.helpers.postgres_server import controlled_postgres_server


@pytest.mark.postgres
def test_a_call_during_an_outage_waits_for_the_database_and_the_result_is_stored():
    """A trial's result told while the server is down (3 s) is stored once it is back, and its heartbeats,
    lost during the outage, resume; before: StorageInternalError ("invalid data in the commit") at once."""
    with controlled_postgres_server() as server:
        storage = heartbeat_storage(optuna, server.plain_url, grace_period=3, retry_for=60)
        study = optuna.create_study(study_name="outage", storage=storage)
        trial = study.ask()
        server.stop()
        study._storage.record_heartbeat(trial._trial_id)  # lost, without an error: the thread keeps beating
        threading.Timer(3.0, server.start).start()
        started = time.monotonic()
        study.tell(trial, 0.75)
        waited = time.monotonic() - started
        (stored,) = optuna.load_study(study_name="outage", storage=server.url).get_trials()
    assert stored.state.name == "COMPLETE" and stored.value == 0.75
    assert 2.5 < waited < 20, waited
    print(f"\nfigures: tell() waited {waited:.1f} s for a server down 3 s, then stored the result")


@pytest.mark.postgres
def test_a_database_that_does_not_come_back_ends_in_one_line_after_the_bound():
    with controlled_postgres_server() as server:
        storage = heartbeat_storage(
            optuna, f"postgresql://postgres:secret@127.0.0.1:{server.port}/postgres", 3, retry_for=2
        )
        study = optuna.create_study(study_name="gone", storage=storage)
        server.stop()
        started = time.monotonic()
        with pytest.raises(SweepDatabaseUnreachable) as info:
            study.ask()
        took = time.monotonic() - started
        with pytest.raises(SweepDatabaseUnreachable):  # once given up, at once
            study.get_trials()
    message = str(info.value)
    assert "\n" not in message
    assert re.match(
        rf"could not reach the sweep database postgresql://postgres:\*\*\*@127.0.0.1:{server.port}"
        rf"/postgres: connection to server at \"127.0.0.1\", port {server.port} failed: "
        r"Connection refused for [23] s \(the bound, --db-retry / HF_SEARCH_WANDB_DB_RETRY, is 2 s\)",
        message,
    ), message
    assert "secret" not in message
    assert 2 <= took < 8, took
    print(f"\nfigures: gave up {took:.1f} s after the server stopped (bound 2 s): {message}")


@pytest.mark.postgres
def test_a_wrong_database_name_is_not_retried():
    with controlled_postgres_server() as server:
        started = time.monotonic()
        with pytest.raises(Exception) as info:
            heartbeat_storage(optuna, server.plain_url.replace("/postgres", "/nosuchdb"), 3, retry_for=60)
    assert time.monotonic() - started < 10
    assert connection_problem(info.value) is None and "does not exist" in str(info.value)


def test_the_retry_bound_comes_from_the_argument_the_environment_or_the_default(monkeypatch):
    monkeypatch.delenv("HF_SEARCH_WANDB_DB_RETRY", raising=False)
    assert retry_seconds() == 300.0
    monkeypatch.setenv("HF_SEARCH_WANDB_DB_RETRY", "45")
    assert retry_seconds() == 45.0 and retry_seconds(5) == 5.0
    monkeypatch.setenv("HF_SEARCH_WANDB_DB_RETRY", "soon")
    with pytest.raises(ValueError, match="HF_SEARCH_WANDB_DB_RETRY must be a number of seconds, got 'soon'"):
        retry_seconds()
    with pytest.raises(ValueError, match="--db-retry must be >= 0"):
        retry_seconds(-1)

"""No parameter set is drawn twice in one offline sweep: not by a restarted agent, not by a sweep extended with a
larger `count`, not by two agents at once; a finite space stops when every set is drawn; a fresh sweep with a
seed is reproducible.

Before: each agent built `RandomSampler(seed + agent_id)` / `TPESampler(seed + agent_id)` when it started, so a
restart replayed the same sequence: count 3 then 6 gave 6 COMPLETE trials holding 3 distinct parameter sets.
"""

from __future__ import annotations

from collections.abc import Iterator

import optuna
import pytest

from hf_search_wandb.sweeps.local import run_local_sweep
from tests.helpers.postgres_server import postgres_server
from tests.helpers.sweeps import scripted_program

METRIC = {"name": "val/mrr@10", "goal": "maximize"}


def _sweep(name: str, method: str, count: int, parameters: dict | None = None) -> dict:
    return {
        "name": name,
        "method": method,
        "count": count,
        "metric": METRIC,
        "parameters": parameters or {"quality": {"min": 0.0, "max": 1.0}},
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sweep.db'}"
    else:
        with postgres_server() as url:
            yield url


def _param_sets(trials: list) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in trials if not t.user_attrs.get("skipped")]


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_a_restarted_agent_and_a_larger_count_draw_only_new_parameter_sets(storage, method):
    """The same agent (same seed, same agent id) started three times on one study: count 3, then the restart
    with --count 6, then a third agent with --count 8. Before: 6 COMPLETE trials held 3 distinct sets."""
    sweep = _sweep(f"replay-{method}", method, 3)
    first = run_local_sweep(sweep, scripted_program, storage=storage, wandb_mode="disabled")
    again = run_local_sweep(sweep, scripted_program, storage=storage, wandb_mode="disabled", count=6)
    third = run_local_sweep(
        sweep, scripted_program, storage=storage, wandb_mode="disabled", count=8, agent_id=1
    )
    assert (first.ran, again.ran, third.ran) == (3, 3, 2)
    assert third.states() == {"COMPLETE": 8}
    sets = _param_sets(third.trials)
    assert len(sets) == 8 and len(set(sets)) == 8, sets
    print(
        f"\nfigures: {method}: 8 COMPLETE trials over 3 agent starts, {len(set(sets))} distinct parameter sets"
    )


def test_a_finite_space_is_drawn_once_per_set_and_the_sweep_stops_when_all_are_drawn(tmp_path):
    """3 x 2 categorical values, count 10, random: 6 distinct trials, then the agent stops as a finished grid
    would. Before: 10 trials, the 6 sets drawn with replacement (repeats included)."""
    parameters = {"quality": {"values": [0.1, 0.5, 0.9]}, "width": {"values": [1, 2]}}
    result = run_local_sweep(
        _sweep("finite", "random", 10, parameters),
        scripted_program,
        output_dir=tmp_path,
        wandb_mode="disabled",
    )
    sets = _param_sets(result.trials)
    assert result.states() == {"COMPLETE": 6} and len(set(sets)) == 6
    again = run_local_sweep(
        _sweep("finite", "random", 10, parameters),
        scripted_program,
        output_dir=tmp_path,
        wandb_mode="disabled",
    )
    assert again.ran == 0


def test_a_fresh_sweep_with_a_seed_is_reproducible(tmp_path):
    """Trial n draws with a sampler seeded by (seed, n): two fresh sweeps with seed 7 hold the same values,
    seed 8 others."""

    def values(folder: str, seed: int) -> list[float]:
        result = run_local_sweep(
            _sweep("seeded", "random", 4),
            scripted_program,
            output_dir=tmp_path / folder,
            seed=seed,
            wandb_mode="disabled",
        )
        return [t.params["quality"] for t in result.trials]

    assert values("a", 7) == values("b", 7)
    assert set(values("c", 8)).isdisjoint(values("a", 7))


def test_a_set_drawn_by_two_agents_at_once_runs_once(tmp_path):
    """The sampler refuses sets already stored; a set that two agents drew in the same instant (neither stored
    yet) is caught after the draw: the later trial is closed unrun (`skipped`) and a new set is drawn. The
    instant is staged here by queueing trial 0's parameters again. Before: the queued copy trained."""
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    first = run_local_sweep(
        _sweep("twins", "random", 1), scripted_program, storage=storage, wandb_mode="disabled"
    )
    study = optuna.load_study(study_name="twins", storage=storage)
    study.enqueue_trial(first.trials[0].params)
    result = run_local_sweep(
        _sweep("twins", "random", 2), scripted_program, storage=storage, wandb_mode="disabled"
    )
    twin = next(t for t in result.trials if t.number == 1)
    assert twin.user_attrs.get("skipped", "").startswith("the same parameters as trial 0")
    assert result.states() == {"COMPLETE": 2} and len(set(_param_sets(result.trials))) == 2

"""Sweep config validation: what runs, what is refused, and that every refusal says why and what to do."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from hf_search_wandb.sweeps.config import (
    SweepConfigError,
    grid_combinations,
    load_sweep_config,
    recommended_config_path,
)
from tests.helpers.sweeps import SEED_YAML


# The seed's sweep_config.yaml, verbatim (note `1e-6`: YAML 1.1 reads it as a string).
@pytest.fixture
def seed() -> dict:
    return yaml.safe_load(SEED_YAML)


def reasons(config: dict, **kwargs) -> list[str]:
    with pytest.raises(SweepConfigError) as info:
        load_sweep_config(config, **kwargs)
    return info.value.reasons


def test_seed_bayes_config_validates_with_count_given(seed, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(SEED_YAML)
    config = load_sweep_config(path, count=20)
    assert (config.method, config.metric, config.goal, config.count) == ("bayes", "val/mrr@10", "maximize", 20)
    assert len(config.parameters) == 8
    lr = config.parameters["learning_rate"]
    assert lr.distribution == "log_uniform_values"
    assert (lr.args["min"], lr.args["max"]) == (1e-6, 5e-5)  # the YAML strings read as numbers
    assert config.warnings == []


def test_recommended_file_ships_the_spec_search_space():
    config = load_sweep_config(recommended_config_path())
    assert config.method == "bayes" and config.metric == "val/mrr@10" and config.goal == "maximize"
    assert config.parameters["batch_size"].args["values"] == [32, 64, 128]
    assert config.parameters["loss_function"].args["values"] == [
        "MultipleNegativesRankingLoss", "TripletLoss", "CosineSimilarityLoss"]
    assert config.parameters["pooling_mode"].args["values"] == ["mean", "cls", "max"]
    assert config.early_terminate == {"type": "hyperband", "min_iter": 3, "eta": 3}


def test_count_is_mandatory(seed):
    (reason,) = reasons(seed)
    assert "count" in reason and "--count" in reason


def test_count_from_file_and_argument_wins(seed):
    seed["count"] = 12
    assert load_sweep_config(seed).count == 12
    assert load_sweep_config(seed, count=3).count == 3
    assert "positive integer" in reasons(seed, count=0)[0]


def test_seven_parameter_grid_is_refused_with_runs_and_time(seed):
    seed["method"] = "grid"
    del seed["parameters"]["learning_rate"]
    (reason,) = reasons(seed, count=10)
    assert "2,187 runs" in reason
    assert "7 parameters" in reason
    assert "91 days" in reason and "1 h per run" in reason
    assert "random" in reason and "bayes" in reason


def test_grid_time_estimate_uses_hours_per_run(seed):
    seed["method"] = "grid"
    del seed["parameters"]["learning_rate"]
    (reason,) = reasons(seed, count=10, hours_per_run=0.5)
    assert "1,094 h" in reason and "46 days" in reason


def test_grid_limits_parameters_and_combinations():
    base = {"method": "grid", "count": 9, "metric": {"name": "val/mrr@10", "goal": "maximize"}}
    three = {**base, "parameters": {k: {"values": [1, 2]} for k in "abc"}}
    assert load_sweep_config(three).grid_size() == 8
    four = {**base, "parameters": {k: {"values": [1, 2]} for k in "abcd"}}
    assert "16 runs (4 parameters" in reasons(four)[0]
    too_many = {**base, "parameters": {"a": {"values": list(range(7))}, "b": {"values": [1, 2, 3]}}}
    assert "21 runs" in reasons(too_many)[0]
    with_constant = {**base, "parameters": {**three["parameters"], "d": {"value": 5}}}
    assert load_sweep_config(with_constant).grid_size() == 8  # a constant adds no runs


def test_grid_over_a_continuous_parameter_is_refused():
    config = {"method": "grid", "count": 5, "metric": {"name": "val/mrr@10", "goal": "maximize"},
              "parameters": {"lr": {"distribution": "uniform", "min": 0.1, "max": 0.2}}}
    assert "continuous" in reasons(config)[0]


def test_unknown_distribution_is_named_with_a_suggestion(seed):
    seed["parameters"]["learning_rate"]["distribution"] = "log_uniform_value"
    (reason,) = reasons(seed, count=5)
    assert "'log_uniform_value'" in reason and "did you mean 'log_uniform_values'" in reason


def test_min_not_below_max(seed):
    seed["parameters"]["learning_rate"].update(min=5e-5, max=1e-6)
    (reason,) = reasons(seed, count=5)
    assert "learning_rate" in reason and "min (5e-05) must be smaller than max (1e-06)" in reason


def test_log_uniform_takes_exponents(seed):
    seed["parameters"]["learning_rate"]["distribution"] = "log_uniform"
    (reason,) = reasons(seed, count=5)
    assert "exponents" in reason and "log_uniform_values" in reason


def test_log_uniform_with_exponents_is_accepted(seed):
    seed["parameters"]["learning_rate"].update(distribution="log_uniform", min=-13.8, max=-9.9)
    assert load_sweep_config(seed, count=5).parameters["learning_rate"].distribution == "log_uniform"


def test_metric_must_be_logged_by_the_callback(seed):
    seed["metric"]["name"] = "val_mrr@10"
    (reason,) = reasons(seed, count=5)
    assert "not logged by SearchWandbCallback" in reason and "did you mean 'val/mrr@10'" in reason
    assert load_sweep_config(seed, count=5, extra_metrics=("val_mrr@10",)).metric == "val_mrr@10"
    for name in ("val/ndcg@20", "val/recall@1000", "val/map", "val/loss", "train/loss", "val/precision@5",
                 "val/rprec", "val/bpref"):
        seed["metric"] = {"name": name, "goal": "minimize" if "loss" in name else "maximize"}
        assert load_sweep_config(seed, count=5).metric == name


def test_goal_must_be_minimize_or_maximize_and_given(seed):
    seed["metric"]["goal"] = "max"
    assert "minimize or maximize (got 'max')" in reasons(seed, count=5)[0]
    del seed["metric"]["goal"]
    assert "defaults to minimize" in reasons(seed, count=5)[0]
    seed["metric"] = {"name": "val/loss", "goal": "maximize"}
    assert "is a loss" in reasons(seed, count=5)[0]
    seed["metric"] = {"name": "val/bpref", "goal": "minimize"}
    assert "val/bpref is higher-is-better: goal must be maximize" in reasons(seed, count=5)[0]
    seed["metric"] = {"name": "val/rprec"}
    assert "write `goal: maximize`" in reasons(seed, count=5)[0]
    seed["metric"] = {"name": "train/loss"}
    assert "write `goal: minimize`" in reasons(seed, count=5)[0]


def test_all_problems_are_reported_together(seed):
    bad = copy.deepcopy(seed)
    bad["method"] = "grid-search"
    bad["metric"]["goal"] = "up"
    bad["parameters"]["learning_rate"]["distribution"] = "lognormal"
    bad["parameters"]["batch_size"] = {"min": 64, "max": 32}
    bad["early_terminate"] = {"type": "hyperband", "eta": 1}
    bad["epochs"] = 3
    found = reasons(bad)
    text = "\n".join(found)
    assert len(found) == 8, text
    for fragment in ("count", "method must be one of", "goal", "'lognormal'", "batch_size: min (64)",
                     "needs min_iter", "eta must be a number > 1", "unknown top-level key 'epochs'"):
        assert fragment in text
    message = str(SweepConfigError(found))
    assert "8 problem(s)" in message and message.count("\n  - ") == 8


def test_early_terminate_rules(seed):
    seed["early_terminate"] = {"type": "hyperband", "max_iter": 27, "s": 2}
    assert load_sweep_config(seed, count=5).early_terminate["max_iter"] == 27
    seed["early_terminate"] = {"type": "median"}
    found = "\n".join(reasons(seed, count=5))
    assert "type must be hyperband" in found
    del seed["early_terminate"]
    assert any("early_terminate" in w for w in load_sweep_config(seed, count=5).warnings)


def test_wandb_distributions_and_their_arguments(seed):
    params = {
        "a": {"distribution": "q_log_uniform_values", "min": 16, "max": 512, "q": 16},
        "b": {"distribution": "normal", "mu": 0, "sigma": 1},
        "c": {"distribution": "inv_log_uniform_values", "min": 1e-4, "max": 1e-1},
        "d": {"distribution": "int_uniform", "min": 1, "max": 4},
        "e": {"min": 0.0, "max": 1.0},
        "f": {"distribution": "beta", "a": 2, "b": 5},
        "g": {"parameters": {"h": {"values": [1, 2]}}},
    }
    seed["parameters"] = params
    config = load_sweep_config(seed, count=5)
    assert {n: p.distribution for n, p in config.parameters.items()} == {
        "a": "q_log_uniform_values", "b": "normal", "c": "inv_log_uniform_values", "d": "int_uniform",
        "e": "uniform", "f": "beta", "g.h": "categorical"}
    seed["parameters"] = {"x": {"distribution": "normal", "min": 0, "max": 1},
                          "y": {"distribution": "log_uniform_values", "min": 0, "max": 1},
                          "z": {"distribution": "int_uniform", "min": 0.5, "max": 3}}
    text = "\n".join(reasons(seed, count=5))
    assert "normal does not take 'max'" in text and "needs min > 0" in text and "integer min and max" in text


def test_to_wandb_drops_count_and_sets_run_cap(seed, tmp_path: Path):
    seed["count"] = 7
    config = load_sweep_config(seed)
    sent = config.to_wandb()
    assert "count" not in sent and sent["run_cap"] == 7 and sent["method"] == "bayes"


def test_grid_combinations_counts_discrete_ranges():
    config = load_sweep_config({"method": "grid", "count": 1, "metric": {"name": "val/map", "goal": "maximize"},
                                "parameters": {"q": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25},
                                               "i": {"distribution": "int_uniform", "min": 2, "max": 4}}})
    assert grid_combinations(config.parameters) == 15


def test_numbers_written_without_a_dot_reach_wandb_as_numbers(seed):
    sent = load_sweep_config(seed, count=3).to_wandb()
    assert sent["parameters"]["learning_rate"] == {"distribution": "log_uniform_values", "min": 1e-6, "max": 5e-5}

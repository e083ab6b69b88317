"""The table of measures is the one source of truth: a declaration reaches parsing, the scorers, the
sweep-config check and the wandb summary goals, with no other edit."""

from __future__ import annotations

import numpy as np
import pytest

from hf_search_wandb.core.metrics.measures import (
    LOGGED_SERIES,
    MEASURES,
    Measure,
    Metric,
    is_logged,
    logged_goal,
    parse_metric,
    valid_forms,
)
from hf_search_wandb.core.metrics.ranked_hits import RankedHits
from hf_search_wandb.core.metrics.scoring import score_ranked, score_run
from hf_search_wandb.sweeps.config import SweepConfigError, load_sweep_config
from hf_search_wandb.tracking.log_keys import summary_goal


def _misses(hits: RankedHits, k: int) -> np.ndarray:
    """Ranks of the top k that do not hold a relevant document (lower is better)."""
    return k - hits.count_top(k)


MISSES = Measure("misses", _misses, "required", graded=False, goal="min")


def _sweep(name: str, goal: str) -> dict:
    return {"method": "random", "count": 3, "metric": {"name": name, "goal": goal},
            "parameters": {"learning_rate": {"values": [1e-5, 2e-5]}}}  # fmt: skip


def test_a_new_declaration_reaches_every_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MEASURES, "misses", MISSES)
    assert parse_metric("MISSES@3") == Metric("misses@3", "misses", 3)
    assert "misses@k" in valid_forms()
    qrels = {"q": {"a": 1, "b": 1}}
    run = {"q": {"x": 0.9, "a": 0.8, "y": 0.7, "b": 0.6}}
    assert score_run(qrels, run, metrics=["misses@3", "mrr@3"]) == {"misses@3": 2.0, "mrr@3": 0.5}
    assert score_ranked(np.array([[0, 1, 0, 1]]), [np.array([1, 1])], metrics=["misses@2"], depth=4) == {
        "misses@2": 1.0
    }
    assert is_logged("val/misses@3") and logged_goal("val/misses@3") == "min"
    assert summary_goal("val/misses@3") == "min" and summary_goal("misses@3") == "min"
    assert load_sweep_config(_sweep("val/misses@3", "minimize")).goal == "minimize"
    with pytest.raises(SweepConfigError, match="goal must be minimize"):
        load_sweep_config(_sweep("val/misses@3", "maximize"))


def test_without_the_declaration_the_name_is_unknown_everywhere() -> None:
    assert "misses" not in MEASURES
    with pytest.raises(ValueError, match="Unknown metric 'misses@3'"):
        parse_metric("misses@3")
    assert not is_logged("val/misses@3") and logged_goal("val/misses@3") is None
    with pytest.raises(SweepConfigError, match="'val/misses@3' is not logged by SearchWandbCallback"):
        load_sweep_config(_sweep("val/misses@3", "minimize"))


def test_every_declaration_is_complete() -> None:
    """Each measure names the trec_eval measure it is checked against (tests/metrics/test_metrics.py) for every form
    it accepts, and a goal."""
    for measure in MEASURES.values():
        assert measure.name == measure.name.lower() and measure.goal in ("max", "min")
        if measure.cutoff != "none":
            assert measure.trec_eval_name(10) is not None, measure.name
        if measure.cutoff != "required":
            assert measure.trec_eval_name(None) is not None, measure.name
    assert MEASURES["bpref"].uses_nonrelevant and MEASURES["ndcg"].graded
    assert parse_metric("map").spec.trec_eval_name(None) == "map"
    assert parse_metric("map@5").spec.trec_eval_name(5) == "map_cut_5"


def test_losses_are_logged_series_to_minimise() -> None:
    for key in ("val/loss", "train/loss", "train/epoch_loss"):
        assert LOGGED_SERIES[key] == "min" and is_logged(key)
    assert summary_goal("val/loss") == "min" and summary_goal("val/ndcg@10") == "max"
    assert summary_goal("val/cosine_accuracy") == "max"  # a key outside the table keeps wandb's "max"
    assert not is_logged("val/NDCG@10")  # logged names are the canonical lower-case ones

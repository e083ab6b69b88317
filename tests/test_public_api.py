"""The public API reads in one screen; everything else is in a sub-namespace, and old names still work."""

from __future__ import annotations

import importlib
import inspect

import pytest

import hf_search_wandb

SUB_NAMESPACES = (
    "hf_search_wandb.core.metrics",
    "hf_search_wandb.core.data",
    "hf_search_wandb.core.models",
    "hf_search_wandb.core.search",
    "hf_search_wandb.core.evaluation",
    "hf_search_wandb.tracking",
)


def test_the_top_level_api_fits_one_screen() -> None:
    assert len(hf_search_wandb.__all__) <= 30
    for name in ("SearchWandbCallback", "SearchWandbConfig", "RetrievalEvaluator", "RerankingEvaluator",
                 "load_beir", "score_run", "build_report", "run_local_sweep", "load_model_from_artifact"):
        assert name in hf_search_wandb.__all__


@pytest.mark.parametrize("namespace", SUB_NAMESPACES)
def test_every_name_of_a_sub_namespace_resolves_to_its_defining_module(namespace: str) -> None:
    module = importlib.import_module(namespace)
    assert module.__all__, namespace
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isfunction(value) or inspect.isclass(value):  # defined where the namespace says
            assert value.__module__ == module._EXPORTS[name], (namespace, name)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = module.nope


@pytest.mark.parametrize("name", sorted(hf_search_wandb._MOVED))
def test_a_moved_name_still_resolves_and_says_where_it_lives_now(name: str) -> None:
    new_home = importlib.import_module(hf_search_wandb._MOVED[name])
    with pytest.warns(DeprecationWarning, match=rf"moved to {hf_search_wandb._MOVED[name]}\.{name}"):
        value = getattr(hf_search_wandb, name)
    assert value is getattr(new_home, name)
    assert name not in hf_search_wandb.__all__

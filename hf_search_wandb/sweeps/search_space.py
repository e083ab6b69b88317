"""A sweep config's parameters as Optuna distributions, and what a drawn value means in wandb's terms.

One place decides, for each parameter of a validated `SweepConfig`, the Optuna distribution the engine samples
(`distributions`), the value a trial sees for a raw draw (`effective`: wandb's `q_` forms round the draw to a
multiple of `q`), and so which draws are the same parameter set (`params_key`). `suggest` samples a trial
through these; the distinct sampler (`distinct.py`) uses the same functions to refuse a set already drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hf_search_wandb.sweeps.config import ParameterSpec, SweepConfig


class SearchSpaceUsedUp(RuntimeError):
    """No parameter set that the sweep has not drawn is left (or could be found): the sweep stops."""


#: Distributions whose drawn values are exactly the values a trial sees, and few enough to enumerate.
ENUMERABLE = frozenset({"categorical", "categorical_w_probabilities", "int_uniform"})


def distribution(spec: ParameterSpec, *, grid: bool = False) -> Any:
    """The Optuna distribution `spec` is sampled from (None for a constant).

    Example:
        >>> from hf_search_wandb.sweeps.config import ParameterSpec
        >>> distribution(ParameterSpec("lr", "log_uniform_values", {"min": 1e-5, "max": 1e-3}))
        FloatDistribution(high=0.001, log=True, low=1e-05, step=None)
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    args, dist = spec.args, spec.distribution
    if dist == "constant":
        return None
    if grid or dist in ("categorical", "categorical_w_probabilities"):
        return CategoricalDistribution(spec.grid_values() or [])
    lo, hi = args["min"], args["max"]
    if dist == "int_uniform":
        return IntDistribution(int(lo), int(hi))
    if dist in ("uniform", "q_uniform"):
        return FloatDistribution(float(lo), float(hi))
    bounds = {
        "log_uniform": (math.exp(lo), math.exp(hi)),
        "q_log_uniform": (math.exp(lo), math.exp(hi)),
        "log_uniform_values": (lo, hi),
        "q_log_uniform_values": (lo, hi),
        "inv_log_uniform": (math.exp(-hi), math.exp(-lo)),
        "inv_log_uniform_values": (lo, hi),
    }[dist]
    return FloatDistribution(float(bounds[0]), float(bounds[1]), log=True)


def distributions(cfg: SweepConfig) -> dict[str, Any]:
    """`{name: distribution}` of the parameters a trial samples (constants left out)."""
    out = {spec.name: distribution(spec, grid=cfg.method == "grid") for spec in cfg.parameters.values()}
    return {name: dist for name, dist in out.items() if dist is not None}


def effective(spec: ParameterSpec, raw: Any) -> Any:
    """The value a trial sees for the raw draw `raw`: `round(raw / q) * q` for the `q_` forms.

    Example:
        >>> from hf_search_wandb.sweeps.config import ParameterSpec
        >>> effective(ParameterSpec("bs", "q_uniform", {"min": 8, "max": 64, "q": 8}), 21.3)
        24
    """
    if spec.distribution in ("q_uniform", "q_log_uniform", "q_log_uniform_values"):
        return quantize(raw, spec.args.get("q", 1))
    return raw


def quantize(value: float, q: float) -> float | int:
    out = round(value / q) * q
    return int(out) if float(q).is_integer() else out


def suggest(trial: Any, cfg: SweepConfig) -> dict[str, Any]:
    """Sample the trial's parameters (flat, dotted names) the way wandb defines each distribution."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    out: dict[str, Any] = {}
    for spec in cfg.parameters.values():
        dist = distribution(spec, grid=cfg.method == "grid")
        if dist is None:
            out[spec.name] = spec.args["value"]
        elif isinstance(dist, CategoricalDistribution):
            out[spec.name] = trial.suggest_categorical(spec.name, list(dist.choices))
        elif isinstance(dist, IntDistribution):
            out[spec.name] = trial.suggest_int(spec.name, dist.low, dist.high)
        else:
            out[spec.name] = effective(
                spec, trial.suggest_float(spec.name, dist.low, dist.high, log=dist.log)
            )
    return out


def params_key(cfg: SweepConfig, params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """What makes two trials the same parameter set: the effective values of the sampled parameters.

    Example:
        >>> from hf_search_wandb.sweeps.config import load_sweep_config
        >>> cfg = load_sweep_config({"method": "random", "count": 2, "metric": {"name": "val/mrr@10",
        ...     "goal": "maximize"}, "parameters": {"bs": {"distribution": "q_uniform", "min": 8, "max": 64, "q": 8}}})
        >>> params_key(cfg, {"bs": 23.0}) == params_key(cfg, {"bs": 24.9})
        True
    """
    return tuple(
        sorted(
            (name, effective(cfg.parameters[name], value))
            for name, value in params.items()
            if name in cfg.parameters
        )
    )


def enumerable_values(cfg: SweepConfig) -> dict[str, list[Any]] | None:
    """The distinct values of each sampled parameter when every one is categorical or an integer range (the
    sweep's parameter sets can then be listed), else None."""
    out: dict[str, list[Any]] = {}
    for spec in cfg.parameters.values():
        if spec.distribution == "constant":
            continue
        if spec.distribution not in ENUMERABLE and cfg.method != "grid":
            return None
        values = spec.grid_values()
        if values is None:
            return None
        out[spec.name] = list(dict.fromkeys(values))
    return out


def space_size(cfg: SweepConfig) -> int | None:
    """How many distinct parameter sets the sweep can draw, None when unbounded (a continuous parameter)."""
    values = enumerable_values(cfg)
    return None if values is None else math.prod(len(v) for v in values.values())

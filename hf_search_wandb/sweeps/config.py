"""Sweep configs in wandb's YAML form, validated before anything runs.

`load_sweep_config` reads a YAML file or a dict (`program`, `method`, `metric`, `parameters`,
`early_terminate`, plus a top-level `count`), checks it, and returns a `SweepConfig`. Every problem found
is collected and raised together as one `SweepConfigError`, so a config is fixed in one pass:

* `count` (the maximum number of runs) is mandatory: random and bayes sweeps never finish on their own.
* `grid` is refused with 4 or more varying parameters or more than 20 combinations; the message shows
  the number of runs and the time they would take (the seed's example: 7 parameters x 3 values =
  2,187 runs, about 91 days at 1 h per run) and what to do instead.
* unknown distribution names, `min >= max`, a metric the callback does not log, a goal other than
  `minimize` / `maximize` (and a missing goal: wandb would silently minimise), unknown keys.

Why over 400 lines: it validates every part of wandb's sweep schema (method, metric, parameters and
distributions, early termination, count and grid size) and reports every problem at once; the checks share one
error collector.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hf_search_wandb.core.metrics.measures import is_logged, logged_forms, logged_goal

#: wandb's sweep distributions (https://docs.wandb.ai/models/sweeps/sweep-config-keys) and the keys each takes.
DISTRIBUTIONS: dict[str, frozenset[str]] = {
    "constant": frozenset({"value"}),
    "categorical": frozenset({"values"}),
    "categorical_w_probabilities": frozenset({"values", "probabilities"}),
    "int_uniform": frozenset({"min", "max"}),
    "uniform": frozenset({"min", "max"}),
    "q_uniform": frozenset({"min", "max", "q"}),
    "log_uniform": frozenset({"min", "max"}),
    "log_uniform_values": frozenset({"min", "max"}),
    "q_log_uniform": frozenset({"min", "max", "q"}),
    "q_log_uniform_values": frozenset({"min", "max", "q"}),
    "inv_log_uniform": frozenset({"min", "max"}),
    "inv_log_uniform_values": frozenset({"min", "max"}),
    "normal": frozenset({"mu", "sigma"}),
    "q_normal": frozenset({"mu", "sigma", "q"}),
    "log_normal": frozenset({"mu", "sigma"}),
    "q_log_normal": frozenset({"mu", "sigma", "q"}),
    "beta": frozenset({"a", "b"}),
    "q_beta": frozenset({"a", "b", "q"}),
}
METHODS = ("bayes", "grid", "random")
GOALS = ("minimize", "maximize")
TOP_LEVEL_KEYS = frozenset(
    {"program", "method", "metric", "parameters", "early_terminate", "command", "name", "description",
     "project", "entity", "run_cap", "count", "controller", "kind", "apiVersion", "job", "image_uri"}
)
HYPERBAND_KEYS = frozenset({"type", "min_iter", "max_iter", "s", "eta", "strict"})
MAX_GRID_PARAMETERS = 3
MAX_GRID_RUNS = 20

class SweepConfigError(ValueError):
    """A sweep config that must not run; `reasons` lists every problem found, each with what to do."""

    def __init__(self, reasons: list[str], source: str = "sweep config") -> None:
        self.reasons = list(reasons)
        self.source = source
        lines = "\n".join(f"  - {reason}" for reason in self.reasons)
        super().__init__(f"{source} is not valid ({len(self.reasons)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class ParameterSpec:
    """One swept parameter: its (dotted) name, wandb distribution and that distribution's arguments."""

    name: str
    distribution: str
    args: Mapping[str, Any]

    def grid_values(self) -> list[Any] | None:
        """The values a grid visits, or None when the parameter is continuous."""
        args = self.args
        if self.distribution == "constant":
            return [args["value"]]
        if self.distribution in ("categorical", "categorical_w_probabilities"):
            return list(args["values"])
        if self.distribution == "int_uniform":
            return list(range(int(args["min"]), int(args["max"]) + 1))
        if self.distribution == "q_uniform":
            q = float(args.get("q", 1.0))
            n = math.floor((float(args["max"]) - float(args["min"])) / q + 1e-9) + 1
            return [float(args["min"]) + i * q for i in range(n)]
        return None


@dataclass
class SweepConfig:
    """A validated sweep config.

    Attributes:
        raw: the config as written (without `count`).
        method: `bayes`, `grid` or `random`.
        metric: the optimised metric as the callback logs it, e.g. `val/mrr@10`.
        goal: `maximize` or `minimize`.
        parameters: flattened parameter specs (nested `parameters` blocks get dotted names).
        count: the maximum number of runs in the whole sweep (all agents together).
        early_terminate: the `early_terminate` block, or None.
        warnings: advice that does not block the sweep (e.g. no `early_terminate`).
    """

    raw: dict[str, Any]
    method: str
    metric: str
    goal: str
    parameters: dict[str, ParameterSpec]
    count: int
    early_terminate: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The sweep's name (`name` in the file, else `sweep`)."""
        return str(self.raw.get("name") or "sweep")

    @property
    def direction(self) -> str:
        """Optuna's direction for `goal`."""
        return "maximize" if self.goal == "maximize" else "minimize"

    def grid_size(self) -> int | None:
        """Number of grid combinations, or None when a parameter is continuous."""
        return grid_combinations(self.parameters)

    def to_wandb(self) -> dict[str, Any]:
        """The dict to give `wandb.sweep`: wandb's keys only, `count` carried as `run_cap`."""
        config = {k: v for k, v in self.raw.items() if k != "count"}
        config.setdefault("run_cap", self.count)
        return config


def grid_combinations(parameters: Mapping[str, ParameterSpec]) -> int | None:
    """The number of runs a grid over `parameters` makes (None if one is continuous).

    Example:
        >>> spec = ParameterSpec("lr", "categorical", {"values": [1, 2, 3]})
        >>> grid_combinations({"lr": spec, "bs": ParameterSpec("bs", "int_uniform", {"min": 1, "max": 4})})
        12
    """
    total = 1
    for spec in parameters.values():
        values = spec.grid_values()
        if values is None:
            return None
        total *= len(values)
    return total


def recommended_config_path() -> Path:
    """The shipped YAML with the spec's recommended search space for retrieval models."""
    return Path(str(resources.files("hf_search_wandb.sweeps") / "recommended.yaml"))


def read_sweep_yaml(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read a sweep config from a YAML path or a dict (copied) without validating it."""
    if isinstance(source, Mapping):
        return dict(source)
    import yaml

    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"Sweep config {path} does not exist.")
    with path.open(encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise SweepConfigError([f"not valid YAML{where}: {getattr(err, 'problem', None) or err}; fix the "
                                    "syntax (`key: value` pairs, nested blocks indented with spaces)"], str(path)) from err
    if not isinstance(data, dict):
        raise SweepConfigError([f"the file must hold a mapping of sweep keys, got {type(data).__name__}"], str(path))
    return data


def load_sweep_config(
    source: str | Path | Mapping[str, Any],
    *,
    count: int | None = None,
    hours_per_run: float = 1.0,
    extra_metrics: tuple[str, ...] = (),
) -> SweepConfig:
    """Read and validate a sweep config; raise `SweepConfigError` listing every problem.

    Args:
        source: a YAML file path or a dict in wandb's sweep form.
        count: the maximum number of runs; overrides a top-level `count` key (one of the two is required).
        hours_per_run: the time one run takes, for the grid-size message.
        extra_metrics: metric names your own code logs, accepted besides the callback's.

    Returns:
        The validated `SweepConfig`.

    Raises:
        SweepConfigError: with `reasons`, one line per problem and what to do about it.

    Example:
        >>> config = load_sweep_config(recommended_config_path())
        >>> config.method, config.metric, config.count, len(config.parameters)
        ('bayes', 'val/mrr@10', 30, 8)
    """
    label = str(source) if not isinstance(source, Mapping) else "sweep config"
    raw = read_sweep_yaml(source)
    problems: list[str] = []
    warnings: list[str] = []

    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    for key in unknown:
        problems.append(f"unknown top-level key {key!r}{_did_you_mean(key, TOP_LEVEL_KEYS)}")

    resolved_count = _check_count(raw, count, problems)
    method = raw.get("method")
    if method not in METHODS:
        problems.append(f"method must be one of bayes, grid, random (got {method!r})")
    metric_name, goal = _check_metric(raw.get("metric"), extra_metrics, problems)

    parameters: dict[str, ParameterSpec] = {}
    if isinstance(raw.get("parameters"), Mapping):
        raw["parameters"] = _normalized(raw["parameters"])  # what wandb.sweep receives, too
    params_raw = raw.get("parameters")
    if not isinstance(params_raw, Mapping) or not params_raw:
        problems.append("parameters must be a non-empty mapping of parameter name -> search space")
    else:
        _collect_parameters(params_raw, "", parameters, problems)

    if method == "grid" and parameters:
        _check_grid(parameters, hours_per_run, problems)

    early = raw.get("early_terminate")
    if early is None:
        warnings.append("no early_terminate: poor runs will train to the end (add `early_terminate: "
                        "{type: hyperband, min_iter: 3, eta: 3}`)")
    else:
        _check_early_terminate(early, problems)

    if problems:
        raise SweepConfigError(problems, label)
    return SweepConfig(
        raw={k: v for k, v in raw.items() if k != "count"},
        method=str(method),
        metric=str(metric_name),
        goal=str(goal),
        parameters=parameters,
        count=int(resolved_count or 0),
        early_terminate=dict(early) if isinstance(early, Mapping) else None,
        warnings=warnings,
    )


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_NUMERIC_KEYS = frozenset({"min", "max", "mu", "sigma", "q", "a", "b"})


def _numeric(value: Any) -> Any:
    """YAML 1.1 reads `1e-6` (no dot) as a string; wandb users write it that way, so read it as a number."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and re.fullmatch(r"[+-]?\d+", value.strip()) else number
    return value


def _normalized(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter specs with numeric strings (`"1e-6"`) turned into numbers, nested blocks included."""
    out: dict[str, Any] = {}
    for name, spec in params.items():
        if not isinstance(spec, Mapping):
            out[name] = spec
        elif isinstance(spec.get("parameters"), Mapping):
            out[name] = {**spec, "parameters": _normalized(spec["parameters"])}
        else:
            out[name] = {k: _numeric(v) if k in _NUMERIC_KEYS else v for k, v in spec.items()}
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_count(raw: Mapping[str, Any], count: int | None, problems: list[str]) -> int | None:
    value = count if count is not None else raw.get("count", raw.get("run_cap"))
    if value is None:
        problems.append("count (the maximum number of runs) is required: add `count: 20` to the config or "
                        "pass --count 20 (random and bayes sweeps never stop on their own)")
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        problems.append(f"count must be a positive integer (got {value!r})")
        return None
    return value


def _check_metric(metric: Any, extra: tuple[str, ...], problems: list[str]) -> tuple[str | None, str | None]:
    if not isinstance(metric, Mapping) or not metric.get("name"):
        problems.append("metric is required: `metric: {name: val/mrr@10, goal: maximize}`")
        return None, None
    name, goal = str(metric["name"]), metric.get("goal")
    if not is_logged(name) and name not in extra:
        hint = _did_you_mean(name, ("val/mrr@10", "val/ndcg@10", "val/recall@100", "val/map", "val/hit@10",
                                    "val/loss", "train/loss"))
        problems.append(f"metric {name!r} is not logged by SearchWandbCallback{hint}; it logs {logged_forms()}")
    expected = {"max": "maximize", "min": "minimize", None: None}[logged_goal(name)]
    if goal is None:
        problems.append(f"metric.goal is required: wandb defaults to minimize, which would pick the worst "
                        f"{name}; write `goal: {expected or 'maximize'}`")
    elif goal not in GOALS:
        problems.append(f"metric.goal must be minimize or maximize (got {goal!r})")
    elif expected is not None and goal != expected:
        kind = "a loss" if expected == "minimize" else "higher-is-better"
        problems.append(f"metric {name} is {kind}: goal must be {expected}, not {goal}")
    unknown = sorted(set(metric) - {"name", "goal", "target", "impute", "impute_while_running"})
    problems.extend(f"unknown metric key {key!r}" for key in unknown)
    return name, goal


def _infer_distribution(spec: Mapping[str, Any]) -> str | None:
    if "distribution" in spec:
        return str(spec["distribution"])
    if "values" in spec:
        return "categorical_w_probabilities" if "probabilities" in spec else "categorical"
    if "value" in spec:
        return "constant"
    if "min" in spec and "max" in spec:
        both_int = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
        return "int_uniform" if both_int else "uniform"
    return None


def _collect_parameters(
    params: Mapping[str, Any], prefix: str, out: dict[str, ParameterSpec], problems: list[str]
) -> None:
    for key, spec in params.items():
        name = f"{prefix}{key}"
        if not isinstance(spec, Mapping):
            problems.append(f"parameter {name}: write `{{values: [...]}}`, `{{value: x}}` or a distribution, "
                            f"not {spec!r}")
            continue
        if "parameters" in spec and isinstance(spec["parameters"], Mapping):
            _collect_parameters(spec["parameters"], f"{name}.", out, problems)
            continue
        dist = _infer_distribution(spec)
        if dist is None:
            problems.append(f"parameter {name}: give `values`, `value`, or `distribution` with its arguments")
            continue
        if dist not in DISTRIBUTIONS:
            problems.append(f"parameter {name}: unknown distribution {dist!r}{_did_you_mean(dist, DISTRIBUTIONS)}; "
                            f"wandb knows {', '.join(DISTRIBUTIONS)}")
            continue
        args = {k: _numeric(v) if k in _NUMERIC_KEYS else v for k, v in spec.items() if k != "distribution"}
        before = len(problems)
        _check_distribution(name, dist, args, problems)
        if len(problems) == before:
            out[name] = ParameterSpec(name, dist, args)


def _check_distribution(name: str, dist: str, args: Mapping[str, Any], problems: list[str]) -> None:
    allowed = DISTRIBUTIONS[dist]
    for key in sorted(set(args) - allowed):
        problems.append(f"parameter {name}: {dist} does not take {key!r} (it takes {', '.join(sorted(allowed))})")
    if "values" in allowed:
        values = args.get("values")
        if not isinstance(values, list) or not values:
            problems.append(f"parameter {name}: values must be a non-empty list")
        elif dist == "categorical_w_probabilities":
            probs = args.get("probabilities")
            if not isinstance(probs, list) or len(probs) != len(values) or abs(sum(probs) - 1) > 1e-6:
                problems.append(f"parameter {name}: probabilities must list one number per value, summing to 1")
        return
    if dist == "constant":
        if "value" not in args:
            problems.append(f"parameter {name}: constant needs `value`")
        return
    if "min" in allowed:
        lo: Any = args.get("min")
        hi: Any = args.get("max")
        if not (_is_number(lo) and _is_number(hi)):
            problems.append(f"parameter {name}: {dist} needs numeric min and max (got min={lo!r}, max={hi!r})")
            return
        if lo >= hi:
            problems.append(f"parameter {name}: min ({lo}) must be smaller than max ({hi})")
        if dist == "int_uniform" and not (isinstance(lo, int) and isinstance(hi, int)):
            problems.append(f"parameter {name}: int_uniform needs integer min and max")
        if dist.endswith("_values") and lo <= 0:
            problems.append(f"parameter {name}: {dist} needs min > 0 (got {lo})")
        if dist in ("log_uniform", "q_log_uniform", "inv_log_uniform") and lo >= 0 and hi <= 1 and lo < hi:
            problems.append(
                f"parameter {name}: {dist} takes natural-log exponents, so min={lo}, max={hi} samples "
                f"e^{lo}..e^{hi} ({math.exp(lo):.6g}..{math.exp(hi):.6g}); for a range of values such as "
                f"a learning rate use `distribution: {dist}_values`"
            )
    if "sigma" in allowed and _is_number(args.get("sigma", 1.0)) and args.get("sigma", 1.0) < 0:
        problems.append(f"parameter {name}: sigma must be >= 0")
    for key in ("a", "b"):
        if key in allowed and not (_is_number(args.get(key, 1.0)) and args.get(key, 1.0) >= 0):
            problems.append(f"parameter {name}: {key} must be a number >= 0")
    if "q" in allowed and not (_is_number(args.get("q", 1.0)) and args.get("q", 1.0) > 0):
        problems.append(f"parameter {name}: q must be a number > 0")


def _check_grid(parameters: Mapping[str, ParameterSpec], hours_per_run: float, problems: list[str]) -> None:
    continuous = [p.name for p in parameters.values() if p.grid_values() is None]
    if continuous:
        problems.append(f"method grid needs discrete parameters, but {', '.join(continuous)} "
                        "is continuous (a grid over it never ends): list `values` or use method random/bayes")
        return
    sizes = [len(p.grid_values() or ()) for p in parameters.values()]
    varying = [s for s in sizes if s > 1]
    runs = math.prod(sizes)
    if len(varying) <= MAX_GRID_PARAMETERS and runs <= MAX_GRID_RUNS:
        return
    hours = runs * hours_per_run
    problems.append(
        f"method grid would train {runs:,} runs ({len(varying)} parameters: {' x '.join(map(str, varying))}), "
        f"about {hours:,.0f} h = {hours / 24:,.0f} days at {hours_per_run:g} h per run. grid is for at most "
        f"{MAX_GRID_PARAMETERS} parameters and {MAX_GRID_RUNS} runs: use method random to explore wide "
        f"(10-20 runs), then bayes to narrow down (20-50 runs), or fix some parameters with `value:`"
    )


def _check_early_terminate(early: Any, problems: list[str]) -> None:
    if not isinstance(early, Mapping):
        problems.append("early_terminate must be a mapping such as {type: hyperband, min_iter: 3, eta: 3}")
        return
    if early.get("type") != "hyperband":
        problems.append(f"early_terminate.type must be hyperband (got {early.get('type')!r})")
    for key in sorted(set(early) - HYPERBAND_KEYS):
        problems.append(f"unknown early_terminate key {key!r}{_did_you_mean(key, HYPERBAND_KEYS)}")
    has_min, has_max = "min_iter" in early, "max_iter" in early
    if not has_min and not (has_max and "s" in early):
        problems.append("early_terminate needs min_iter, or max_iter together with s")
    for key in ("min_iter", "max_iter", "s"):
        value = early.get(key)
        if key in early and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            problems.append(f"early_terminate.{key} must be an integer >= 1 (got {value!r})")
    eta = early.get("eta", 3)
    if not (_is_number(eta) and eta > 1):
        problems.append(f"early_terminate.eta must be a number > 1 (got {eta!r})")
    lo: Any = early.get("min_iter")
    hi: Any = early.get("max_iter")
    if has_min and has_max and _is_number(lo) and _is_number(hi) and lo > hi:
        problems.append(f"early_terminate.min_iter ({lo}) must not exceed max_iter ({hi})")

"""The online sweep: `wandb.sweep` registers the validated config, `wandb.agent` runs trials.

The W&B server owns the search (bayes / random / grid) and hyperband early termination; each agent
asks it for parameters, and the train function below opens the run (`wandb.init()` inside the agent
picks the parameters up as `wandb.config`) and calls the program with them. `count` is sent as the
sweep's `run_cap` (the cap across all agents) and given to this agent as its own `count`.

Tests cover this path up to the server boundary: only `wandb.sweep` and `wandb.agent` are faked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hf_search_wandb.sweeps.config import SweepConfig, load_sweep_config
from hf_search_wandb.sweeps.pruning import SweepMetricCheck
from hf_search_wandb.sweeps.training import Program
from hf_search_wandb.tracking.run_options import sweep_destination

logger = logging.getLogger(__name__)


def agent_function(program: Program, *, project: str | None = None, entity: str | None = None,
                   metric: str | None = None) -> Callable[[], None]:
    """The no-argument function `wandb.agent` calls once per run.

    It opens the run (wandb fills `run.config` with the parameters the server chose), calls
    `program(dict(run.config), callbacks)` and finishes the run (exit code 1 if the program raised).
    With `metric`, `callbacks` holds a `SweepMetricCheck` that fails the run at its first evaluation when
    the program does not produce the sweep metric.

    Example:
        >>> train = agent_function(lambda config, callbacks: {"eval_val_mrr@10": 0.5})
        >>> callable(train)
        True
    """

    def train() -> None:
        from hf_search_wandb.tracking.wandb_api import require_wandb

        wandb = require_wandb()
        run = wandb.init(project=project, entity=entity, job_type="sweep-trial")
        try:
            program(_plain(run.config), [SweepMetricCheck(metric)] if metric else [])
        except Exception:
            logger.exception("Sweep trial %s failed", run.id)
            run.finish(exit_code=1)
            raise
        if not getattr(run, "_is_finished", False):
            run.finish()

    return train


def run_online_sweep(
    config: SweepConfig | str | Path | Mapping[str, Any],
    program: Program,
    *,
    project: str | None = None,
    entity: str | None = None,
    count: int | None = None,
    sweep_id: str | None = None,
) -> str:
    """Create a wandb sweep (unless `sweep_id` is given) and run one agent for `count` runs.

    Args:
        config: a validated `SweepConfig`, or a YAML path / dict to validate first.
        program: the trial train function, `program(config_dict, callbacks)`.
        project / entity: where the sweep lives; default: the config's `project:`/`entity:`, else
            `WANDB_PROJECT`/`WANDB_ENTITY`, else `search-model-training`.
        count: runs for this agent (and the sweep's `run_cap` when it is created here).
        sweep_id: join an existing sweep (e.g. from another machine) instead of creating one.

    Returns:
        The sweep id (give it to agents on other machines).

    Example (needs a W&B server, so it is not run as a doctest)::

        sweep_id = run_online_sweep("sweep.yaml", BiEncoderProgram(data="data/scifact"), count=20)
    """
    from hf_search_wandb.tracking.wandb_api import require_wandb

    cfg = config if isinstance(config, SweepConfig) else load_sweep_config(config, count=count)
    runs = count if count is not None else cfg.count
    project, entity = sweep_destination(cfg.raw, project, entity)
    wandb = require_wandb()
    if sweep_id is None:
        wandb_config = cfg.to_wandb()
        if count is not None:
            wandb_config["run_cap"] = count
        sweep_id = str(wandb.sweep(wandb_config, project=project, entity=entity))
        logger.info("Created sweep %s in %s; join from other machines with --sweep-id %s", sweep_id, project, sweep_id)
    wandb.agent(sweep_id, function=agent_function(program, project=project, entity=entity, metric=cfg.metric), count=runs,
                project=project, entity=entity)
    return sweep_id


def _plain(config: Any) -> dict[str, Any]:
    """wandb.config as a plain dict (nested sections as dicts)."""
    items = config.as_dict() if hasattr(config, "as_dict") else dict(config)
    return {k: v for k, v in items.items() if not str(k).startswith("_")}

"""Sweeps: validated wandb sweep configs, wandb agents online, an Optuna engine offline."""

from hf_search_wandb.sweeps.config import (
    ParameterSpec,
    SweepConfig,
    SweepConfigError,
    load_sweep_config,
    recommended_config_path,
)
from hf_search_wandb.sweeps.local import LocalSweepResult, run_local_sweep
from hf_search_wandb.sweeps.online import run_online_sweep
from hf_search_wandb.sweeps.pruning import OptunaPruningCallback, SweepMetricCheck, SweepMetricMissingError
from hf_search_wandb.sweeps.training import BiEncoderProgram, Program, training_arguments

__all__ = [
    "BiEncoderProgram",
    "LocalSweepResult",
    "OptunaPruningCallback",
    "ParameterSpec",
    "Program",
    "SweepConfig",
    "SweepConfigError",
    "SweepMetricCheck",
    "SweepMetricMissingError",
    "load_sweep_config",
    "recommended_config_path",
    "run_local_sweep",
    "run_online_sweep",
    "training_arguments",
]

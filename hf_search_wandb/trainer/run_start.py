"""Which run a `train()` call starts: the wandb mode, the SPEC §1 config read from the trainer, the run
settings (project, name, tags by the precedence rule), and the run a resumed checkpoint belongs to; then
`tracking.run.TrackedRun.start`, which owns the run from there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from hf_search_wandb.tracking.log_keys import STEP_KEY
from hf_search_wandb.tracking.run import TrackedRun, current_run_id
from hf_search_wandb.tracking.run_history import ReadBack
from hf_search_wandb.tracking.run_options import ST_TRAINER_PROJECT, RunSettings, resolve_run_settings
from hf_search_wandb.tracking.run_setup import collect_config, default_run_name, default_tags
from hf_search_wandb.tracking.wandb_api import resolve_mode
from hf_search_wandb.trainer.best_model import recover_best
from hf_search_wandb.trainer.options import SearchWandbConfig
from hf_search_wandb.trainer.resume import read_resume_info, read_resumed


@dataclass
class StartedRun:
    """A run `start_run` started (or reused), with the settings and config it started with."""

    tracked: TrackedRun
    settings: RunSettings
    config: dict[str, Any]
    resumed: bool  # it continues the run of the checkpoint training resumed from
    read_back: ReadBack = field(default_factory=ReadBack)  # what the resumed run held: history, artifacts


def run_config(
    options: SearchWandbConfig, args: Any, *, model: Any, tokenizer: Any, trainer: Any, event: dict[str, Any],
    evaluator: Any,
) -> dict[str, Any]:  # fmt: skip
    """The run config (`run_setup.collect_config`) from the arguments, the model and what the trainer holds;
    without a trainer, the training data loader the event carries."""
    train_dataset = getattr(trainer, "train_dataset", None)
    if train_dataset is None:  # no trainer: the data loader the event carries
        train_dataset = getattr(event.get("train_dataloader"), "dataset", None)
    return collect_config(
        args,
        model=model,
        tokenizer=tokenizer,
        loss=getattr(trainer, "loss", None) or getattr(trainer, "compute_loss_func", None),
        train_dataset=train_dataset,
        eval_dataset=getattr(trainer, "eval_dataset", None),
        evaluator=evaluator,
        options=options,
        callbacks=getattr(getattr(trainer, "callback_handler", None), "callbacks", ()),
    )


def run_settings(options: SearchWandbConfig, args: Any, state: Any, config: dict[str, Any]) -> RunSettings:
    """Project, name, tags, ... by the precedence rule (argument > WANDB_* > run_name > automatic)."""
    return resolve_run_settings(
        options, args=args, trial_name=getattr(state, "trial_name", None),
        automatic_name=lambda: default_run_name(config["model_type"], config["base_model"], config["dataset_name"]),
        automatic_tags=lambda: default_tags(config),
    )  # fmt: skip


def start_run(
    options: SearchWandbConfig, args: Any, state: Any, *, model: Any, tokenizer: Any, trainer: Any,
    event: dict[str, Any], evaluator: Any, resume_from: str | None, user_run_id: str | None,
    say: Callable[[str], Any], took_over: bool = False,
) -> StartedRun | None:  # fmt: skip
    """Start this training's run; None when wandb is disabled (said through `say`).

    `took_over`: a transformers `WandbCallback` was silenced in this very event, after it had run; the
    active run, unless it is the user's (`user_run_id`), is then the one it started (`TrackedRun.start`'s
    `adopted`): on transformers 4 (`report_to="all"` by default) with `trainer.add_callback(...)`.

    A training resumed from a checkpoint (`options.resume`) continues the run recorded beside it, keeps its
    name and project, and skips the steps that run already holds (read before `wandb.init` adds this
    session's folder)."""
    choice = resolve_mode(options.mode)
    if choice.reason:
        say(choice.reason)
    if choice.mode == "disabled":
        say("wandb disabled: nothing will be logged")
        return None
    config = run_config(options, args, model=model, tokenizer=tokenizer, trainer=trainer, event=event,
                        evaluator=evaluator)  # fmt: skip
    settings = run_settings(options, args, state, config)
    resume: dict[str, Any] = {}
    if options.resume and state.global_step > 0:
        resume = read_resume_info(args.output_dir, state.global_step, resume_from)
    if resume.get("name") and settings.sources.get("name", "automatic") == "automatic":
        settings = replace(settings, name=resume["name"])  # the resumed run keeps its name
    back = read_resumed(resume, STEP_KEY, warn=say) if resume else ReadBack()
    recover_best(args.output_dir)  # a best-model swap a kill interrupted: the complete copy wins
    if resume.get("project"):
        settings = replace(settings, project=resume["project"])
    st_default = os.environ.get("WANDB_PROJECT") == ST_TRAINER_PROJECT
    if st_default and settings.sources.get("project") == "automatic":
        say(f"WANDB_PROJECT={ST_TRAINER_PROJECT} was set by sentence-transformers' trainer, not by you: logging to "
            f"project {settings.project!r} (pass project={ST_TRAINER_PROJECT!r} to keep theirs)")  # fmt: skip
    adopted = took_over and current_run_id() is not None and current_run_id() != user_run_id
    tracked = TrackedRun.start(
        settings, mode=choice.mode, config=config, directory=options.dir, resume_id=resume.get("run_id"),
        held=back.held if resume else None, user_run_id=user_run_id, adopted=adopted,
        background=options.log_in_background, say=say,
    )  # fmt: skip
    return StartedRun(tracked, settings, config, resumed=bool(resume), read_back=back)

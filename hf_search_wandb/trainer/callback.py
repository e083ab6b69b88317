"""`SearchWandbCallback`: one `TrainerCallback` that logs search-model training to wandb (SPEC §1, §2).

Works on a `transformers.Trainer` and a `SentenceTransformerTrainer`. Event order it relies on:
`Trainer.evaluate` calls `log(metrics)` *before* `on_evaluate`, so evaluation metrics arriving in
`on_log` are held and logged together with the callback's own evaluation in `on_evaluate`, as one row
at `train/global_step`. Only the main process holds the run.

The callback keeps the Trainer events and the decisions (when to evaluate, what is the best, what to save);
what it writes goes through one `tracking.run.TrackedRun`, which owns the wandb run. Key names are
`tracking/log_keys.py`, the run's start `run_start.py`, evaluators `evaluator_set.py`, the best model
`best_model.py`, signals `preemption.py`.

Why over 400 lines: transformers dispatches every event to one object, so the event methods of
`SearchWandbCallback` live in one class, and each event's decisions with it.
"""

from __future__ import annotations

import atexit
import functools
import logging
import signal
import weakref
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from transformers import TrainerCallback

from hf_search_wandb.tracking.log_keys import (
    EPOCH_KEY,
    EPOCH_LOSS_KEY,
    LOSS_KEY,
    PEAK_MEMORY_KEY,
    THROUGHPUT_KEY,
    VAL,
    VAL_LOSS_KEY,
    best_summary,
    best_summary_of,
    eval_prefix,
    evaluator_names_in,
    media_namespace,
    metric_key,
    metrics_under,
    namespace_of,
    route_evaluation,
    split_logs,
)
from hf_search_wandb.tracking.run import TrackedRun, current_run_id
from hf_search_wandb.tracking.run_options import RunSettings
from hf_search_wandb.tracking.run_setup import CONFIG_KEYS
from hf_search_wandb.tracking.wandb_api import require_installed
from hf_search_wandb.trainer import trainer_link
from hf_search_wandb.trainer.best_model import (
    BestEvaluation,
    ModelArtifact,
    best_artifact,
    checkpoint_artifact,
    resumed_best,
    save_best,
)
from hf_search_wandb.trainer.comparisons import EvaluationComparisons, targets
from hf_search_wandb.trainer.evaluator_set import (
    RESERVED_NAMES,
    EvaluatorSet,
    adopt_evaluators,
    adoption_line,
    computed_metrics,
    encoder_for,
    evaluator_name,
    evaluator_set,
    flatten_evaluators,
    missing_metrics,
)
from hf_search_wandb.trainer.options import SearchWandbConfig
from hf_search_wandb.trainer.preemption import SignalGuard
from hf_search_wandb.trainer.resume import save_run_file
from hf_search_wandb.trainer.run_start import start_run
from hf_search_wandb.trainer.run_state import EpochStats
from hf_search_wandb.trainer.self_evaluation import (
    SelfEvaluation,
    evaluation_metrics,
    self_evaluation,
    trainer_evaluates,
)
from hf_search_wandb.trainer.warn_once import WarnOnce

logger = logging.getLogger(__name__)

NO_TRAINER = (
    "no Trainer found for SearchWandbCallback (link it with `SearchWandbCallback.attach(trainer)`): "
    "logging what the event arguments carry; dataset sizes, the loss name and marking a failed "
    "train() as failed are unavailable"
)
_Event = TypeVar("_Event", bound=Callable[..., Any])


def with_run(event: _Event) -> _Event:
    """The rank-0 rule, declared once: the event runs only in the process holding the wandb run (the main
    process, wandb not disabled); elsewhere it returns None at once."""

    @functools.wraps(event)
    def guarded(self: SearchWandbCallback, *args: Any, **kwargs: Any) -> Any:
        return None if self.tracked is None else event(self, *args, **kwargs)

    return guarded  # type: ignore[return-value]


def _finish_at_exit(ref: weakref.ReferenceType[SearchWandbCallback]) -> None:
    """The exit hook: finish the callback's run if the callback still exists and holds one."""
    callback = ref()
    if callback is not None:
        callback.finish()


class SearchWandbCallback(TrainerCallback):
    """Log the prescribed `train/`, `val/` and `system/` metrics, tables and artifacts to one wandb run.

    Args:
        evaluator: a `RetrievalEvaluator`, a list of them or a `SequentialEvaluator`. With a plain `Trainer`
            the callback runs them on each evaluation (on every rank; rank 0 logs) and adds
            `eval_{name}_{metric}` to the trainer's metrics, so `metric_for_best_model="eval_val_mrr@10"` works.
            With a `SentenceTransformerTrainer` that already runs them (`evaluator=`), their results are reused,
            never recomputed. One evaluator logs to `val/`; several each to `{name}/`. Optional.
        primary: with several evaluators, the one (its name or the object) best tracking and the model
            artifact follow; default: the first.
        config: a `SearchWandbConfig`; `**overrides` replace its fields.

    Example:
        >>> from hf_search_wandb.trainer.callback import SearchWandbCallback
        >>> cb = SearchWandbCallback(mode="disabled", dataset_name="scifact")
        >>> cb.options.dataset_name, cb.options.wandb_project  # None: WANDB_PROJECT, else search-model-training
        ('scifact', None)
    """

    def __init__(
        self,
        evaluator: Any = None,
        *,
        primary: Any = None,
        config: SearchWandbConfig | None = None,
        **overrides: Any,
    ) -> None:
        base = config if config is not None else SearchWandbConfig()
        known = {f.name for f in fields(SearchWandbConfig)} | {"project"}
        config_values = {k: overrides.pop(k) for k in list(overrides) if k not in known and k in CONFIG_KEYS}
        if config_values:  # run-config keys (pooling_mode=..., seed=...) go straight into the config
            overrides["config_overrides"] = {**base.overrides, **config_values}
        self.options = base.updated(**overrides) if overrides else base
        if self.options.mode != "disabled":
            require_installed()
        evaluator, adopted = adopt_evaluators(evaluator)  # sentence-transformers' own: ours in their place
        evaluator_set(evaluator, primary=primary)  # duplicate or reserved names, an unknown primary: fail now
        self.evaluator = evaluator
        self.primary = primary
        self.tracked: TrackedRun | None = None  # the run this process logs into (rank 0, not disabled)
        self.run_dir: Path | None = None
        self.run_config: dict[str, Any] = {}
        self.settings: RunSettings | None = None
        self.best = BestEvaluation.of(self.options.eval_metric)
        self._comparisons = EvaluationComparisons()  # each evaluation against the start and the best
        self._best_metric = self.options.eval_metric  # eval_metric resolved against the evaluators
        self._best_primary = primary
        self._training = False  # inside train(); after it the run stays open for post-training evaluations
        self._exit_hook = False
        self._trainer: Any = None
        self._args: Any = None
        self._state: Any = None
        self._resume_from: str | None = None
        self._pending_val: dict[str, Any] = {}
        self._say = WarnOnce(logger)
        self._n_evals = 0
        self._evals_in_train = 0  # evaluations seen during train(), on every rank
        self._self_eval: SelfEvaluation | None = None  # set when the trainer never evaluates
        self._signals = SignalGuard(self._on_signal)
        self._cuda = False
        self._epoch: EpochStats | None = None
        # A run the user started before building the callback is theirs: reused, never finished by us.
        self._user_run_id = current_run_id()
        for outcome in adopted:
            self._say(adoption_line(outcome))

    # ------------------------------------------------------------------ linking to the trainer
    @classmethod
    def attach(
        cls, trainer: Any, evaluator: Any = None, *, config: SearchWandbConfig | None = None, **overrides: Any
    ) -> SearchWandbCallback:
        """Link a callback to `trainer` explicitly and return it: the supported way to give it the trainer.

        Adds a new callback built from `evaluator`, `config` and `**overrides` to the trainer, or, called
        with the trainer alone, links the `SearchWandbCallback` the trainer already has (from
        `callbacks=[...]` or `add_callback`). Linked, the callback reads the trainer's datasets, loss and
        evaluator, takes over transformers' `WandbCallback`, and marks the wandb run failed when `train()`
        raises (it wraps this trainer's public `train` method; nothing private is patched).

        Example (`trainer` is any `transformers.Trainer` or `SentenceTransformerTrainer`)::

            callback = SearchWandbCallback.attach(trainer, evaluator, dataset_name="scifact")
            trainer.train()
        """
        handler = trainer.callback_handler
        existing = [cb for cb in handler.callbacks if isinstance(cb, SearchWandbCallback)]
        if existing:
            if evaluator is not None or config is not None or overrides:
                raise ValueError(
                    "this trainer already has a SearchWandbCallback: call SearchWandbCallback.attach(trainer) "
                    "without other arguments to link that one, or remove it first"
                )
            callback = existing[0]
        else:
            callback = cls(evaluator, config=config, **overrides)
            trainer.add_callback(callback)
        callback._link(trainer)
        return callback

    def _link(self, trainer: Any) -> bool:
        """Keep `trainer`, guard its `train()`, silence its WandbCallbacks; True when one was silenced."""
        self._trainer = trainer
        self._adopt_trainer_evaluator(trainer)
        trainer_link.guard_train(trainer, self._fail, self._note_train_call)
        silenced = trainer_link.silence_wandb_callbacks(trainer.callback_handler)
        if silenced and trainer.state.is_world_process_zero:
            self._say("transformers' WandbCallback (report_to=wandb) found: taking over, it will log nothing")
        return bool(silenced)

    def _adopt_trainer_evaluator(self, trainer: Any) -> None:
        """Put ours in place of the sentence-transformers evaluators the trainer runs (`evaluator=`), saying so
        once on the main process; their keys stay (`core.evaluation.adoption`)."""
        if getattr(trainer, "evaluator", None) is None:
            return
        trainer.evaluator, adopted = adopt_evaluators(trainer.evaluator)
        if getattr(trainer.state, "is_world_process_zero", True):
            for outcome in adopted:
                self._say(adoption_line(outcome))

    def _note_train_call(self, resume_from_checkpoint: Any) -> None:
        if self.tracked is not None and not self._training:
            self.finish()  # the previous train()'s run, kept open for its post-training evaluations
        if self.tracked is not None:
            # the previous train() never reached on_train_end: it raised before its trainer was guarded
            # (added with add_callback, linked during that call) and the exception was caught by the caller
            self._fail("the previous train() call ended without on_train_end")
        self._resume_from = resume_from_checkpoint if isinstance(resume_from_checkpoint, str) else None

    def _find_trainer(self, args: Any) -> tuple[Any, bool]:
        """The linked trainer if it runs these `args`, else the fallback lookup (linking what it finds);
        and whether a transformers `WandbCallback` was silenced just now."""
        trainer = self._trainer
        if trainer is None or trainer.args is not args:
            trainer = trainer_link.find_trainer_in_stack()
            if trainer is not None:
                return trainer, self._link(trainer)
            return None, False
        return trainer, bool(trainer_link.silence_wandb_callbacks(trainer.callback_handler))

    # ------------------------------------------------------------------ helpers
    def _check_eval_metric(self) -> None:
        """Resolve `eval_metric` against the linked evaluators, before training starts: our names (`mrr@10`) or
        an adopted sentence-transformers evaluator's (`cosine_ndcg@10`, or `scifact_cosine_ndcg@10` naming the
        evaluator). One no evaluator computes is refused (it would silently disable best tracking and the
        best-model artifact)."""
        metric = self.options.eval_metric
        self._best_metric, self._best_primary = metric, self.primary
        evaluators = self._evaluators()
        model = getattr(self._trainer, "model", None)
        computed = {evaluator_name(ev): computed_metrics(ev, model) for ev in evaluators}
        computed = {name: names for name, names in computed.items() if names}
        if evaluators and not computed and metric != "loss" and getattr(self._state, "is_world_process_zero", True):
            kinds = ", ".join(sorted({type(ev).__name__ for ev in evaluators}))
            self._say(
                f"no retrieval evaluator among the trainer's ({kinds}): their metrics are logged, but best tracking "
                f"on {metric!r}, the best-model artifact and the retrieval tables need one. Fix: add a "
                f"RetrievalEvaluator (or RerankingEvaluator) to SearchWandbCallback(...) or the trainer"
            )
        if metric == "loss" or not computed or any(metric in names for names in computed.values()):
            return
        for name, names in sorted(computed.items(), key=lambda item: -len(item[0])):
            if name and metric.startswith(f"{name}_") and metric[len(name) + 1 :] in names:
                self._best_metric = metric[len(name) + 1 :]
                if len(evaluators) > 1:
                    self._best_primary = name
                return
        first = next(iter(computed.values()))
        raise ValueError(
            f"eval_metric={metric!r} is not computed by the evaluator (it computes {', '.join(first)}): "
            f"best tracking and the best-model artifact would never trigger. Set eval_metric to one of those, "
            f"or add {metric!r} to the evaluator's metrics."
        )

    @property
    def active(self) -> bool:
        """True while this process holds a live run (main process, mode not disabled)."""
        return self.tracked is not None

    @property
    def run(self) -> Any:
        """The wandb run this process logs into (to read its id, name, config); None when it holds none."""
        return self.tracked.wandb_run if self.tracked is not None else None

    def _log(self, row: dict[str, Any], step: int) -> None:
        if self.tracked is not None:
            self.tracked.log(row, step)

    def _flush(self, *, stop: bool = False) -> None:
        if self.tracked is not None:
            self.tracked.flush(stop=stop)

    def _summarise(self, values: dict[str, Any]) -> None:
        if self.tracked is not None:
            self.tracked.update_summary(values)

    def _set(self) -> EvaluatorSet:
        """The callback's evaluators, then the trainer's own, flattened; and the primary one."""
        trainer_evaluator = getattr(self._trainer, "evaluator", None)
        return evaluator_set(self.evaluator, trainer_evaluator, primary=self._best_primary, strict=False)

    def _evaluators(self) -> list[Any]:
        return list(self._set().evaluators)

    # ------------------------------------------------------------------ run set-up
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # `callbacks=[...]`: transformers passes no trainer to on_init_end either; link it now (before
        # train() is called) so that train() is guarded from its first call.
        self._find_trainer(args)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        trainer, took_over = self._find_trainer(args)
        if trainer is None and state.is_world_process_zero:
            self._say(NO_TRAINER)
        if trainer is not None:  # an evaluator set on the trainer after it was linked
            self._adopt_trainer_evaluator(trainer)
        # each train() call is one run: per-run state starts afresh (hyperparameter search re-trains)
        self._epoch, self._pending_val, self._n_evals = None, {}, 0
        self._args, self._state = args, state
        self._check_eval_metric()
        self.best = BestEvaluation.of(self._best_metric)
        self._comparisons = EvaluationComparisons()
        self._evals_in_train = 0
        self._self_eval = None
        if self._evaluators() and not trainer_evaluates(args):  # every rank: the evaluators may shard
            self._self_eval = self_evaluation(args, state)
            if state.is_world_process_zero:
                self._say(
                    f"the trainer never evaluates (eval_strategy='no'): SearchWandbCallback runs its evaluator "
                    f"itself, {self._self_eval.schedule} and at the end of training"
                )
        if self.tracked is not None and not self._training:
            self.finish()  # the previous train()'s run, kept open for its post-training evaluations
        if self.tracked is not None:
            # Still open: `auto_find_batch_size` retries this train() after an out-of-memory error (a failed
            # train() closes its run on leaving it). Same run; the steps the failed attempt logged stay.
            self.tracked.hold_logged()
            self._say(f"train() restarted inside the same call: continuing wandb run {self.tracked.id}")
            return
        if not state.is_world_process_zero:
            return
        started = start_run(
            self.options, args, state, model=model, tokenizer=kwargs.get("processing_class"), trainer=trainer,
            event=kwargs, evaluator=next(iter(self._evaluators()), None), resume_from=self._resume_from,
            user_run_id=self._user_run_id, say=self._say, took_over=took_over,
        )  # fmt: skip
        if started is None:
            return
        import torch

        self._cuda = torch.cuda.is_available()
        tracked = self.tracked = started.tracked
        self.settings, self.run_config = started.settings, started.config
        self._training = True
        if not self._exit_hook:  # registered after wandb's own exit hook, so ours runs first
            atexit.register(_finish_at_exit, weakref.ref(self))  # weak: a finished sweep trial's callback can go
            self._exit_hook = True
        self.run_dir = tracked.run_dir  # where the run lives on disk (offline: what `wandb sync` takes)
        if took_over:
            self._say(f"took over transformers' WandbCallback: its run {tracked.id} is reused and renamed {tracked.name}")
        elif tracked.reused:
            self._say(f"reusing the active wandb run {tracked.id}")
        if started.resumed:
            self._say(f"resumed wandb run {tracked.id}; it holds the steps up to {tracked.held.last_step}")
        evaluators = self._set()
        if started.resumed:  # the best so far comes back from the run's history: `best` never moves back
            self.best = resumed_best(
                self.options.eval_metric, evaluators.headline_key(self.options.eval_metric),
                started.read_back.history, started.read_back.artifacts, run_id=tracked.id, output_dir=args.output_dir,
            )  # fmt: skip
            self._summarise(best_summary_of(self.best.as_metadata()))
        for ev in evaluators.evaluators:
            for metric in getattr(ev, "metrics", ()) or ():
                tracked.define(metric_key(evaluators.namespace(ev), metric))
        tracked.define(VAL_LOSS_KEY)
        # `watch=` / `WANDB_WATCH`: gradients / parameters every `logging_steps` steps
        tracked.watch(model, started.settings.watch, int(getattr(state, "logging_steps", 0) or 0) or 1)
        self._signals.restore()  # the SIGTERM-only guard of a run left open by an earlier train()
        self._signals.install()
        if self.options.dataset_artifact:
            self._log_dataset(trainer)

    @property
    def model_artifact(self) -> str:
        """The model-artifact policy in force: best | end | checkpoint | off (see `run_options`)."""
        if self.settings is not None:
            return self.settings.model_artifact
        return self.options.model_artifact or "best"

    def _write_run_file(self, directory: Path, state: Any) -> None:
        if self.tracked is not None:
            save_run_file(directory, self.tracked.resume_record(state.global_step), say=self._say)

    def _log_dataset(self, trainer: Any) -> None:
        train = getattr(trainer, "train_dataset", None)
        if self.tracked is None:
            return
        if train is None:
            self._say("no train_dataset on the trainer: the dataset artifact is skipped")
            return
        cfg = self.run_config
        self.tracked.log_dataset(
            dataset_name=cfg.get("dataset_name") or "data", train=train, val=getattr(trainer, "eval_dataset", None),
            metadata={k: cfg.get(k) for k in ("train_size", "val_size", "negative_sampling", "num_hard_negatives")},
        )  # fmt: skip

    # ------------------------------------------------------------------ training metrics
    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._close_epoch(args, state)
        self._epoch = EpochStats(step0=state.global_step)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._epoch is not None:
            self._epoch.finish(state.global_step)
        if self._self_eval is not None and self._self_eval.due_at_epoch_end(state.global_step):
            self._evaluate_myself(args, state, control, kwargs)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._self_eval is not None and self._self_eval.due_at_step(state.global_step):
            self._evaluate_myself(args, state, control, kwargs)

    def _samples(self, args: Any, steps: int) -> int:
        return (
            steps
            * args.per_device_train_batch_size
            * args.gradient_accumulation_steps
            * max(1, args.world_size)
        )

    def _close_epoch(self, args: Any, state: Any) -> None:
        """Log train/epoch_loss and system/throughput of a finished epoch (after its trailing logs)."""
        epoch, self._epoch = self._epoch, None
        if self.tracked is None or epoch is None or epoch.end_step is None:
            return
        row: dict[str, Any] = {}
        mean_loss = epoch.mean_loss()
        if mean_loss is not None:
            row[EPOCH_LOSS_KEY] = mean_loss
        if epoch.steps > 0 and epoch.elapsed() > 0:
            row[THROUGHPUT_KEY] = self._samples(args, epoch.steps) / epoch.elapsed()
        self._log(row, epoch.end_step)

    @with_run
    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not logs:
            return
        if self._pending_val:
            self._flush_val(state)
        split = split_logs(logs, self._set().names, grad_norm=self.options.log_grad_norm)
        self._summarise(split.summary)
        if split.val:
            self._pending_val = split.val
            return
        row = split.train
        if not row.keys() - {EPOCH_KEY}:
            return
        if LOSS_KEY in row and self._epoch is not None:
            self._epoch.add_loss(state.global_step, float(row[LOSS_KEY]))
        if self._cuda and self.options.log_peak_memory:
            import torch

            row[PEAK_MEMORY_KEY] = torch.cuda.max_memory_allocated() / 2**30
        if self.options.log_system_every_log and self._epoch is not None:
            seconds = self._epoch.elapsed()
            steps = state.global_step - self._epoch.step0
            if seconds > 0 and steps > 0:
                row[THROUGHPUT_KEY] = self._samples(args, steps) / seconds
        self._log(row, state.global_step)

    # ------------------------------------------------------------------ evaluation
    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        prefix = eval_prefix(metrics or {}) or "eval"
        self._evals_in_train += prefix == "eval"  # reset by on_train_begin; read by on_train_end
        self._evaluate_if_needed(state, metrics, kwargs.get("model"), kwargs.get("processing_class"), prefix)
        if self.tracked is None:
            return
        evaluators = self._set()
        val = route_evaluation(metrics, evaluators.names, prefix) if metrics else self._pending_val
        self._pending_val = {}
        in_training = self._training and prefix == "eval"
        self._log_evaluation(val, state.global_step, define=in_training)
        ran = self._ran(metrics or {}, prefix)
        for ev in ran:  # a collapsed model: its metrics reflect the tie order only; the run says so
            warning = getattr(getattr(ev, "last_result", None), "tie_warning", None)
            if warning:
                self._summarise({f"{evaluators.namespace(ev)}/tie_warning": f"step {state.global_step}: {warning}"})
        compared = targets(evaluators, ran, prefix)
        if not in_training:  # after train() (or a test prefix): its metrics and tables, no best tracking
            self._comparisons.evaluated(self.tracked, compared, state.global_step, self._best_metric, compare=False)
            if not self._training and self.options.log_tables != "off":
                self._log_media(state.global_step, prefix, ran)
            return
        self._n_evals += 1
        every = self.options.tables_every  # against the start and the best; the regressions table with the media
        tables_now = bool(every and self._n_evals % every == 0)
        self._log(self._comparisons.evaluated(
            self.tracked, compared, state.global_step, self._best_metric, tables_now=tables_now), state.global_step)
        headline_key = evaluators.headline_key(self._best_metric)
        headline = val.get(headline_key)
        if headline is not None and self.best.update(
            float(headline), step=state.global_step, epoch=state.epoch,
            metrics=metrics_under(val, (VAL, namespace_of(headline_key))),
        ):  # fmt: skip
            self._summarise(best_summary(self._best_metric, float(headline), state.global_step))
            if self.model_artifact in ("best", "end"):
                self._save_best(args, kwargs.get("model"), kwargs.get("processing_class"))
                if self.model_artifact == "best":
                    self._log_model(best_artifact(args.output_dir, self.best, self.run_config))
        if tables_now:
            self._log_media(state.global_step, prefix, ran)

    @with_run
    def on_predict(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        """`trainer.predict(...)`: its metrics (`test/loss`, and a SentenceTransformerTrainer's evaluator's)
        and tables, into the same run at the current step."""
        if not metrics:
            return
        prefix = eval_prefix(metrics) or "test"
        self._log_evaluation(route_evaluation(metrics, self._set().names, prefix), state.global_step, define=False)
        if self.options.log_tables != "off":
            self._log_media(state.global_step, prefix, self._ran(metrics, prefix))

    def evaluate(
        self, evaluator: Any, trainer: Any = None, *, name: str | None = None, model: Any = None
    ) -> dict[str, float]:
        """Evaluate another evaluator (e.g. a test split) on the trainer's model and log it into the run.

        Its metrics go to `{name}/...` (default: the evaluator's `name`, else `test`) at the trainer's current
        step, with its own tables (`{name}/retrieval_examples`, ...). Call it on every process in a distributed
        run (the evaluator shards the corpus); the main process logs.

        Args:
            evaluator: a `RetrievalEvaluator` (or any sentence-transformers evaluator).
            trainer: the trainer whose model to evaluate; default: the one the callback is linked to.
            name: the namespace; default `evaluator.name`, else `test`.
            model: evaluate this model instead of the trainer's.

        Returns:
            The logged values, `{"{name}/{metric}": value}`.
        """
        trainer = trainer if trainer is not None else self._trainer
        model = model if model is not None else getattr(trainer, "model", None)
        if model is None:
            raise ValueError("SearchWandbCallback.evaluate needs a model: pass trainer= or model=")
        evaluator, adopted = adopt_evaluators(evaluator)
        for outcome in adopted:
            self._say(adoption_line(outcome))
        namespace = name or evaluator_name(evaluator) or "test"
        if namespace in RESERVED_NAMES:
            raise ValueError(f"name={namespace!r} is a namespace the callback writes itself: choose another")
        tokenizer = getattr(trainer, "processing_class", None)
        if hasattr(evaluator, "last_result") and not hasattr(
            evaluator, "their_keys"
        ):  # ours: metrics and rankings
            raw = evaluator.evaluate(encoder_for(model, tokenizer, evaluator)).metrics
        else:
            own = evaluator_name(evaluator)
            raw = {k.removeprefix(f"{own}_") if own else k: v for k, v in evaluator(model).items()}
        values = {metric_key(namespace, metric): float(value) for metric, value in raw.items()}
        if self.tracked is None:
            if self.run_dir is not None:
                self._say(f"{namespace}: the wandb run is already finished, these metrics are not logged")
            return values
        state = getattr(trainer, "state", None) or self._state
        step = int(getattr(state, "global_step", 0) or 0)
        self._flush()
        self._log_evaluation(dict(values), step, define=False)
        if self.options.log_tables != "off" and getattr(evaluator, "last_result", None) is not None:
            self._log_media_of(evaluator, step, namespace)
        return values

    def _ran(self, metrics: dict[str, Any], prefix: str) -> list[Any]:
        """The evaluators whose metrics this evaluation holds (all of them when the keys carry no names)."""
        evaluators = self._set()
        names = set(evaluator_names_in(metrics, prefix, evaluators.names))
        return [e for e in evaluators.evaluators if evaluator_name(e) in names] or list(evaluators.evaluators)

    def _log_evaluation(self, row: dict[str, Any], step: int, *, define: bool) -> None:
        """One evaluation's row; during training its retrieval metrics get their summary goal (max/min)."""
        if self.tracked is None:
            return
        if define:
            self.tracked.define_all(row)
        self.tracked.log(row, step)

    def _evaluate_if_needed(
        self, state: Any, metrics: dict[str, float] | None, model: Any, tokenizer: Any, prefix: str = "eval"
    ) -> None:
        """Run the callback's evaluators (all ranks) unless the trainer already did; put their metrics into the
        trainer's `metrics` dict (`eval_{name}_{metric}`) and last log-history entry.

        Only for the trainer's own evaluations (`eval` prefix): a `test` prefix means another split, which the
        callback's (validation) evaluators do not hold; use `callback.evaluate(test_evaluator)` for it."""
        if model is None or metrics is None or prefix != "eval":
            return
        if getattr(self._trainer, "evaluator", None) is not None:
            # A SentenceTransformerTrainer runs its own evaluator on rank 0 only; where its metrics were not
            # broadcast (accelerate's CPU DDP), evaluating here would start collectives rank 0 never joins.
            return
        added = missing_metrics(flatten_evaluators(self.evaluator), metrics, model, tokenizer)
        metrics.update(added)
        if added and state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(added)

    def _flush_val(self, state: Any) -> None:
        val, self._pending_val = self._pending_val, {}
        self._log_evaluation(val, state.global_step, define=self._training)

    # ------------------------------------------------------------------ tables and the best model
    def _log_media(self, step: int, prefix: str = "eval", ran: list[Any] | None = None) -> None:
        """Tables and histograms of the evaluators that ran (`log_keys.media_namespace` says under which keys)."""
        evaluators = self._set()
        targets = [e for e in (ran if ran is not None else evaluators.evaluators)
                   if getattr(e, "last_result", None) is not None]  # fmt: skip
        for ev in targets:
            namespace = media_namespace(
                prefix, evaluator_name(ev), several=evaluators.several, several_ran=len(targets) > 1
            )
            self._log_media_of(ev, step, namespace)

    def _log_media_of(self, ev: Any, step: int, namespace: str) -> None:
        result = getattr(ev, "last_result", None)
        if result is None or self.tracked is None:
            return
        o = self.options
        self.tracked.log_media(
            result, ev, step=step, namespace=namespace, num_examples=o.num_examples, k=o.examples_k,
            error_k=o.error_k, histograms=o.log_histograms, seed=o.table_seed,
        )  # fmt: skip

    def _save_best(self, args: Any, model: Any, tokenizer: Any) -> None:
        """Save the current (best) model to `{output_dir}/wandb-best-model`, replacing the previous best."""
        saved = save_best(model, args.output_dir, tokenizer, evaluator=self._set().primary, trainer=self._trainer,
                          say=self._say)  # fmt: skip
        self.best.unsaved = saved is None  # then no artifact: the folder holds an earlier model

    def _log_model(self, artifact: ModelArtifact | None) -> None:
        if artifact is not None and self.tracked is not None:
            self.tracked.log_model(
                artifact.directory, metadata=artifact.metadata, description=artifact.description,
                aliases=artifact.aliases,
            )  # fmt: skip

    # ------------------------------------------------------------------ checkpoints and the end
    @with_run
    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._flush()  # every row up to the checkpoint goes to wandb before the checkpoint counts as saved
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if checkpoint.is_dir():
            self._write_run_file(checkpoint, state)
            if self.model_artifact == "checkpoint":  # each checkpoint a version; alias `best` follows the best
                self._log_model(checkpoint_artifact(
                    checkpoint, self.best, step=state.global_step, epoch=state.epoch, run_config=self.run_config
                ))  # fmt: skip

    def _evaluate_myself(self, args: Any, state: Any, control: Any, kwargs: dict[str, Any]) -> None:
        """One evaluation the trainer did not run (`self_evaluation`): computed on every rank, recorded in the
        trainer's log history, then handled as the trainer's own (`on_evaluate`: rows, best, artifact)."""
        model = kwargs.get("model")
        tokenizer = kwargs.get("processing_class") or kwargs.get("tokenizer")
        if model is None:
            return
        if self._self_eval is None:
            self._self_eval = SelfEvaluation(None)
        self._self_eval.last_step = state.global_step
        metrics = evaluation_metrics(self._trainer, self.evaluator, model, tokenizer)
        if not metrics:
            return
        state.log_history.append({**metrics, "epoch": state.epoch, "step": state.global_step})
        self.on_evaluate(args, state, control, metrics=metrics, model=model, processing_class=tokenizer)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self._self_eval is not None and self._self_eval.due_at_end(state.global_step):
            self._evaluate_myself(args, state, control, {**kwargs, "model": model})
        elif (
            self._self_eval is None and self._evals_in_train == 0 and self._evaluators() and model is not None
        ):
            if state.is_world_process_zero:
                self._say(
                    "the trainer never ran an evaluation during train() although eval_strategy is set (a custom "
                    "Trainer?): SearchWandbCallback ran its evaluator once now, at the end of training"
                )
            self._evaluate_myself(args, state, control, {**kwargs, "model": model})
        self._signals.restore()
        if self.tracked is not None:
            self._end(args, state, model, kwargs)
        if self.tracked is not None:  # left open for evaluations after train(): a preemption still closes it
            self._signals.install((signal.SIGTERM,))

    def _end(self, args: Any, state: Any, model: Any, kwargs: dict[str, Any]) -> None:
        if self._pending_val:
            self._flush_val(state)
        self._close_epoch(args, state)
        if self.options.log_tables == "end" or (
            self.options.tables_every and self._n_evals % self.options.tables_every
        ):
            self._log_media(state.global_step)
        if self.model_artifact == "end":
            if not self.best:
                self._save_best(args, model, kwargs.get("processing_class"))
            self._log_model(best_artifact(args.output_dir, self.best, self.run_config))
        self._summarise(best_summary_of(self.best.as_metadata()))
        self._write_run_file(Path(args.output_dir), state)
        self._flush(stop=True)
        self._training = False
        if self.options.finish_on_train_end:
            self.finish()
        # else the run stays open: evaluations after train() log into it; `finish()`, the next `train()` or the
        # process exit close it

    def finish(self) -> None:
        """Finish the run this callback started (a run you started yourself is left to you).

        Called for you when the process exits and when the next `train()` starts; call it yourself after your
        last post-training `trainer.evaluate()` / `callback.evaluate(...)` in a long-lived process (a notebook).
        """
        self._signals.restore()
        tracked, self.tracked = self.tracked, None
        self._training = False
        if tracked is not None:
            tracked.finish()

    def _fail(self, error: BaseException | str) -> None:
        """`train()` raised: keep what was logged, record where we got, mark the run failed (exit code 1).

        Never raises: the training's own exception is what the user must see."""
        self._signals.restore()
        tracked = self.tracked
        if tracked is None:
            return
        cause = error if isinstance(error, str) else f"training raised {type(error).__name__}"
        self._say(f"{cause}: finishing wandb run {tracked.id} as failed")
        try:
            if self._state is not None:
                if self._pending_val:
                    self._flush_val(self._state)
                self._write_run_file(Path(self._args.output_dir), self._state)
        except Exception as err:  # keep the training's exception the one that propagates
            self._say(f"could not flush the run before marking it failed: {err!r}")
        finally:
            self.tracked = None
            self._training = False
            tracked.fail()

    def _on_signal(self, signum: int, fatal: bool) -> None:
        """SIGTERM/SIGINT during train() (SIGTERM after it, while the run is open): every queued row and the
        resume record to disk; when the signal ends the process (`fatal`), finish the run as failed (exit code
        128 + signal), marked preempting."""
        tracked = self.tracked
        if tracked is None:
            return
        try:
            if self._pending_val and self._state is not None:
                self._flush_val(self._state)
            tracked.flush(stop=fatal)
            if self._state is not None:
                self._write_run_file(Path(self._args.output_dir), self._state)
        except Exception as err:  # the process is going down: save what can be saved
            self._say(f"could not flush the run on signal {signum}: {err!r}")
        if fatal:
            self.tracked = None
            tracked.preempted(signum)

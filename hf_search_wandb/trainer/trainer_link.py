"""How the callback reaches the trainer it serves, and notices when `train()` raises.

transformers hands every event the model, processing class, optimizer, scheduler and data loaders, but
never the trainer (transformers 5: `on_init_end` receives the same keyword arguments as every other event,
with both data loaders `None`). The callback uses those arguments for all it can. For what only the trainer
has (its datasets, loss and evaluator, its callback list, the `train()` entry) it is linked to the trainer:

1. explicitly: `SearchWandbCallback.attach(trainer)`;
2. otherwise by `find_trainer_in_stack` — the one hack, used once per `train()` when no trainer was attached
   (`Trainer(callbacks=[cb])` at `on_init_end`, `trainer.add_callback(cb)` at `on_train_begin`).

A failure is seen by wrapping the trainer instance's public `train` method (`guard_train`): an exception
that leaves `train()` is a failed training. `auto_find_batch_size` retries out-of-memory errors inside
`train()` (transformers' `find_executable_batch_size`), so a retried OOM never leaves it and is not a failure.
No private `Trainer` method is patched, no error message is read.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

EVENTS = (
    "on_init_end",
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_step_begin",
    "on_pre_optimizer_step",
    "on_optimizer_step",
    "on_substep_end",
    "on_step_end",
    "on_evaluate",
    "on_predict",
    "on_save",
    "on_log",
    "on_prediction_step",
    "on_push_begin",
)
GUARD_MARK = "_hf_search_wandb_train_guard"


def find_trainer_in_stack(max_depth: int = 16) -> Any | None:
    """The `transformers.Trainer` whose method is running the current callback event, or None.

    Only a fallback when the callback was not `attach`ed; called once per `train()`, never per step.
    Tested in `tests/test_callback_lifecycle.py::test_the_stack_lookup_finds_the_trainer_of_the_running_event`.
    """
    # Hack: transformers passes no trainer to callbacks. Inside an event the caller chain is
    # `Trainer.<method>` -> `CallbackHandler.call_event` -> the callback, so the nearest frame whose `self`
    # is a `Trainer` is the one.
    from transformers import Trainer

    frame = inspect.currentframe()
    try:
        frame = frame.f_back if frame is not None else None
        for _ in range(max_depth):
            if frame is None:
                return None
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, Trainer):
                return candidate
            frame = frame.f_back
        return None
    finally:
        del frame


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def silence_wandb_callbacks(handler: Any) -> list[Any]:
    """Turn off every transformers `WandbCallback` in `handler` (a trainer's `callback_handler`) and remove it.

    Its event methods become no-ops on the instance first (the handler may be iterating over the old
    list right now), then the handler gets a new list without it. Returns the callbacks silenced.
    """
    try:
        from transformers.integrations import WandbCallback
    except ImportError:  # pragma: no cover - transformers always ships it
        return []
    found = [cb for cb in list(getattr(handler, "callbacks", [])) if isinstance(cb, WandbCallback)]
    for cb in found:
        for event in EVENTS:
            setattr(cb, event, _noop)
        setattr(cb, "_hf_search_wandb_silenced", True)  # noqa: B010 - a marker for users and tests
    if found:
        handler.callbacks = [cb for cb in handler.callbacks if not any(cb is f for f in found)]
    return found


def guard_train(
    trainer: Any,
    on_error: Callable[[BaseException], None],
    on_call: Callable[[Any], None] | None = None,
) -> bool:
    """Wrap `trainer.train` (on this instance only) so an exception leaving it calls `on_error` first.

    `on_call(resume_from_checkpoint)` runs before each call. The exception is re-raised unchanged, whatever
    its type (`KeyboardInterrupt` included). Idempotent: returns False when the trainer is already guarded.

    Example:
        >>> class Trainer:
        ...     def train(self, resume_from_checkpoint=None):
        ...         raise KeyboardInterrupt
        >>> seen = []
        >>> trainer = Trainer()
        >>> guard_train(trainer, lambda err: seen.append(type(err).__name__))
        True
        >>> try:
        ...     trainer.train()
        ... except KeyboardInterrupt:
        ...     pass
        >>> seen
        ['KeyboardInterrupt']
    """
    current = getattr(trainer, "train", None)
    if not callable(current) or getattr(current, GUARD_MARK, False):
        return False

    @functools.wraps(current)
    def train(*args: Any, **kwargs: Any) -> Any:
        if on_call is not None:
            on_call(kwargs.get("resume_from_checkpoint", args[0] if args else None))
        try:
            return current(*args, **kwargs)
        except BaseException as err:
            on_error(err)
            raise

    setattr(train, GUARD_MARK, True)
    trainer.train = train
    return True

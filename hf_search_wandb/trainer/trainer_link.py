"""How the callback reaches the trainer it is attached to, and shares it with transformers' `WandbCallback`.

Callbacks receive no trainer reference. Inside an event, though, the caller is always
`CallbackHandler.call_event` (whose `self` is the handler, holding every callback), called from a
`Trainer` method (whose `self` is the trainer). `find_in_stack` walks a few frames up to find them; it
is only used at train start, never per step.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

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
GUARDED_METHODS = ("training_step", "_maybe_log_save_evaluate", "get_batch_samples")


def find_in_stack(cls: type | tuple[type, ...], *, max_depth: int = 12, local: str = "self") -> Any | None:
    """The nearest caller's local `local` that is an instance of `cls`, searching `max_depth` frames up.

    Example:
        >>> class Box:
        ...     def call(self, fn):
        ...         return fn()
        >>> box = Box()
        >>> box.call(lambda: find_in_stack(Box)) is box
        True
    """
    frame = inspect.currentframe()
    try:
        frame = frame.f_back if frame is not None else None
        for _ in range(max_depth):
            if frame is None:
                return None
            value = frame.f_locals.get(local)
            if isinstance(value, cls):
                return value
            frame = frame.f_back
        return None
    finally:
        del frame


def find_handler() -> Any | None:
    """The `CallbackHandler` dispatching the current event, or None outside an event."""
    from transformers.trainer_callback import CallbackHandler

    return find_in_stack(CallbackHandler)


def find_trainer() -> Any | None:
    """The `transformers.Trainer` (or subclass) whose method fired the current event, or None."""
    from transformers import Trainer

    return find_in_stack(Trainer, max_depth=16)


def find_resume_checkpoint() -> str | None:
    """The `resume_from_checkpoint` path of the `Trainer.train` call in progress (already resolved from
    `True` to a directory by transformers), or None."""
    from transformers import Trainer

    frame = inspect.currentframe()
    try:
        for _ in range(20):
            if frame is None:
                return None
            loc = frame.f_locals
            if isinstance(loc.get("self"), Trainer) and "resume_from_checkpoint" in loc:
                value = loc["resume_from_checkpoint"]
                return value if isinstance(value, str) else None
            frame = frame.f_back
        return None
    finally:
        del frame


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def silence_wandb_callbacks(handler: Any) -> list[Any]:
    """Turn off every transformers `WandbCallback` in `handler` and remove it from the list.

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


def guard_trainer(trainer: Any, on_error: Callable[[BaseException], None]) -> Callable[[], None]:
    """Wrap the trainer's per-step methods so an exception escaping training calls `on_error` first.

    `Trainer.train` has no failure event (`on_train_end` only fires on success), so the callback wraps,
    for the duration of one `train()` call, the methods the training loop calls on each step. Returns a
    function that restores them. An out-of-memory error while `auto_find_batch_size` retries is not a
    failure.
    """
    originals: dict[str, Any] = {}

    def wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except BaseException as err:
                retry = getattr(trainer.args, "auto_find_batch_size", False) and "out of memory" in str(err)
                if not retry:
                    on_error(err)
                raise

        return guarded

    for name in GUARDED_METHODS:
        method = getattr(trainer, name, None)
        if callable(method) and name not in vars(trainer):
            originals[name] = method
            setattr(trainer, name, wrap(name, method))

    def restore() -> None:
        for name in originals:
            vars(trainer).pop(name, None)

    return restore

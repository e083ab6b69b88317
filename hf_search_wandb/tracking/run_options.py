"""Where a run goes and what it is called: the precedence rule, resolved once per `train()` (SPEC §9).

For each setting the first source that gives a value wins:

1. an explicit argument of the callback (`SearchWandbConfig` field, or the same key in `init_kwargs`);
2. the `WANDB_*` environment variable transformers' own `WandbCallback` (and wandb) read (the user's: not
   the `WANDB_PROJECT=sentence-transformers` that sentence-transformers' trainers set themselves);
3. `TrainingArguments.run_name` when the user set it (transformers 5 defaults it to `None`), and, during
   `Trainer.hyperparameter_search`, the trial's name (like transformers' callback);
4. our automatic value.

Nothing here logs or imports wandb: `resolve_run_settings` turns options, arguments and the environment
into a `RunSettings`, which `run_setup.init_run` hands to `wandb.init`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

DEFAULT_PROJECT = "search-model-training"
#: What sentence-transformers' trainers put in `WANDB_PROJECT` (`os.environ.setdefault`, every version from
#: 3 to 6) when transformers' `WandbCallback` is among their callbacks, i.e. when `report_to` includes wandb
#: (transformers 4's default `"all"` does): their default, not the user's choice (`user_environment`).
ST_TRAINER_PROJECT = "sentence-transformers"
#: `WANDB_LOG_MODEL` value -> our `model_artifact` policy.
LOG_MODEL_VALUES = {"false": "off", "end": "end", "checkpoint": "checkpoint"}
ARTIFACT_POLICIES = ("best", "end", "checkpoint", "off")
WATCH_VALUES = ("gradients", "parameters", "all", "false")
#: wandb.init keywords with a dedicated option (set those instead of passing them in `init_kwargs`).
RESERVED_INIT_KWARGS = {"config": "config_overrides", "mode": "mode", "dir": "dir", "id": "resume",
                        "resume": "resume"}  # fmt: skip
#: init_kwargs keys that count as the explicit argument of a setting resolved here.
_SETTING_KWARGS = ("project", "entity", "name", "tags", "group", "job_type", "notes")


class RunOptionsSource(Protocol):
    """The options this module reads (`trainer.options.SearchWandbConfig` has them)."""

    wandb_project: str | None
    entity: str | None
    name: str | None
    tags: list[str] | None
    group: str | None
    job_type: str | None
    notes: str | None
    model_artifact: str | None
    watch: str | None

    @property
    def init_keywords(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunSettings:
    """What `wandb.init` receives, plus the two model-logging policies; `sources` says which rule gave each."""

    project: str
    name: str
    tags: list[str]
    entity: str | None = None
    group: str | None = None
    job_type: str | None = None
    notes: str | None = None
    model_artifact: str = "best"
    watch: str = "false"
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def init_arguments(self) -> dict[str, Any]:
        """Keyword arguments for `wandb.init` (None values left out, so wandb keeps its defaults)."""
        values = {
            **self.init_kwargs,
            "project": self.project, "entity": self.entity, "name": self.name, "tags": self.tags,
            "group": self.group, "job_type": self.job_type, "notes": self.notes,
        }  # fmt: skip
        return {k: v for k, v in values.items() if v is not None}


#: wandb refuses a run whose tags are empty or longer than this (at `wandb.init`, after the training started)
MAX_TAG_LENGTH = 64


def checked_tags(tags: list[str], where: str) -> list[str]:
    """`tags` if each is 1 to 64 characters, as wandb requires; else a ValueError naming the tag and the fix,
    raised when the option is given rather than from `wandb.init` once the training runs.

    Example:
        >>> checked_tags(["bi-encoder", "scifact"], "tags")
        ['bi-encoder', 'scifact']
        >>> checked_tags(["x" * 65], "tags")
        Traceback (most recent call last):
        ...
        ValueError: tags: tag 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is 65 characters; wandb accepts 1 to 64. Shorten it, or record the long text in the run config instead.
    """
    for tag in tags:
        if not 1 <= len(tag) <= MAX_TAG_LENGTH:
            shown = tag if len(tag) <= 30 else tag[:30] + "..."
            raise ValueError(
                f"{where}: tag {shown!r} is {len(tag)} characters; wandb accepts 1 to {MAX_TAG_LENGTH}. "
                "Shorten it, or record the long text in the run config instead."
            )
    return tags


def env_tags(value: str | None) -> list[str] | None:
    """`WANDB_TAGS` as wandb reads it: comma-separated, blanks dropped; each tag within wandb's limit.

    Example:
        >>> env_tags("a, b,,c"), env_tags(""), env_tags(None)
        (['a', 'b', 'c'], None, None)
    """
    tags = [t.strip() for t in (value or "").split(",") if t.strip()]
    return checked_tags(tags, "WANDB_TAGS") or None


def log_model_policy(value: str) -> str:
    """`WANDB_LOG_MODEL` (false / end / checkpoint, any case) as a `model_artifact` policy.

    Example:
        >>> log_model_policy("END"), log_model_policy("false"), log_model_policy("checkpoint")
        ('end', 'off', 'checkpoint')
    """
    key = value.strip().lower()
    if key not in LOG_MODEL_VALUES:
        raise ValueError(
            f"WANDB_LOG_MODEL={value!r} is not one of {tuple(LOG_MODEL_VALUES)}: set it to false, end or "
            "checkpoint, unset it, or pass model_artifact= to SearchWandbCallback"
        )
    return LOG_MODEL_VALUES[key]


def watch_policy(value: str, source: str = "WANDB_WATCH") -> str:
    """`WANDB_WATCH` / `watch=` checked: gradients / parameters / all / false.

    Example:
        >>> watch_policy("Gradients")
        'gradients'
    """
    key = value.strip().lower()
    if key not in WATCH_VALUES:
        raise ValueError(f"{source}={value!r} is not one of {WATCH_VALUES}")
    return key


def user_run_name(args: Any) -> str | None:
    """`TrainingArguments.run_name` when the user set it, else None.

    transformers 5 leaves `run_name` at `None` unless given; older versions filled in `output_dir`, so a
    run name equal to `output_dir` is treated as unset (transformers' own callback does the same when it names
    model artifacts).

    Example:
        >>> from types import SimpleNamespace
        >>> user_run_name(SimpleNamespace(run_name="exp-1", output_dir="out"))
        'exp-1'
        >>> user_run_name(SimpleNamespace(run_name="out", output_dir="out")) is None
        True
    """
    name = getattr(args, "run_name", None)
    if not name or str(name) == str(getattr(args, "output_dir", None)):
        return None
    return str(name)


def reports_to_wandb(args: Any) -> bool:
    """True when `TrainingArguments.report_to` makes the trainer build transformers' `WandbCallback`.

    Example:
        >>> from types import SimpleNamespace
        >>> reports_to_wandb(SimpleNamespace(report_to=["wandb"])), reports_to_wandb(SimpleNamespace(report_to="none"))
        (True, False)
    """
    report_to = getattr(args, "report_to", None) or []
    targets = [report_to] if isinstance(report_to, str) else list(report_to)
    return "wandb" in targets or "all" in targets


def user_environment(env: Mapping[str, str], args: Any) -> Mapping[str, str]:
    """`env` without what a trainer wrote there itself: `WANDB_PROJECT=sentence-transformers` while the
    trainer reports to wandb is sentence-transformers' default (`ST_TRAINER_PROJECT`), not the user's.

    (A user who wants that very project passes `project="sentence-transformers"` to the callback.)

    Example:
        >>> from types import SimpleNamespace
        >>> st_default = {"WANDB_PROJECT": "sentence-transformers"}
        >>> dict(user_environment(st_default, SimpleNamespace(report_to=["wandb"])))
        {}
        >>> dict(user_environment(st_default, SimpleNamespace(report_to=[])))
        {'WANDB_PROJECT': 'sentence-transformers'}
    """
    if env.get("WANDB_PROJECT") == ST_TRAINER_PROJECT and reports_to_wandb(args):
        return {key: value for key, value in env.items() if key != "WANDB_PROJECT"}
    return env


def _first(*candidates: tuple[str, Any]) -> tuple[str | None, Any]:
    for source, value in candidates:
        if value is not None and value != "":
            return source, value
    return None, None


def resolve_run_settings(
    options: RunOptionsSource,
    *,
    args: Any = None,
    trial_name: str | None = None,
    automatic_name: Callable[[], str],
    automatic_tags: Callable[[], list[str]],
    env: Mapping[str, str] | None = None,
) -> RunSettings:
    """Apply the precedence rule to every run setting.

    Args:
        options: the callback's options (explicit arguments; `None` fields are unset).
        args: the trainer's `TrainingArguments` (for `run_name` and `output_dir`); optional.
        trial_name: `TrainerState.trial_name` during `Trainer.hyperparameter_search`.
        automatic_name / automatic_tags: our defaults, computed only when needed.
        env: the environment (default `os.environ`), less what the trainer itself wrote there
            (`user_environment`).

    Example:
        >>> from hf_search_wandb.trainer.options import SearchWandbConfig
        >>> from types import SimpleNamespace
        >>> s = resolve_run_settings(SearchWandbConfig(tags=["mine"]),
        ...     args=SimpleNamespace(run_name="exp-1", output_dir="out"),
        ...     automatic_name=lambda: "auto", automatic_tags=lambda: ["auto"],
        ...     env={"WANDB_PROJECT": "team-search", "WANDB_TAGS": "env"})
        >>> s.project, s.name, s.tags, s.sources["project"], s.sources["name"], s.sources["tags"]
        ('team-search', 'exp-1', ['mine'], 'WANDB_PROJECT', 'run_name', 'argument')
    """
    env = user_environment(os.environ if env is None else env, args)
    extra = dict(options.init_keywords)
    for key, option in RESERVED_INIT_KWARGS.items():
        if key in extra:
            raise ValueError(f"init_kwargs[{key!r}]: use the callback option {option}= instead")
    explicit: dict[str, Any] = {}
    option_names = {"project": "wandb_project"}
    for key in _SETTING_KWARGS:
        given = getattr(options, option_names.get(key, key))
        passed = extra.pop(key, None)
        if given is not None and passed is not None and given != passed:
            raise ValueError(
                f"{key} is given twice, as {option_names.get(key, key)}={given!r} and init_kwargs[{key!r}]="
                f"{passed!r}: keep one"
            )
        explicit[key] = given if given is not None else passed
    explicit["model_artifact"], explicit["watch"] = options.model_artifact, options.watch
    if isinstance(explicit["tags"], str):
        raise TypeError(f"tags must be a list of strings, got the string {explicit['tags']!r}")
    sources: dict[str, str] = {}

    def pick(key: str, *candidates: tuple[str, Any]) -> Any:
        source, value = _first(("argument", explicit[key]), *candidates)
        sources[key] = source or "unset"
        return value

    hp_search = trial_name is not None
    run_name = user_run_name(args)
    name = pick("name", ("WANDB_NAME", env.get("WANDB_NAME")), ("trial_name", trial_name), ("run_name", run_name))
    if name is None:
        name, sources["name"] = automatic_name(), "automatic"
    tags = pick("tags", ("WANDB_TAGS", env_tags(env.get("WANDB_TAGS"))))
    if tags is None:
        tags, sources["tags"] = automatic_tags(), "automatic"
    search_group = (run_name or Path(str(getattr(args, "output_dir", "") or "hp-search")).name) if hp_search else None
    policy = pick("model_artifact", ("WANDB_LOG_MODEL", _env_log_model(env)))
    if policy is None:
        policy, sources["model_artifact"] = "best", "automatic"
    watch = pick("watch", ("WANDB_WATCH", env.get("WANDB_WATCH")))
    if watch is None:
        watch, sources["watch"] = "false", "automatic"
    project = pick("project", ("WANDB_PROJECT", env.get("WANDB_PROJECT")))
    if project is None:
        project, sources["project"] = DEFAULT_PROJECT, "automatic"
    return RunSettings(
        project=str(project),
        name=str(name),
        tags=[str(t) for t in tags],
        entity=pick("entity", ("WANDB_ENTITY", env.get("WANDB_ENTITY"))),
        group=pick("group", ("WANDB_RUN_GROUP", env.get("WANDB_RUN_GROUP")), ("hyperparameter_search", search_group)),
        job_type=pick("job_type", ("WANDB_JOB_TYPE", env.get("WANDB_JOB_TYPE"))),
        notes=pick("notes", ("WANDB_NOTES", env.get("WANDB_NOTES"))),
        model_artifact=str(policy),
        watch=watch_policy(str(watch), "watch" if sources["watch"] == "argument" else "WANDB_WATCH"),
        init_kwargs=extra,
        sources=sources,
    )


def _env_log_model(env: Mapping[str, str]) -> str | None:
    value = env.get("WANDB_LOG_MODEL")
    return log_model_policy(value) if value not in (None, "") else None


def sweep_destination(
    sweep: Mapping[str, Any], project: str | None = None, entity: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str, str | None]:
    """Project and entity of a sweep's runs: the flag (argument) > the YAML's `project:`/`entity:` >
    `WANDB_PROJECT`/`WANDB_ENTITY` > `search-model-training` (entity: wandb's default).

    Example:
        >>> sweep_destination({"project": "from-yaml", "entity": "team"}, env={})
        ('from-yaml', 'team')
        >>> sweep_destination({"project": "from-yaml"}, project="flag", env={"WANDB_ENTITY": "me"})
        ('flag', 'me')
    """
    env = os.environ if env is None else env
    chosen_project = project or sweep.get("project") or env.get("WANDB_PROJECT") or DEFAULT_PROJECT
    chosen_entity = entity or sweep.get("entity") or env.get("WANDB_ENTITY") or None
    return str(chosen_project), (str(chosen_entity) if chosen_entity else None)

"""The user's wandb conventions are kept: explicit argument > WANDB_* > run_name > our default (issue 11.1).

The end-to-end tests train a tiny model with wandb offline and read the run back with wandb's reader.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hf_search_wandb.core import compat
from hf_search_wandb.tracking.run_options import (
    DEFAULT_PROJECT,
    ST_TRAINER_PROJECT,
    resolve_run_settings,
    sweep_destination,
    user_run_name,
)
from hf_search_wandb.trainer.callback import SearchWandbCallback
from hf_search_wandb.trainer.options import SearchWandbConfig
from tests.helpers.training import make_evaluator, only_run, pairs, plain_trainer
from tests.helpers.wandb_records import RunRecords, read_run, run_dirs

WANDB_VARS = ("WANDB_PROJECT", "WANDB_ENTITY", "WANDB_NAME", "WANDB_TAGS", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE",
              "WANDB_NOTES", "WANDB_LOG_MODEL", "WANDB_WATCH")  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in WANDB_VARS:
        monkeypatch.delenv(var, raising=False)


def resolve(
    env: dict[str, str], run_name: str | None = None, trial: str | None = None, report_to: Any = "none",
    **options: Any,
) -> Any:  # fmt: skip
    return resolve_run_settings(
        SearchWandbConfig(**options), args=SimpleNamespace(run_name=run_name, output_dir="out/exp", report_to=report_to),
        trial_name=trial, automatic_name=lambda: "auto-name", automatic_tags=lambda: ["auto"], env=env,
    )  # fmt: skip


# --------------------------------------------------------------------------- the precedence rule


@pytest.mark.parametrize(
    ("options", "env", "run_name", "expected", "source"),
    [
        ({"name": "arg"}, {"WANDB_NAME": "env"}, "rn", "arg", "argument"),
        ({"init_kwargs": {"name": "kw"}}, {"WANDB_NAME": "env"}, "rn", "kw", "argument"),
        ({}, {"WANDB_NAME": "env"}, "rn", "env", "WANDB_NAME"),
        ({}, {}, "rn", "rn", "run_name"),
        ({}, {}, "out/exp", "auto-name", "automatic"),  # run_name == output_dir: the old default, not the user's
        ({}, {}, None, "auto-name", "automatic"),
    ],
)
def test_run_name_precedence(
    options: dict[str, Any], env: dict[str, str], run_name: str | None, expected: str, source: str
) -> None:
    settings = resolve(env, run_name, **options)
    assert (settings.name, settings.sources["name"]) == (expected, source)


def test_training_arguments_default_run_name_is_not_the_users(tmp_path: Path) -> None:
    """transformers 4 fills `run_name` with `output_dir` when it is not given; 5 leaves it None: either way the
    run gets our automatic name, on the installed version (both run in CI: `make test`, `make test-oldest`)."""
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none")
    assert args.run_name in (None, str(tmp_path / "out"))
    assert user_run_name(args) is None
    settings = resolve_run_settings(SearchWandbConfig(), args=args, automatic_name=lambda: "auto-name",
                                    automatic_tags=lambda: [], env={})  # fmt: skip
    assert (settings.name, settings.sources["name"]) == ("auto-name", "automatic")
    named = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="exp-1", report_to="none")
    assert user_run_name(named) == "exp-1"


def test_sentence_transformers_project_default_is_not_the_users() -> None:
    # sentence-transformers' trainers setdefault WANDB_PROJECT=sentence-transformers when they report to wandb
    st_default = {"WANDB_PROJECT": ST_TRAINER_PROJECT}
    for report_to in (["wandb"], ["all"], "wandb"):
        settings = resolve(st_default, report_to=report_to)
        assert (settings.project, settings.sources["project"]) == (DEFAULT_PROJECT, "automatic")
    assert resolve(st_default, report_to=["wandb"], project=ST_TRAINER_PROJECT).project == ST_TRAINER_PROJECT
    assert resolve({"WANDB_PROJECT": "team"}, report_to=["wandb"]).project == "team"
    # without a WandbCallback the trainer set nothing: the variable is the user's
    assert resolve(st_default, report_to="none").project == ST_TRAINER_PROJECT


def test_every_setting_follows_argument_then_environment_then_default() -> None:
    env = {"WANDB_PROJECT": "env-p", "WANDB_ENTITY": "env-e", "WANDB_TAGS": "x, y", "WANDB_RUN_GROUP": "env-g",
           "WANDB_JOB_TYPE": "env-j", "WANDB_NOTES": "env-n", "WANDB_LOG_MODEL": "end", "WANDB_WATCH": "all"}
    from_env = resolve(env)
    assert (from_env.project, from_env.entity, from_env.tags, from_env.group, from_env.job_type, from_env.notes,
            from_env.model_artifact, from_env.watch) == ("env-p", "env-e", ["x", "y"], "env-g", "env-j", "env-n",
                                                         "end", "all")  # fmt: skip
    explicit = resolve(env, project="p", entity="e", tags=["t"], group="g", job_type="j", notes="n",
                       model_artifact="off", watch="false")  # fmt: skip
    assert (explicit.project, explicit.entity, explicit.tags, explicit.group, explicit.job_type, explicit.notes,
            explicit.model_artifact, explicit.watch) == ("p", "e", ["t"], "g", "j", "n", "off", "false")
    assert {v for k, v in explicit.sources.items() if k != "name"} == {"argument"}
    default = resolve({})
    assert (default.project, default.entity, default.tags, default.group, default.model_artifact,
            default.watch) == (DEFAULT_PROJECT, None, ["auto"], None, "best", "false")  # fmt: skip


def test_log_model_values_and_bad_values() -> None:
    assert [resolve({"WANDB_LOG_MODEL": v}).model_artifact for v in ("false", "END", "checkpoint")] == [
        "off", "end", "checkpoint"
    ]
    with pytest.raises(ValueError, match=r"WANDB_LOG_MODEL='yes'.*false, end or checkpoint"):
        resolve({"WANDB_LOG_MODEL": "yes"})
    with pytest.raises(ValueError, match="WANDB_WATCH='weights'"):
        resolve({"WANDB_WATCH": "weights"})


def test_hyperparameter_search_trial_names_the_run_and_groups_the_search() -> None:
    settings = resolve({}, run_name="search", trial="run-3")
    assert (settings.name, settings.group) == ("run-3", "search")


def test_init_kwargs_pass_through_and_conflicts_are_refused() -> None:
    settings = resolve({}, init_kwargs={"save_code": True, "job_type": "train", "settings": {"x_label": "a"}})
    assert settings.job_type == "train"
    assert settings.init_arguments()["save_code"] is True and "settings" in settings.init_arguments()
    with pytest.raises(ValueError, match="name is given twice"):
        resolve({}, name="a", init_kwargs={"name": "b"})
    with pytest.raises(ValueError, match="use the callback option config_overrides="):
        resolve({}, init_kwargs={"config": {}})
    with pytest.raises(ValueError, match="init_kwargs must be a JSON object"):
        SearchWandbConfig(init_kwargs="[1]")


def test_sweep_yaml_project_unless_the_flag_is_given() -> None:
    yaml = {"project": "yaml-p", "entity": "yaml-e"}
    assert sweep_destination(yaml, env={"WANDB_PROJECT": "env"}) == ("yaml-p", "yaml-e")
    assert sweep_destination(yaml, project="flag", entity="flag-e", env={}) == ("flag", "flag-e")
    assert sweep_destination({}, env={"WANDB_PROJECT": "env"}) == ("env", None)
    assert sweep_destination({}, env={}) == (DEFAULT_PROJECT, None)


# --------------------------------------------------------------------------- end to end, read back


def run_record(run: RunRecords) -> dict[str, Any]:
    """The `run` record wandb wrote at init (project, group, job type, ...)."""
    return run.of_type("run")[0]


def test_environment_conventions_reach_the_run(
    wandb_offline: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var, value in {"WANDB_PROJECT": "team-search", "WANDB_ENTITY": "team", "WANDB_NAME": "from-env",
                       "WANDB_TAGS": "baseline,minilm", "WANDB_RUN_GROUP": "ablation-1", "WANDB_JOB_TYPE": "train",
                       "WANDB_NOTES": "env notes"}.items():  # fmt: skip
        monkeypatch.setenv(var, value)
    callback = SearchWandbCallback(make_evaluator(), log_tables="off", model_artifact="off",
                                   init_kwargs={"save_code": False})  # fmt: skip
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, max_steps=2, eval_steps=2,
                            run_name="user-run-name")  # fmt: skip
    trainer.train()
    callback.finish()
    run = only_run(wandb_offline)
    record = run_record(run)
    assert (record["project"], record["entity"], record["display_name"], record["tags"], record["run_group"],
            record["job_type"], record["notes"]) == ("team-search", "team", "from-env", ["baseline", "minilm"],
                                                      "ablation-1", "train", "env notes")  # fmt: skip
    # the full TrainingArguments, nested; the spec's flat keys stay on top; the parameter count
    config = run.config
    assert config["training_args"]["run_name"] == "user-run-name"
    assert config["training_args"]["max_steps"] == 2 and config["learning_rate"] == 5e-4
    assert config["model/num_parameters"] == sum(p.numel() for p in trainer.model.parameters())


def test_run_name_and_explicit_project_without_environment(wandb_offline: Path, tiny_bert_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "ignored-because-explicit")
    callback = SearchWandbCallback(project="explicit", log_tables="off", model_artifact="off")
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, max_steps=2, eval_strategy="no",
                            run_name="user-run-name")  # fmt: skip
    trainer.train()
    callback.finish()
    record = run_record(only_run(wandb_offline))
    assert (record["project"], record["display_name"]) == ("explicit", "user-run-name")
    assert "fine-tuning" in record["tags"]  # the automatic tags when neither argument nor WANDB_TAGS


def _st_trainer(root: Path, callback: SearchWandbCallback, late: bool, **arguments: Any) -> Any:
    """A SentenceTransformerTrainer on a tiny model, 2 steps, no evaluation; the callback given in
    `callbacks=[...]`, or with `add_callback` after init when `late` (the README's way)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(root / "model")
    rows = pairs(8)
    args = SentenceTransformerTrainingArguments(
        str(root / "out"), per_device_train_batch_size=4, max_steps=2, save_strategy="no", disable_tqdm=True,
        **arguments,
    )  # fmt: skip
    trainer = SentenceTransformerTrainer(
        model=model, args=args, loss=compat.st_losses().MultipleNegativesRankingLoss(model),
        train_dataset=Dataset.from_dict({"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]}),
        callbacks=None if late else [callback],
    )  # fmt: skip
    if late:
        trainer.add_callback(callback)
    return trainer


@pytest.mark.parametrize("late", [True, False], ids=["add_callback", "callbacks-arg"])
@pytest.mark.parametrize("report_to", [None, "wandb"], ids=["default-report_to", "report_to-wandb"])
def test_trainer_defaults_neither_name_the_run_nor_pick_its_project(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch, late: bool, report_to: str | None
) -> None:
    """The README's set-up on the installed versions: no run_name, no WANDB_PROJECT. transformers 4 defaults
    `run_name` to `output_dir` and `report_to` to "all" (its WandbCallback starts a run before an
    add_callback'ed callback sees the trainer), and sentence-transformers then sets WANDB_PROJECT itself:
    none of that is the user's choice, so the one run has our automatic name and our default project."""
    monkeypatch.setenv("WANDB_PROJECT", "restored-after-the-test")  # undone after the trainer's setdefault
    monkeypatch.delenv("WANDB_PROJECT")
    callback = SearchWandbCallback(dataset_name="scifact", log_tables="off", model_artifact="off")
    trainer = _st_trainer(wandb_offline, callback, late, **({"report_to": report_to} if report_to else {}))
    trainer.train()
    callback.finish()
    record = run_record(only_run(wandb_offline))  # transformers' early run, if any, is gone
    assert callback.settings.sources["name"] == "automatic"
    assert callback.settings.name.startswith("bi-encoder-")
    assert (record["project"], record["display_name"]) == (DEFAULT_PROJECT, callback.settings.name)


def test_user_settings_win_over_a_run_transformers_started_first(
    wandb_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # report_to=wandb + add_callback: transformers' WandbCallback starts the run (in the user's WANDB_PROJECT,
    # named after run_name) before the callback takes over; that run is kept, with every setting the user's
    monkeypatch.setenv("WANDB_PROJECT", "team-search")
    monkeypatch.setenv("WANDB_TAGS", "baseline")
    callback = SearchWandbCallback(log_tables="off", model_artifact="off")
    trainer = _st_trainer(wandb_offline, callback, True, report_to="wandb", run_name="user-run-name")
    trainer.train()
    callback.finish()
    record = run_record(only_run(wandb_offline))
    assert (record["project"], record["display_name"]) == ("team-search", "user-run-name")
    assert "baseline" in record["tags"]


def test_log_model_checkpoint_versions_each_checkpoint_and_moves_best(
    wandb_offline: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_LOG_MODEL", "checkpoint")
    callback = SearchWandbCallback(make_evaluator(), log_tables="off")
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, max_steps=6, eval_steps=2,
                            save_strategy="steps", save_steps=2)  # fmt: skip
    trainer.train()
    callback.finish()
    run = only_run(wandb_offline)
    models = [a for a in run.artifacts if a.get("type") == "model"]
    assert len(models) == 3  # one version per saved checkpoint
    aliases = [set(a.get("aliases", [])) for a in models]
    mrr = run.series("val/mrr@10")
    best_index = max(range(len(mrr)), key=lambda i: (mrr[i], -i))  # the first best, like the callback
    assert all(f"step-{2 * (i + 1)}" in a for i, a in enumerate(aliases))
    assert "best" in aliases[best_index]
    # each later improvement took the alias: the last version holding it is the best evaluation's checkpoint
    holders = [i for i, a in enumerate(aliases) if "best" in a]
    assert holders[-1] == best_index
    assert not (wandb_offline / "out" / "wandb-best-model").exists()  # checkpoints are the artifacts


def test_watch_logs_gradients_every_logging_step(
    wandb_offline: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_WATCH", "gradients")
    callback = SearchWandbCallback(log_tables="off", model_artifact="off")
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, max_steps=4, eval_strategy="no",
                            logging_steps=2)  # fmt: skip
    trainer.train()
    callback.finish()
    run = only_run(wandb_offline)
    gradient_rows = [r for r in run.history if any(k.startswith("gradients/") for k in r)]
    assert gradient_rows, "WANDB_WATCH=gradients logged no gradient histogram"
    assert not any(k.startswith("parameters/") for r in run.history for k in r)


def test_local_sweep_trials_land_in_the_yaml_project(wandb_offline: Path, tmp_path: Path) -> None:
    from hf_search_wandb.sweeps.local import run_local_sweep

    sweep = {"method": "random", "count": 1, "project": "yaml-project",
             "metric": {"name": "val/mrr@10", "goal": "maximize"}, "parameters": {"x": {"min": 0.0, "max": 1.0}}}

    def program(config: dict[str, Any], callbacks: list[Any]) -> dict[str, float]:
        return {"eval_val_mrr@10": config["x"]}

    run_local_sweep(sweep, program, output_dir=tmp_path / "a")
    run_local_sweep({**sweep, "name": "second"}, program, output_dir=tmp_path / "b", project="flag-project")
    projects = [run_record(read_run(d))["project"] for d in run_dirs(wandb_offline)]
    assert projects == ["yaml-project", "flag-project"]

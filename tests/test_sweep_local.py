"""The offline sweep engine: Optuna under the wandb sweep YAML, shared SQLite store, hyperband pruning.

Nothing is faked here: trials train for real (tiny random BERT, a tiny BEIR subset of SciFact), wandb
writes real offline runs that are read back with `wandb leet inspect`, agents are separate processes.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from transformers import TrainerCallback

from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.sweeps.config import SweepConfigError, load_sweep_config
from hf_search_wandb.sweeps.local import check_local_support, run_local_sweep, suggest
from hf_search_wandb.sweeps.pruning import OptunaPruningCallback, metric_value
from tests.conftest import REPO_ROOT, SCIFACT
from tests.wandb_records import read_run, run_dirs


@pytest.fixture(autouse=True)
def _fresh_wandb_settings():
    """wandb caches its settings (WANDB_DIR included) per process: reset them around each test."""
    import wandb

    wandb.teardown()
    yield
    wandb.teardown()


def scripted_program(config: dict, callbacks: list) -> dict:
    """A trial without a model, for tests about the engine's bookkeeping (count, restart, failures).

    It sleeps `sleep` seconds, raises when `fail` is set, and returns `quality` as the metric.
    """
    time.sleep(float(config.get("sleep", 0.0)))
    if config.get("fail"):
        raise RuntimeError("scripted failure")
    return {"eval_val_mrr@10": float(config["quality"])}


def make_tiny_beir(directory: Path, *, n_train: int = 32, n_test: int = 16, n_docs: int = 64) -> Path:
    """A BEIR folder cut from the bundled SciFact: `n_test` judged test queries, `n_train` train pairs."""
    train, test = load_beir(SCIFACT, "train"), load_beir(SCIFACT, "test")
    test_q = sorted(test.qrels)[:n_test]
    train_q = sorted(train.qrels)[:n_train]
    keep = {d for q in test_q for d in test.qrels[q]} | {d for q in train_q for d in train.qrels[q]}
    others = sorted(set(test.corpus) - keep)
    random.Random(0).shuffle(others)
    keep |= set(others[: max(0, n_docs - len(keep))])
    (directory / "qrels").mkdir(parents=True, exist_ok=True)
    with (directory / "corpus.jsonl").open("w") as handle:
        for doc_id in sorted(keep):
            handle.write(json.dumps({"_id": doc_id, "title": "", "text": test.corpus[doc_id]}) + "\n")
    queries = {**{q: train.queries[q] for q in train_q}, **{q: test.queries[q] for q in test_q}}
    with (directory / "queries.jsonl").open("w") as handle:
        for qid, text in queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}) + "\n")
    for split, data, qids in (("train", train, train_q), ("test", test, test_q)):
        rows = [f"{q}\t{d}\t{r}" for q in qids for d, r in data.qrels[q].items() if d in keep]
        (directory / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return directory


def _agent(config: Path, storage: str, agent_id: int, wandb_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir), "WANDB_SILENT": "true",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "hf_search_wandb.cli", "sweep", "run", str(config), "--offline",
               "--storage", storage, "--agent-id", str(agent_id),
               "--output-dir", str(wandb_dir / f"agent{agent_id}"), *extra]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _ran(trials: list) -> list:
    return [t for t in trials if not t.user_attrs.get("skipped")]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """`make_tiny_bert` with its WordPiece vocabulary really loaded (under transformers 5,
    `BertTokenizerFast(vocab_file=...)` ignores the file and every word becomes [UNK], so every text
    embeds alike and no trial can beat another)."""
    from transformers import BertTokenizerFast

    from tests.tiny_models import make_tiny_bert

    path = make_tiny_bert(tmp_path_factory.mktemp("tiny-bert-vocab"))
    words = (path / "vocab.txt").read_text().split()
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
    tokenizer.model_max_length = 128
    tokenizer.save_pretrained(path)
    return path


class ScriptedMetric(TrainerCallback):
    """Adds `eval_val_mrr@10 = quality` to each evaluation's metrics, the way SearchWandbCallback adds
    its evaluator's results for a plain Trainer (so the pruning callback after it sees them)."""

    def __init__(self, quality: float) -> None:
        self.quality = quality

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics["eval_val_mrr@10"] = self.quality


def trainer_program(config: dict, callbacks: list) -> dict:
    """A real `transformers.Trainer` run (one-weight model, 6 steps, evaluation every 2) with the real
    SearchWandbCallback, whose val/mrr@10 is the trial's `quality`: hyperband's decisions are then known
    in advance while the report -> prune -> stop path is the production one."""
    import tempfile

    import torch
    from datasets import Dataset
    from transformers import Trainer

    from hf_search_wandb.sweeps.training import training_arguments
    from hf_search_wandb.trainer.callback import SearchWandbCallback

    class OneWeight(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, labels=None):
            return {"loss": ((self.w - x) ** 2).mean()}

    data = Dataset.from_dict({"x": [0.5] * 32, "labels": [0.0] * 32})
    scripted = ScriptedMetric(float(config["quality"]))
    args = training_arguments(config, tempfile.mkdtemp(), max_steps=6, eval_steps=2, logging_steps=2,
                              use_cpu=True, per_device_train_batch_size=4)
    trainer = Trainer(model=OneWeight(), args=args, train_dataset=data, eval_dataset=data,
                      callbacks=[SearchWandbCallback(log_tables="off", model_artifact="off"), scripted, *callbacks])
    trainer.train()
    return {}


def _seed_whose_first_grid_point_is(space: dict, name: str, value) -> int:
    """The engine's grid gives trial n the n-th point of a seeded shuffle; find a seed whose trial 0 has
    `name == value`, with the same sampler the engine builds."""
    for seed in range(50):
        study = optuna.create_study(sampler=optuna.samplers.GridSampler(space, seed=seed))
        if study.ask().suggest_categorical(name, space[name]) == value:
            return seed
    raise AssertionError(f"no seed starts the grid with {name}={value}")


@pytest.mark.timeout(900)
def test_two_agents_share_one_sqlite_sweep_exact_count_hyperband_prunes(tmp_path):
    """Two agent processes, one SQLite store, count=4 over a 2 x 2 grid: exactly 4 trials, one wandb run
    each, grouped under the sweep, split between the agents without repeats. The two quality=0.2 trials
    are pruned by hyperband at their first evaluation through the real Trainer -> pruning callback path:
    agent 1 starts once trial 0 (quality 0.8) has reported, so each bad trial meets a better one at the
    first rung and stops training there (step 2 of 6)."""
    space = {"quality": [0.8, 0.2], "learning_rate": [0.1, 0.01]}
    seed = _seed_whose_first_grid_point_is(space, "quality", 0.8)
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        "name": "two-agents", "method": "grid", "count": 4,
        "metric": {"name": "val/mrr@10", "goal": "maximize"},
        "parameters": {k: {"values": v} for k, v in space.items()},
        "early_terminate": {"type": "hyperband", "min_iter": 1, "max_iter": 2, "eta": 3},
    }))
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    wandb_dir = tmp_path / "wb"
    program = ["--program", "tests.test_sweep_local:trainer_program", "--seed", str(seed)]
    agents = [_agent(config, storage, 0, wandb_dir, *program)]
    _wait_for(lambda trials: any(t.number == 0 and t.intermediate_values for t in trials), "two-agents", storage)
    agents.append(_agent(config, storage, 1, wandb_dir, *program))
    outputs = [agent.communicate(timeout=600)[0] for agent in agents]
    assert [a.returncode for a in agents] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert all("this agent ran" in out for out in outputs)

    trials = _ran(optuna.load_study(study_name="two-agents", storage=storage).get_trials())
    assert len(trials) == 4
    assert sorted((t.params["quality"], t.params["learning_rate"]) for t in trials) == sorted(
        (q, lr) for q in space["quality"] for lr in space["learning_rate"])
    for t in trials:
        if t.params["quality"] == 0.2:
            assert t.state.name == "PRUNED" and t.intermediate_values == {1: 0.2}
        else:
            assert t.state.name == "COMPLETE" and t.value == 0.8 and len(t.intermediate_values) == 3

    runs = [read_run(d) for d in run_dirs(wandb_dir)]
    assert len(runs) == 4
    by_trial = {r.summary["sweep/trial_number"]: r for r in runs}
    assert sorted(by_trial) == sorted(t.number for t in trials)
    for t in trials:
        run = by_trial[t.number]
        header = run.of_type("run")[0]
        assert header["run_group"] == "two-agents" and header["job_type"] == "sweep-trial"
        assert run.config["quality"] == t.params["quality"]
        assert run.config["learning_rate"] == t.params["learning_rate"]
        assert run.summary["sweep/trial_state"] == t.state.name
        assert run.state == "finished" and run.exit_code == 0
        # A pruned trial stopped at its first evaluation (step 2 of 6); a complete one trained to the end.
        assert max(run.series("train/global_step")) == (2 if t.state.name == "PRUNED" else 6)
        if t.state.name == "COMPLETE":
            assert run.summary["sweep/objective"] == 0.8


def test_default_bi_encoder_program_reports_each_evaluation(tmp_path, tiny_bert, wandb_offline):
    """The default program (SentenceTransformerTrainer + RetrievalEvaluator + SearchWandbCallback) on a tiny
    BEIR folder: the config reaches the trainer, and the pruning callback sees val/mrr@10 at every
    evaluation, the same values the callback logs to the run."""
    from hf_search_wandb.sweeps.training import BiEncoderProgram

    beir = make_tiny_beir(tmp_path / "beir")
    config = {"name": "bi", "method": "random", "count": 1, "metric": {"name": "val/mrr@10", "goal": "maximize"},
              "parameters": {"learning_rate": {"values": [1e-4]}, "batch_size": {"value": 8},
                             "pooling_mode": {"values": ["cls"]}, "max_seq_length": {"value": 32},
                             "loss_function": {"value": "CosineSimilarityLoss"}}}
    program = BiEncoderProgram(data=beir, model=tiny_bert, output_dir=tmp_path / "out", max_steps=4, eval_steps=2,
                               logging_steps=2, max_train_pairs=16, max_eval_queries=16, max_eval_docs=64,
                               callback_options={"log_tables": "off"})
    result = run_local_sweep(config, program, output_dir=tmp_path)
    (trial,) = result.trials
    assert trial.state.name == "COMPLETE" and len(trial.intermediate_values) == 2
    (run,) = [read_run(d) for d in run_dirs(wandb_offline)]
    logged = run.series("val/mrr@10")
    assert logged == pytest.approx(list(trial.intermediate_values.values()))
    assert trial.value == pytest.approx(max(logged))
    assert run.config["pooling_mode"] == "cls" and run.config["learning_rate"] == 1e-4
    assert run.config["batch_size"] == 8  # the callback's own record of per_device_train_batch_size


def _wait_for(condition, study_name: str, storage: str, timeout: float = 400) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
        except KeyError:  # the agent has not created the study yet
            continue
        if condition(trials):
            return
    raise AssertionError(f"timed out waiting on study {study_name}")


@pytest.mark.slow
def test_agents_race_for_the_last_slots_and_never_exceed_count(tmp_path):
    """Two processes on one SQLite store with a cheap program: count holds exactly under contention."""
    config = tmp_path / "race.yaml"
    config.write_text(yaml.safe_dump({
        "name": "race", "method": "random", "count": 6, "metric": {"name": "val/mrr@10", "goal": "maximize"},
        "parameters": {"quality": {"min": 0.0, "max": 1.0}, "sleep": {"value": 0.2}},
    }))
    storage = f"sqlite:///{tmp_path / 'race.db'}"
    agents = [_agent(config, storage, i, tmp_path / "wb", "--program", "tests.test_sweep_local:scripted_program")
              for i in (0, 1)]
    outputs = [agent.communicate(timeout=300)[0] for agent in agents]
    assert [a.returncode for a in agents] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    trials = _ran(optuna.load_study(study_name="race", storage=storage).get_trials())
    assert len(trials) == 6 and {t.state.name for t in trials} == {"COMPLETE"}
    assert len({t.params["quality"] for t in trials}) == 6  # agents 0 and 1 sample differently
    assert len(run_dirs(tmp_path / "wb")) == 6


def test_restart_continues_the_sweep_and_keeps_finished_trials(tmp_path, wandb_offline):
    config = {"name": "restart", "method": "random", "count": 2,
              "metric": {"name": "val/mrr@10", "goal": "maximize"},
              "parameters": {"quality": {"min": 0.0, "max": 1.0}}}
    first = run_local_sweep(config, scripted_program, output_dir=tmp_path)
    assert first.ran == 2 and first.states() == {"COMPLETE": 2}
    again = run_local_sweep(config, scripted_program, output_dir=tmp_path)
    assert again.ran == 0  # count already reached: nothing more to do
    more = run_local_sweep(config, scripted_program, output_dir=tmp_path, count=3, agent_id=1)
    assert more.ran == 1 and more.states() == {"COMPLETE": 3}
    assert [(t.number, t.value) for t in more.trials[:2]] == [(t.number, t.value) for t in first.trials]
    assert more.best_value == max(t.value for t in more.trials)
    assert (tmp_path / "sweep.db").exists()
    assert len(run_dirs(wandb_offline)) == 3


@pytest.mark.slow
def test_killed_agent_loses_no_finished_trial(tmp_path):
    """SIGKILL an agent mid-trial: its finished trials stay; the heartbeat fails the orphaned trial and a
    restarted agent runs that slot again, so the sweep still ends with exactly `count` trials."""
    config = tmp_path / "kill.yaml"
    config.write_text(yaml.safe_dump({
        "name": "kill", "method": "random", "count": 3, "metric": {"name": "val/mrr@10", "goal": "maximize"},
        "parameters": {"quality": {"min": 0.0, "max": 1.0}, "sleep": {"value": 1.5}},
    }))
    storage = f"sqlite:///{tmp_path / 'kill.db'}"
    agent = _agent(config, storage, 0, tmp_path / "wb", "--program", "tests.test_sweep_local:scripted_program")
    _wait_for(lambda trials: any(t.state.name == "COMPLETE" for t in trials)
              and any(t.state.name == "RUNNING" for t in trials), "kill", storage)
    os.kill(agent.pid, signal.SIGKILL)
    agent.communicate(timeout=60)
    finished = {t.number: t.value for t in optuna.load_study(study_name="kill", storage=storage).get_trials()
                if t.state.name == "COMPLETE"}
    assert finished
    time.sleep(2.5)
    result = run_local_sweep(config, scripted_program, storage=storage, agent_id=1, grace_period=2,
                             wandb_mode="disabled")
    states = [t.state.name for t in _ran(result.trials)]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1  # the killed trial, not counted
    assert {t.number: t.value for t in result.trials if t.number in finished} == finished


def test_failing_program_counts_and_stops_the_agent(tmp_path, wandb_offline):
    config = {"name": "fails", "method": "random", "count": 10, "metric": {"name": "val/mrr@10", "goal": "maximize"},
              "parameters": {"quality": {"min": 0.0, "max": 1.0}, "fail": {"value": True}}}
    with pytest.raises(RuntimeError, match="3 trials in a row failed") as info:
        run_local_sweep(config, scripted_program, output_dir=tmp_path)
    assert "scripted failure" in str(info.value.__cause__)
    trials = optuna.load_study(study_name="fails", storage=f"sqlite:///{tmp_path / 'sweep.db'}").get_trials()
    assert [t.state.name for t in trials] == ["FAIL"] * 3
    assert all("scripted failure" in t.user_attrs["error"] for t in trials)
    runs = [read_run(d) for d in run_dirs(wandb_offline)]
    assert [r.exit_code for r in runs] == [1, 1, 1]
    assert {r.summary["sweep/trial_state"] for r in runs} == {"FAIL"}


def test_a_second_config_under_the_same_study_name_is_refused(tmp_path, wandb_offline):
    config = {"name": "same", "method": "random", "count": 1, "metric": {"name": "val/mrr@10", "goal": "maximize"},
              "parameters": {"quality": {"min": 0.0, "max": 1.0}}}
    run_local_sweep(config, scripted_program, output_dir=tmp_path)
    changed = {**config, "parameters": {"quality": {"min": 0.5, "max": 1.0}}}
    with pytest.raises(SweepConfigError, match="different sweep config"):
        run_local_sweep(changed, scripted_program, output_dir=tmp_path)


def test_grid_stops_when_exhausted_before_count(tmp_path):
    config = {"name": "grid", "method": "grid", "count": 10, "metric": {"name": "val/mrr@10", "goal": "maximize"},
              "parameters": {"quality": {"values": [0.1, 0.5, 0.9]}}}
    result = run_local_sweep(config, scripted_program, output_dir=tmp_path, wandb_mode="disabled")
    assert sorted(t.params["quality"] for t in result.trials) == [0.1, 0.5, 0.9]
    assert result.best_params == {"quality": 0.9}


def test_suggest_follows_wandb_distribution_semantics():
    config = load_sweep_config({
        "method": "random", "count": 1, "metric": {"name": "val/mrr@10", "goal": "maximize"},
        "parameters": {
            "lr": {"distribution": "log_uniform", "min": -13.8, "max": -9.9},  # exponents
            "lr_values": {"distribution": "log_uniform_values", "min": 1e-6, "max": 5e-5},
            "inv": {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 0.1},
            "hidden": {"distribution": "q_log_uniform_values", "min": 16, "max": 512, "q": 16},
            "layers": {"distribution": "int_uniform", "min": 1, "max": 4},
            "drop": {"distribution": "q_uniform", "min": 0.0, "max": 0.5, "q": 0.1},
            "pool": {"values": ["mean", "cls"]},
            "fixed": {"value": 7},
            "opt": {"parameters": {"beta1": {"values": [0.9, 0.95]}}},
        },
    })
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        params = suggest(study.ask(), config)
        assert math.exp(-13.8) <= params["lr"] <= math.exp(-9.9)
        assert 1e-6 <= params["lr_values"] <= 5e-5 and 0.01 <= params["inv"] <= 0.1
        assert params["hidden"] % 16 == 0 and isinstance(params["hidden"], int)
        assert params["layers"] in (1, 2, 3, 4) and params["pool"] in ("mean", "cls") and params["fixed"] == 7
        assert round(params["drop"] * 10, 6) == round(params["drop"] * 10) and params["opt.beta1"] in (0.9, 0.95)


def test_server_only_distributions_are_refused_offline():
    config = load_sweep_config({"method": "bayes", "count": 2, "metric": {"name": "val/mrr@10", "goal": "maximize"},
                                "parameters": {"x": {"distribution": "normal", "mu": 0, "sigma": 1}}})
    with pytest.raises(SweepConfigError, match="not supported offline"):
        check_local_support(config)


def test_pruning_callback_reports_each_evaluation_and_stops_training():
    from transformers import TrainerControl, TrainerState

    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=1))
    good = study.ask()
    callback = OptunaPruningCallback(good, "val/mrr@10", "maximize")
    state, control = TrainerState(global_step=10), TrainerControl()
    callback.on_evaluate(None, state, control, metrics={"eval_val_mrr@10": 0.6, "eval_loss": 1.0})
    assert good.study.trials[0].intermediate_values == {1: 0.6} and not control.should_training_stop
    study.tell(good, 0.6)

    bad = study.ask()
    callback = OptunaPruningCallback(bad, "val/mrr@10", "maximize")
    control = TrainerControl()
    callback.on_evaluate(None, TrainerState(global_step=10), control, metrics={"eval_val_mrr@10": 0.1})
    assert callback.pruned and control.should_training_stop and callback.pruned_at_step == 10
    assert callback.best == 0.1


def test_metric_lookup_covers_trainer_key_shapes():
    assert metric_value({"eval_val_ndcg@10": 0.4}, "val/ndcg@10") == 0.4
    assert metric_value({"eval_loss": 0.7, "eval_val_loss": 0.9}, "val/loss") == 0.7
    assert metric_value({"loss": 2.0}, "train/loss") == 2.0
    assert metric_value({"eval_val_mrr@10": 0.4}, "val/mrr@100") is None

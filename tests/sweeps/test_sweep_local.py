"""The offline sweep engine: Optuna under the wandb sweep YAML, shared SQLite store, hyperband pruning.

Nothing is faked here: trials train for real (tiny random BERT, a tiny BEIR subset of SciFact), wandb
writes real offline runs that are read back with `wandb leet inspect`, agents are separate processes.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import optuna
import pytest

from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.sweeps.config import SweepConfigError, load_sweep_config
from hf_search_wandb.sweeps.local import check_local_support, run_local_sweep, suggest
from hf_search_wandb.sweeps.pruning import OptunaPruningCallback, metric_value
from tests.helpers.paths import SCIFACT
from tests.helpers.sweeps import scripted_program
from tests.helpers.wandb_records import read_run, run_dirs


@pytest.fixture(autouse=True)
def _fresh_wandb_settings():
    """wandb caches its settings (WANDB_DIR included) per process: reset them around each test."""
    import wandb

    wandb.teardown()
    yield
    wandb.teardown()


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


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """`make_tiny_bert` with its WordPiece vocabulary really loaded (under transformers 5,
    `BertTokenizerFast(vocab_file=...)` ignores the file and every word becomes [UNK], so every text
    embeds alike and no trial can beat another)."""
    from transformers import BertTokenizerFast

    from tests.helpers.tiny_models import make_tiny_bert

    path = make_tiny_bert(tmp_path_factory.mktemp("tiny-bert-vocab"))
    words = (path / "vocab.txt").read_text().split()
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
    tokenizer.model_max_length = 128
    tokenizer.save_pretrained(path)
    return path


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

"""SearchWandbConfig, run naming, config collection and mode resolution: fast, no training."""

from __future__ import annotations

import datetime
import logging
import re
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hf_search_wandb.tracking.run_options import env_tags
from hf_search_wandb.tracking.run_setup import (
    base_model_short,
    collect_config,
    default_run_name,
    default_tags,
)
from hf_search_wandb.tracking.wandb_api import require_wandb, resolve_mode
from hf_search_wandb.trainer.callback import SearchWandbCallback
from hf_search_wandb.trainer.options import SearchWandbConfig
from tests.helpers.wandb_records import read_run, run_dirs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "cloud"}, "mode must be one of"),
        ({"model_type": "dual-encoder"}, "model_type must be one of"),
        ({"model_artifact": "always"}, "model_artifact must be one of"),
        ({"log_tables": "sometimes"}, "log_tables must be one of"),
        ({"log_tables": "0"}, "log_tables must be one of"),
        ({"num_examples": 0}, "num_examples must be >= 1"),
        ({"config_overrides": "[1, 2]"}, "config_overrides must be a JSON object"),
        ({"config_overrides": "{oops"}, "config_overrides must be a JSON object"),
        ({"wandb_project": ""}, "wandb_project must be"),
        ({"tags": ["ok", "x" * 65]}, r"tag 'x{30}\.\.\.' is 65 characters; wandb accepts 1 to 64"),
        ({"tags": [""]}, "tag '' is 0 characters"),
    ],
)
def test_config_rejects_bad_values_with_a_reason(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchWandbConfig(**kwargs)


def test_config_table_policies() -> None:
    assert SearchWandbConfig(log_tables="every").tables_every == 1
    assert SearchWandbConfig(log_tables=3).tables_every == 3  # type: ignore[arg-type]
    assert SearchWandbConfig(log_tables="end").tables_every is None
    assert SearchWandbConfig(log_tables="OFF").log_tables == "off"


def test_config_reads_from_the_command_line_next_to_training_arguments() -> None:
    from transformers import HfArgumentParser, TrainingArguments

    parser = HfArgumentParser((SearchWandbConfig, TrainingArguments))
    cfg, args = parser.parse_args_into_dataclasses(
        ["--output_dir", "out", "--wandb_project", "p", "--tags", "a", "b", "--log_tables", "3",
         "--config_overrides", '{"seed": 7}', "--no_log_histograms", "--model_type", "cross-encoder"]
    )  # fmt: skip
    assert (cfg.wandb_project, cfg.tags, cfg.tables_every) == ("p", ["a", "b"], 3)
    assert cfg.overrides == {"seed": 7} and cfg.log_histograms is False
    assert cfg.model_type == "cross-encoder" and args.output_dir == "out"


def test_callback_overrides_replace_config_fields() -> None:
    base = SearchWandbConfig(project="a", num_examples=5)
    cb = SearchWandbCallback(config=base, project="b", mode="disabled", pooling_mode="cls", seed=3)
    assert (cb.options.wandb_project, cb.options.num_examples, base.wandb_project) == ("b", 5, "a")
    assert cb.options.overrides == {"pooling_mode": "cls", "seed": 3}  # run-config keys become overrides
    with pytest.raises(TypeError, match="unknown SearchWandbConfig option"):
        SearchWandbCallback(projekt="x")


@pytest.mark.parametrize(
    ("model", "short"),
    [
        ("intfloat/multilingual-e5-base", "e5base"),
        ("microsoft/deberta-v3-base", "deberta"),
        ("bert-base-uncased", "bert"),
        ("sentence-transformers/all-MiniLM-L6-v2", "minilm"),
        ("BAAI/bge-large-en-v1.5", "bgelarge"),
        ("/tmp/checkpoints/my_model/", "my"),
        ("", "model"),
    ],
)
def test_base_model_short(model: str, short: str) -> None:
    assert base_model_short(model) == short


def test_run_name_and_tags_follow_the_spec() -> None:
    when = datetime.datetime(2024, 3, 15, 15, 0)
    assert default_run_name("cross-encoder", "microsoft/deberta-v3-base", "nfcorpus", when) == (
        "cross-encoder-deberta-nfcorpus-20240315-1500"
    )
    assert re.fullmatch(
        r"bi-encoder-e5base-data-\d{8}-\d{4}", default_run_name("bi-encoder", "intfloat/e5-base", None)
    )
    assert default_tags({"model_type": "colbert", "dataset_name": "beir", "amp_dtype": "fp32"}) == [
        "colbert",
        "fine-tuning",
        "beir",
    ]


def _args(**changes: Any) -> SimpleNamespace:
    base = dict(
        output_dir="runs/e5-msmarco", per_device_train_batch_size=64, gradient_accumulation_steps=4, world_size=2,
        learning_rate=2e-5, num_train_epochs=10, max_steps=-1, warmup_ratio=0.1, warmup_steps=0, weight_decay=0.01,
        max_grad_norm=1.0, lr_scheduler_type="linear", bf16=True, fp16=False, gradient_checkpointing=True,
        eval_strategy="steps", eval_steps=500, seed=42,
    )  # fmt: skip
    base.update(changes)
    return SimpleNamespace(**base)


def test_collect_config_fills_the_seed_keys() -> None:
    from datasets import Dataset

    train = Dataset.from_dict(
        {"anchor": ["q"] * 3, "positive": ["p"] * 3, "negative_1": ["n"] * 3, "negative_2": ["n"] * 3}
    )
    loss = type("MultipleNegativesRankingLoss", (), {})()
    cfg = collect_config(_args(), loss=loss, train_dataset=train, eval_dataset=[1, 2],
                         options=SearchWandbConfig(dataset_name="msmarco"))  # fmt: skip
    assert cfg["effective_batch_size"] == 64 * 4 * 2 and cfg["world_size"] == 2
    assert cfg["num_hard_negatives"] == 2 and cfg["negative_sampling"] == "in-batch + hard_negatives"
    assert cfg["loss_function"] == "MultipleNegativesRankingLoss"
    assert (cfg["amp_dtype"], cfg["mixed_precision"], cfg["gradient_checkpointing"]) == ("bf16", "bf16", True)
    assert (cfg["train_size"], cfg["val_size"], cfg["eval_steps"], cfg["seed"]) == (3, 2, 500, 42)
    assert (cfg["model_name"], cfg["dataset_name"], cfg["eval_metric"]) == ("e5-msmarco", "msmarco", "mrr@10")
    assert cfg["hf_search_wandb_version"] and cfg["torch_version"]


def test_collect_config_overrides_win() -> None:
    options = SearchWandbConfig(
        num_hard_negatives=5, negative_sampling="bm25_hard", config_overrides={"seed": 1}
    )
    cfg = collect_config(_args(eval_strategy="epoch"), options=options)
    assert (cfg["num_hard_negatives"], cfg["negative_sampling"], cfg["seed"]) == (5, "bm25_hard", 1)
    assert cfg["eval_steps"] == "epoch"


def test_collect_config_reads_a_sentence_transformer(tmp_path: Path) -> None:
    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(tmp_path, pooling="cls")
    cfg = collect_config(_args(), model=model)
    assert (cfg["model_type"], cfg["pooling_mode"], cfg["max_seq_length"]) == ("bi-encoder", "cls", 64)
    assert cfg["base_model"] and Path(cfg["base_model"]).name == "bert"


# --------------------------------------------------------------------------- modes


@pytest.fixture
def no_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No API key, no netrc: what a fresh machine without `wandb login` looks like."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "NETRC", "WANDB_MODE", "WANDB_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_resolve_mode_falls_back_to_offline_without_login(no_login: Path) -> None:
    choice = resolve_mode()
    assert (choice.mode, choice.requested) == ("offline", None) and "credentials" in choice.reason
    assert resolve_mode("online").mode == "offline"


def test_resolve_mode_falls_back_when_the_server_is_unreachable(
    no_login: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # discard port: refused at once
    choice = resolve_mode("online", timeout=1.0)
    assert choice.mode == "offline" and "unreachable" in choice.reason


def test_resolve_mode_honours_argument_and_environment(
    no_login: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode().mode == "disabled"
    assert resolve_mode("offline").mode == "offline"  # the argument wins
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setattr("hf_search_wandb.tracking.wandb_api.server_reachable", lambda **_: True)
    assert resolve_mode().mode == "online"
    with pytest.raises(ValueError, match="online, offline or disabled"):
        resolve_mode("sometimes")


def _drive(cb: SearchWandbCallback, out: Path, *, main: bool = True) -> None:
    """Fire the events a 2-step training fires (no trainer: the callback finds none in the stack)."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    args = TrainingArguments(str(out), report_to="none", logging_steps=1)
    state = TrainerState(is_world_process_zero=main, is_local_process_zero=main)
    control = TrainerControl()
    cb.on_train_begin(args, state, control, model=None)
    cb.on_epoch_begin(args, state, control)
    for step in (1, 2):
        state.global_step, state.epoch = step, step / 2
        cb.on_log(
            args, state, control, logs={"loss": 1.0 / step, "learning_rate": 1e-5, "epoch": state.epoch}
        )
    cb.on_epoch_end(args, state, control)
    cb.on_train_end(args, state, control)


def test_callback_without_login_logs_offline_and_says_so_once(
    no_login: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WANDB_DIR", str(no_login / "w"))
    cb = SearchWandbCallback(mode="online")
    with caplog.at_level(logging.WARNING, logger="hf_search_wandb.trainer.callback"):
        _drive(cb, no_login / "out")
    assert caplog.text.count("no wandb credentials") == 1
    (run_dir,) = run_dirs(no_login / "w")
    run = read_run(run_dir)
    assert run.series("train/loss") == [1.0, 0.5] and run.series("train/epoch_loss") == [0.75]
    assert run.state == "finished"


def test_callback_on_other_ranks_touches_nothing(wandb_offline: Path) -> None:
    cb = SearchWandbCallback()
    _drive(cb, wandb_offline / "out", main=False)
    assert cb.run is None and not run_dirs(wandb_offline)


def test_missing_wandb_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(ImportError, match="pip install wandb"):
        require_wandb()
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match="pip install wandb"):
        SearchWandbCallback()
    disabled = SearchWandbCallback(mode="disabled")
    _drive(disabled, Path(tempfile.mkdtemp()))  # runs a whole (event-level) training without wandb
    assert disabled.run is None


def test_a_run_you_started_is_reused_and_left_open(wandb_offline: Path) -> None:
    import wandb

    run = wandb.init(project="mine", mode="offline", dir=str(wandb_offline))
    try:
        cb = SearchWandbCallback(log_system_every_log=True)
        _drive(cb, wandb_offline / "out")
        assert wandb.run is run  # not finished: the user still logs test results to it
        run.log({"test/mrr@10": 0.5})
    finally:
        run.finish()
    (run_dir,) = run_dirs(wandb_offline)
    records = read_run(run_dir)
    assert records.series("train/loss") == [1.0, 0.5] and records.series("test/mrr@10") == [0.5]
    assert len(records.series("system/throughput")) == 3  # each log, plus the epoch row
    assert records.config["eval_metric"] == "mrr@10" and records.summary_view["project"] == "mine"


def test_tags_are_checked_when_the_callback_is_built_not_when_wandb_starts() -> None:
    # wandb itself refuses a tag over 64 characters only at wandb.init, after train() has started
    with pytest.raises(ValueError, match="wandb accepts 1 to 64"):
        SearchWandbCallback(mode="offline", tags=["t" * 65])
    assert SearchWandbCallback(mode="offline", tags=["t" * 64]).options.tags == ["t" * 64]
    with pytest.raises(ValueError, match=r"WANDB_TAGS: tag 'w{30}"):  # the environment's tags, named as such
        env_tags("fine," + "w" * 70)


def test_a_long_dataset_name_becomes_a_tag_wandb_accepts() -> None:
    tags = default_tags({"model_type": "bi-encoder", "dataset_name": "d" * 100})
    assert max(len(t) for t in tags) == 64

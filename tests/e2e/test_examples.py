"""Every example runs end to end on tiny budgets (tiny random BERT, a slice of SciFact, a few steps),
as accelerate's own `tests/test_examples.py` does: one process, and two CPU processes via
`accelerate launch --multi_gpu --num_processes 2` on a machine without CUDA (accelerate's multi-CPU DDP over
gloo; its `--cpu` launcher starts a single process in accelerate 1.x), each writing exactly one offline wandb run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers.examples import example_env, one_run, run_example
from tests.helpers.launch import free_port
from tests.helpers.paths import SCIFACT

TINY_ARGS = [
    "--data", str(SCIFACT),
    "--max-steps", "3",
    "--batch-size", "4",
    "--eval-steps", "3",
    "--logging-steps", "1",
    "--corpus-cap", "40",
    "--max-queries", "12",
    "--max-train-pairs", "24",
    "--max-seq-length", "48",
    "--wandb-mode", "offline",
]


@pytest.mark.parametrize(("hard_negatives", "native_bf16"), [("bm25", False), ("none", True)])
def test_train_bi_encoder_example(tmp_path: Path, tiny_bert_dir: Path, hard_negatives: str, native_bf16: bool) -> None:
    """`--precision auto` trains and evaluates in bf16 where the CPU computes it natively (HF_SEARCH_WANDB_NATIVE_BF16
    says so here), in fp32 where not: the package's one rule (`core.evaluation.precision.auto_precision`)."""
    metrics_json = tmp_path / "metrics.json"
    cmd = [
        sys.executable, "examples/train_bi_encoder.py", *TINY_ARGS,
        "--model", str(tiny_bert_dir),
        "--hard-negatives", hard_negatives,
        "--num-hard-negatives", "1",
        "--output-dir", str(tmp_path / "out"),
        "--metrics-json", str(metrics_json),
        "--report", str(tmp_path / "report.html"),
    ]
    env = example_env(tmp_path)
    env["HF_SEARCH_WANDB_NATIVE_BF16"] = "1" if native_bf16 else "0"
    proc = run_example(cmd, env)
    results = json.loads(metrics_json.read_text())
    assert set(results["before"]) >= {"mrr@10", "ndcg@10", "recall@100", "map", "hit@10"}
    assert 0.0 <= results["after"]["ndcg@10"] <= 1.0

    run = one_run(tmp_path)
    assert run.series("val/ndcg@10"), "no val/ndcg@10 in the run history"
    assert len(run.series("val/ndcg@10")) == 2  # eval_on_start (the base model) and after step 3
    assert run.series("train/loss")
    config = run.config
    assert config["dataset_name"] == "scifact"
    precision = "bf16" if native_bf16 else "fp32"
    assert (config["amp_dtype"], config["mixed_precision"], config["eval_precision"]) == (
        precision, "bf16" if native_bf16 else "no", precision,
    )  # fmt: skip
    assert config["negative_sampling"] == ("in-batch + bm25_hard" if hard_negatives == "bm25" else "in-batch")
    assert any(a["type"] == "dataset" for a in run.artifacts), "dataset artifact missing"
    # `make demo` ends with the run's HTML report and its path
    assert str((tmp_path / "report.html").resolve()) in proc.stdout.strip().splitlines()[-1]
    assert run.summary_view["run_id"] in (tmp_path / "report.html").read_text()


@pytest.mark.distributed
def test_train_bi_encoder_two_cpu_processes(tmp_path: Path, tiny_bert_dir: Path) -> None:
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    cmd = [
        accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
        "examples/train_bi_encoder.py", *TINY_ARGS,
        "--model", str(tiny_bert_dir),
        "--hard-negatives", "none",
        "--output-dir", str(tmp_path / "out"),
        "--metrics-json", str(tmp_path / "metrics.json"),
    ]
    run_example(cmd, example_env(tmp_path), timeout=900)
    run = one_run(tmp_path)
    assert run.config["world_size"] == 2
    assert run.config["effective_batch_size"] == 8  # 4 per device x 2 processes
    assert len(run.series("val/mrr@10")) == 2


def test_train_hf_trainer_example(tmp_path: Path, tiny_bert_dir: Path) -> None:
    cmd = [
        sys.executable, "examples/train_hf_trainer.py",
        "--data", str(SCIFACT), "--model", str(tiny_bert_dir),
        "--max-steps", "3", "--batch-size", "4", "--eval-steps", "3", "--logging-steps", "1",
        "--corpus-cap", "40", "--max-queries", "12", "--max-train-pairs", "24", "--max-seq-length", "48",
        "--wandb-mode", "offline", "--output-dir", str(tmp_path / "out"),
    ]
    run_example(cmd, example_env(tmp_path))
    run = one_run(tmp_path)
    for key in ("val/mrr@10", "val/ndcg@10", "val/loss", "train/loss"):
        assert run.series(key), f"{key} missing from the run history"
    assert run.config["pooling_mode"] == "mean"


@pytest.mark.parametrize(
    ("loss", "loss_function", "precision"),
    [("lambda", "LambdaLoss", "auto"), ("bce", "BinaryCrossEntropyLoss", "fp32")],
)
def test_train_cross_encoder_example(
    tmp_path: Path, tiny_bert_dir: Path, loss: str, loss_function: str, precision: str
) -> None:
    """Both losses; `--precision auto` trains in bf16 where the CPU computes bf16 natively (said here by
    HF_SEARCH_WANDB_NATIVE_BF16=1, so that the bf16 path runs on any CPU); `--precision fp32` stays fp32."""
    metrics_json = tmp_path / "metrics.json"
    cmd = [
        sys.executable, "examples/train_cross_encoder.py", "--tiny", "--model", str(tiny_bert_dir),
        "--eval-before", "--logging-steps", "1", "--wandb-mode", "offline", "--loss", loss,
        "--precision", precision,
        "--output-dir", str(tmp_path / "out"), "--metrics-json", str(metrics_json),
    ]  # fmt: skip
    env = example_env(tmp_path)
    env["HF_SEARCH_WANDB_NATIVE_BF16"] = "1"
    run_example(cmd, env)
    results = json.loads(metrics_json.read_text())
    assert {"ndcg@5", "first_stage/ndcg@5"} <= results["after"].keys()
    assert results["before"]["first_stage/ndcg@5"] == results["after"]["first_stage/ndcg@5"]  # BM25 is fixed
    run = one_run(tmp_path)
    assert len(run.series("val/ndcg@5")) == 2 and len(run.series("val/first_stage/ndcg@5")) == 2
    assert run.series("train/loss")
    assert run.config["model_type"] == "cross-encoder" and run.config["num_labels"] == 1
    assert run.config["loss_function"] == loss_function
    expected = "bf16" if precision == "auto" else "fp32"
    assert (run.config["amp_dtype"], run.config["eval_precision"]) == (expected, expected)
    assert run.config["negative_sampling"] == "bm25_hard"
    assert any(a["type"] == "model" for a in run.artifacts)


@pytest.mark.parametrize("first_stage", [None, "bm25"])
def test_train_multi_vector_example(tmp_path: Path, tiny_bert_dir: Path, first_stage: str | None) -> None:
    """The ColBERT-style example: MaxSim before and after, the token figures and the multi-vector config; with
    `--first-stage bm25`, BM25's top 20 over the whole corpus re-scored, and the run says so."""
    metrics_json = tmp_path / "metrics.json"
    cmd = [
        sys.executable, "examples/train_multi_vector.py", "--tiny", "--model", str(tiny_bert_dir),
        "--data", str(SCIFACT), "--query-expansion", "16", "--wandb-mode", "offline",
        "--output-dir", str(tmp_path / "out"), "--metrics-json", str(metrics_json),
    ]  # fmt: skip
    if first_stage:
        cmd += ["--first-stage", first_stage, "--depth", "20"]
    env = example_env(tmp_path)
    if first_stage:  # and a CPU said to compute bf16 natively: the package's rule trains and evaluates in bf16
        env["HF_SEARCH_WANDB_NATIVE_BF16"] = "1"
    out = run_example(cmd, env)
    results = json.loads(metrics_json.read_text())
    for side in ("before", "after"):
        assert {"ndcg@10", "query_tokens", "corpus_tokens", "index_mb"} <= results[side].keys()
        assert results[side]["query_tokens"] == 16.0  # every query expanded to 16 scored tokens
        assert ("first_stage/ndcg@10" in results[side]) == bool(first_stage)
    run = one_run(tmp_path)
    assert run.config["eval_search"] == ("bm25 top 20, re-scored" if first_stage else "exact")
    expected = "bf16" if first_stage else "fp32"
    assert (run.config["amp_dtype"], run.config["eval_precision"]) == (expected, expected)
    if first_stage:
        assert "first stage (bm25 top 20, re-scored): nDCG@10" in out.stdout
    assert len(run.series("val/ndcg@10")) == 2 and run.series("train/loss")
    assert run.config["model_type"] == "multi-vector" and run.config["query_expansion"] == "fixed:16"
    assert run.config["loss_function"] == "MultiVectorMultipleNegativesRankingLoss"

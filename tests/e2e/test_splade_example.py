"""examples/train_splade.py end to end on the tests' budget (`--tiny`: a few steps on a SciFact slice), with a
tiny random BERT MLM under it, writing one offline wandb run with the SPLADE figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.helpers.examples import example_env, one_run, run_example
from tests.helpers.paths import SCIFACT


def test_train_splade_example_tiny(tmp_path: Path) -> None:
    from tests.helpers.tiny_models import make_tiny_mlm

    mlm = make_tiny_mlm(tmp_path / "mlm")
    metrics_json = tmp_path / "metrics.json"
    cmd = [
        sys.executable, "examples/train_splade.py", "--tiny", "--data", str(SCIFACT), "--model", str(mlm),
        "--wandb-mode", "offline", "--output-dir", str(tmp_path / "out"), "--metrics-json", str(metrics_json),
    ]  # fmt: skip
    run_example(cmd, example_env(tmp_path))
    results = json.loads(metrics_json.read_text())
    for row in (results["before"], results["after"]):
        assert {"mrr@10", "ndcg@10", "query_active_dims", "corpus_active_dims", "flops"} <= set(row)
        assert 0 < row["corpus_active_dims"] <= 126
    run = one_run(tmp_path)
    assert len(run.series("val/ndcg@10")) == 2  # the untrained model (eval_on_start) and after step 3
    assert run.series("train/document_regularizer_loss") and run.series("val/flops")
    assert run.config["model_type"] == "splade" and run.config["loss_function"] == "SpladeLoss"
    assert any(a["type"] == "model" for a in run.artifacts)

"""SearchWandbCallback on CrossEncoderTrainer with tiny random cross-encoders, read back from wandb's offline
files: the `evaluator=` path and the callback's own evaluation, the prescribed names, the config, the
reranking tables and histograms, and the best model as an artifact that loads back as a CrossEncoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
from hf_search_wandb.tracking.log_keys import split_logs
from hf_search_wandb.tracking.reranking_tables import (
    ERROR_COLUMNS,
    EXAMPLE_COLUMNS,
    pushed_down_rows,
    reranking_example_rows,
)
from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.synthetic import synthetic_data
from tests.helpers.tiny_models import WORDS, make_tiny_cross_encoder
from tests.helpers.training import assert_one_step_axis, only_run
from tests.helpers.versions import requires
from tests.helpers.wandb_records import RunRecords

TRAINER = requires("CrossEncoderTrainer")  # the reranking evaluator itself runs on every version

METRICS = ["mrr@10", "ndcg@10", "recall@20", "map", "hit@10"]


def _train_rows(queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, dict[str, int]]) -> Any:
    from datasets import Dataset

    docs = list(corpus)
    rows = []
    for i, (qid, judged) in enumerate(qrels.items()):
        for did in judged:
            rows.append({"query": queries[qid], "doc": corpus[did][:120], "label": 1.0})
        rows.append({"query": queries[qid], "doc": corpus[docs[(7 * i) % len(docs)]][:120], "label": 0.0})
    return Dataset.from_list(rows[:48])


def _train(tmp: Path, *, own_evaluation: bool, loss: str = "bce") -> tuple[RunRecords, Any, RerankingEvaluator, Any]:
    import wandb
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, LambdaLoss

    wandb.teardown()
    queries, corpus, qrels = synthetic_data(WORDS)
    evaluator = RerankingEvaluator(queries, corpus, qrels, depth=20, metrics=METRICS)
    model = make_tiny_cross_encoder(tmp / "model")
    train = _train_rows(queries, corpus, qrels)
    if loss == "lambda":
        from datasets import Dataset

        train = Dataset.from_list([
            {"query": r["query"], "docs": [r["doc"], "sleep memory"], "labels": [1, 0]} for r in train.to_list()[:16]
        ])  # fmt: skip
    callback = SearchWandbCallback(evaluator if own_evaluation else None, dataset_name="synthetic")
    args = CrossEncoderTrainingArguments(
        str(tmp / "out"), max_steps=4, per_device_train_batch_size=8, logging_steps=1, eval_strategy="steps",
        eval_steps=2, save_strategy="no", learning_rate=1e-3, report_to="none", seed=1, disable_tqdm=True,
        use_cpu=True, metric_for_best_model="eval_val_mrr@10",
    )  # fmt: skip
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=train,
        loss=LambdaLoss(model) if loss == "lambda" else BinaryCrossEntropyLoss(model),
        evaluator=None if own_evaluation else evaluator, callbacks=[callback],
        eval_dataset=train.select(range(8)) if own_evaluation else None,  # the trainer's own val/loss
    )  # fmt: skip
    trainer.train()
    return only_run(tmp), trainer, evaluator, callback


@pytest.fixture(scope="module")
def evaluator_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunRecords, Any, RerankingEvaluator, Any]:
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("ce-evaluator")
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_DIR", str(tmp))
    try:
        yield _train(tmp, own_evaluation=False)
    finally:
        mp.undo()


@TRAINER
def test_evaluator_path_logs_prescribed_names_and_first_stage(evaluator_path) -> None:
    run, _trainer, evaluator, _ = evaluator_path
    for key in ("train/loss", "train/lr", "train/global_step", "train/epoch_loss", "system/throughput"):
        assert run.series(key), f"{key} missing"
    for metric in METRICS:
        assert len(run.series(f"val/{metric}")) == 2, metric
        first = run.series(f"val/first_stage/{metric}")
        assert len(first) == 2 and first[0] == first[1] == pytest.approx(evaluator.first_stage_metrics[metric])
    assert run.series("val/ndcg@10")[-1] == pytest.approx(evaluator.last_result.metrics["ndcg@10"])
    assert_one_step_axis(run)
    config = run.config
    assert config["model_type"] == "cross-encoder"
    assert config["loss_function"] == "BinaryCrossEntropyLoss"
    assert config["num_labels"] == 1
    assert config["val_size"] == len(evaluator.queries)


@TRAINER
def test_evaluator_path_logs_reranking_tables_and_histograms(evaluator_path) -> None:
    run, _, _evaluator, _ = evaluator_path
    rows = [row for row in run.history if "reranking_examples._type" in row]
    assert len(rows) == 2  # one per evaluation, from the kept result
    assert all("retrieval_examples._type" not in row for row in run.history)
    row = rows[-1]
    table = json.loads((run.run_dir / "files" / row["reranking_examples.path"]).read_text())
    assert table["columns"] == EXAMPLE_COLUMNS
    first_query = [r for r in table["data"] if r[0] == table["data"][0][0]]
    assert [r[2] for r in first_query] == [1, 2, 3, 4, 5]
    scores = [r[4] for r in first_query]
    assert scores == sorted(scores, reverse=True)
    errors = json.loads((run.run_dir / "files" / row["error_analysis.path"]).read_text())
    assert errors["columns"] == ERROR_COLUMNS
    assert errors["data"]  # not vacuous: the check below needs rows
    assert all(r[3] > r[2] and r[4] == r[3] - r[2] for r in errors["data"])  # every row: pushed down
    for key in ("score_distribution", "positive_scores", "negative_scores"):
        assert row[f"{key}._type"] == "histogram"


@TRAINER
def test_best_model_artifact_loads_back_as_a_cross_encoder_and_scores_the_same(evaluator_path) -> None:
    from sentence_transformers.cross_encoder import CrossEncoder

    from hf_search_wandb.tracking.artifacts import load_model_from_artifact, restore_staged_artifact

    run, trainer, evaluator, _callback = evaluator_path
    models = [a for a in run.artifacts if a["type"] == "model"]
    assert models and json.loads(models[-1]["metadata"])["model_type"] == "cross-encoder"
    restored = restore_staged_artifact(f"{models[-1]['name']}:best", run.run_dir.parent / "restored",
                                       wandb_dir=run.run_dir.parent.parent)  # fmt: skip
    loaded = load_model_from_artifact(str(restored))
    assert isinstance(loaded, CrossEncoder) and loaded.num_labels == 1
    best = Path(trainer.args.output_dir) / "wandb-best-model"
    reference = CrossEncoder(str(best), device="cpu")
    pairs = [(evaluator.queries[q], evaluator.corpus[d]) for q in list(evaluator.queries)[:3] for d in ("doc1", "doc2")]
    np.testing.assert_allclose(loaded.predict(pairs), reference.predict(pairs), atol=1e-6)
    # the artifact holds the best evaluation's weights: re-evaluating it gives the logged best metric
    assert evaluator.evaluate(loaded).metrics["mrr@10"] == pytest.approx(run.summary["best/mrr@10"], abs=1e-6)


@TRAINER
def test_callbacks_own_evaluation_on_a_cross_encoder_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    run, trainer, evaluator, _ = _train(tmp_path, own_evaluation=True, loss="lambda")
    assert len(run.series("val/ndcg@10")) == 2 and len(run.series("val/loss")) == 2
    assert run.series("val/first_stage/ndcg@10")[0] == pytest.approx(evaluator.first_stage_metrics["ndcg@10"])
    assert run.config["loss_function"] == "LambdaLoss"
    # the trainer sees the metrics too (metric_for_best_model works)
    assert any("eval_val_mrr@10" in row for row in trainer.state.log_history)
    assert any("reranking_examples._type" in row for row in run.history)


def test_first_stage_keys_route_to_val_first_stage() -> None:
    split = split_logs({"eval_val_ndcg@10": 0.5, "eval_val_first_stage/ndcg@10": 0.4, "epoch": 1.0})
    assert split.val == {"val/ndcg@10": 0.5, "val/first_stage/ndcg@10": 0.4}


def test_table_rows_follow_the_moves(tmp_path: Path) -> None:
    queries, corpus, qrels = synthetic_data(WORDS)
    evaluator = RerankingEvaluator(queries, corpus, qrels, depth=20, metrics=METRICS)
    result = evaluator.evaluate(make_tiny_cross_encoder(tmp_path))
    rows = reranking_example_rows(result, queries, corpus, evaluator.qrels, num_examples=3, k=4)
    assert len(rows) == 12
    for row in rows:
        assert row[6] == [d for d in result.first_stage_run()[_qid(queries, row[0])]].index(_doc(corpus, row[3])) + 1
    down = pushed_down_rows(result, queries, corpus)
    moves = [m for q in result.query_ids for m in result.moves(q).values()]
    assert len(down) == sum(after > before for before, after in moves)


def _qid(queries: dict[str, str], text: str) -> str:
    return next(q for q, t in queries.items() if t == text)


def _doc(corpus: dict[str, str], text: str) -> str:
    return next(d for d, t in corpus.items() if t[:199] == text[:199])

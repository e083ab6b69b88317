"""Tables, histograms and artifacts logged through `SearchWandbCallback` in real (tiny) training runs.

Both trainers train a tiny model for a few steps with wandb offline; the run is read back with
`wandb leet inspect --json`. A forward hook counts the encoder's forward passes to prove the media are
built from the evaluation's kept result, never from a second encoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hf_search_wandb.core import compat
from hf_search_wandb.tracking import tables
from hf_search_wandb.tracking.tables import ERROR_COLUMNS, EXAMPLE_COLUMNS
from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.training import make_evaluator, only_run, pairs, plain_trainer
from tests.helpers.wandb_records import RunRecords

MEDIA_KEYS = (
    "retrieval_examples",
    "error_analysis",
    "score_distribution",
    "positive_scores",
    "negative_scores",
)


def media_rows(run: RunRecords) -> list[dict[str, Any]]:
    return [row for row in run.history if "retrieval_examples._type" in row]


def table_json(run: RunRecords, row: dict[str, Any], key: str) -> dict[str, Any]:
    return json.loads((run.run_dir / "files" / row[f"{key}.path"]).read_text())


@pytest.fixture
def media_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record each `tables.log_evaluation_media` call the callback makes (the real function still runs)."""
    calls: list[dict[str, Any]] = []
    original = tables.log_evaluation_media

    def recording(run: Any, result: Any, evaluator: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append({"result": result, **kwargs})
        return original(run, result, evaluator, **kwargs)

    monkeypatch.setattr(tables, "log_evaluation_media", recording)
    return calls


def test_st_trainer_logs_media_each_evaluation_without_reencoding(
    wandb_offline: Path, media_calls: list[dict[str, Any]]
) -> None:
    import torch
    import wandb
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    wandb.teardown()  # let wandb read this test's WANDB_DIR
    model = make_tiny_sentence_transformer(wandb_offline / "model")
    evaluator = make_evaluator()
    eval_forwards: list[int] = []  # forward passes without autograd: the evaluator's
    model[0].register_forward_hook(lambda *_: None if torch.is_grad_enabled() else eval_forwards.append(1))
    seen: list[int] = []  # eval forwards counted when each media call starts and ends
    original = tables.log_evaluation_media

    def counting(*args: Any, **kwargs: Any) -> Any:
        seen.append(len(eval_forwards))
        out = original(*args, **kwargs)
        seen.append(len(eval_forwards))
        return out

    tables.log_evaluation_media = counting  # type: ignore[assignment]  # undone by media_calls' monkeypatch
    rows = pairs(32)
    train = Dataset.from_dict(
        {"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]}
    )
    args = SentenceTransformerTrainingArguments(
        str(wandb_offline / "out"), per_device_train_batch_size=8, num_train_epochs=1, logging_steps=1,
        eval_strategy="steps", eval_steps=2, save_strategy="no", learning_rate=1e-3, seed=1,
        report_to="none", disable_tqdm=True,
    )  # fmt: skip
    callback = SearchWandbCallback(
        evaluator, dataset_name="scifact", log_tables="every", model_artifact="best", dataset_artifact=True,
        num_examples=5, examples_k=3,
    )  # fmt: skip
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train, loss=compat.st_losses().MultipleNegativesRankingLoss(model),
        evaluator=evaluator, callbacks=[callback],
    )  # fmt: skip
    trainer.train()
    run = only_run(wandb_offline)

    val_steps = [row["train/global_step"] for row in run.history if "val/mrr@10" in row]
    logged = media_rows(run)
    assert len(val_steps) == 2 and [row["train/global_step"] for row in logged] == val_steps
    assert seen and all(before == after for before, after in zip(seen[::2], seen[1::2], strict=True))
    assert eval_forwards  # the hook sees the evaluator's forward passes
    for call in media_calls:
        assert call["num_examples"] == 5 and call["k"] == 3
    for row in logged:
        assert all(f"{key}._type" in row for key in MEDIA_KEYS)
        examples = table_json(run, row, "retrieval_examples")
        assert examples["columns"] == EXAMPLE_COLUMNS and len(examples["data"]) == 5 * 3
        assert table_json(run, row, "error_analysis")["columns"] == ERROR_COLUMNS
        assert sum(row["score_distribution.values"]) == 12 * len(
            evaluator.corpus
        )  # 12 queries x the whole corpus
    # the same queries in every evaluation
    assert (
        len({tuple(r[0] for r in table_json(run, row, "retrieval_examples")["data"]) for row in logged}) == 1
    )

    models = [a for a in run.artifacts if a["type"] == "model"]
    assert models and all(a["name"] == f"search-model-{run.summary_view['run_id']}" for a in models)
    assert set(models[-1]["aliases"]) == {"best", "latest"}
    meta = json.loads(models[-1]["metadata"])
    assert meta["best_mrr@10"] == pytest.approx(max(run.series("val/mrr@10")))
    assert meta["model_type"] == "bi-encoder" and "best_step" in meta
    assert "modules.json" in {e["path"] for e in models[-1]["manifest"]["contents"]}
    (data,) = [a for a in run.artifacts if a["type"] == "dataset"]
    assert data["name"] == "training-data-scifact"
    assert json.loads(data["metadata"])["train_size"] == 32


def test_plain_trainer_logs_media_and_model_at_end(
    wandb_offline: Path, tiny_bert_dir: Path, media_calls: list[dict[str, Any]]
) -> None:
    import wandb

    wandb.teardown()
    evaluator = make_evaluator()
    callback = SearchWandbCallback(evaluator, dataset_name="scifact", log_tables="end", model_artifact="end")
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback)
    trainer.train()
    run = only_run(wandb_offline)

    (row,) = media_rows(run)  # once, at the end
    assert row["train/global_step"] == trainer.state.global_step == 6
    assert len(media_calls) == 1 and media_calls[0]["result"] is evaluator.last_result
    examples = table_json(run, row, "retrieval_examples")
    assert (
        examples["columns"] == EXAMPLE_COLUMNS and len(examples["data"]) == 12 * 5
    )  # all 12 queries x top 5
    errors = table_json(run, row, "error_analysis")
    assert errors["columns"] == ERROR_COLUMNS and len(errors["data"]) == row["error_analysis.nrows"]

    (model,) = [a for a in run.artifacts if a["type"] == "model"]
    assert set(model["aliases"]) == {"best", "latest"}
    assert model["description"].startswith("Best model (MRR@10: ")
    meta = json.loads(model["metadata"])
    assert meta["best_mrr@10"] == pytest.approx(max(run.series("val/mrr@10")))
    files = {e["path"] for e in model["manifest"]["contents"]}
    assert "tokenizer.json" in files or "vocab.txt" in files

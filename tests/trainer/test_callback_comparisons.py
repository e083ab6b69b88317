"""Each evaluation during training against the start and the best: per-query files in the run, paired tests
logged under `val/vs_start/` and `val/vs_best/`, the regressions table next to the media (issue 26)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hf_search_wandb.core.metrics.significance import paired_test
from hf_search_wandb.tracking.per_query_scores import read_scores
from hf_search_wandb.tracking.tables import REGRESSION_COLUMNS
from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.training import make_evaluator, only_run, pairs


def _train(root: Path, *, after: str | None = None, **options: object) -> None:
    """Train 4 steps, evaluating at 0, 2 and 4; `after`: one more `trainer.evaluate` with that key prefix."""
    import wandb
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses

    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    wandb.teardown()  # let wandb read this test's WANDB_DIR
    model = make_tiny_sentence_transformer(root / "model")
    evaluator = make_evaluator()
    rows = pairs(32)
    train = Dataset.from_dict(
        {"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]}
    )
    args = SentenceTransformerTrainingArguments(
        str(root / "out"), per_device_train_batch_size=8, num_train_epochs=1, logging_steps=1,
        eval_strategy="steps", eval_steps=2, eval_on_start=True, save_strategy="no", learning_rate=5e-3, seed=1,
        report_to="none", disable_tqdm=True,
    )  # fmt: skip
    callback = SearchWandbCallback(evaluator, dataset_name="scifact", model_artifact="off", **options)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train, loss=losses.MultipleNegativesRankingLoss(model),
        evaluator=evaluator, callbacks=[callback],
    )  # fmt: skip
    trainer.train()
    if after:
        trainer.evaluate(metric_key_prefix=after)
    callback.finish()


def test_each_evaluation_is_kept_and_tested_against_the_start_and_the_best(wandb_offline: Path) -> None:
    _train(wandb_offline, log_tables="every", eval_metric="ndcg@10")
    run = only_run(wandb_offline)

    kept = read_scores(run.run_dir)
    assert [(s.namespace, s.step) for s in kept] == [("val", 0), ("val", 2), ("val", 4)]
    logged = {row["train/global_step"]: row for row in run.history if "val/ndcg@10" in row}
    for scores in kept:  # the files hold what the run logged: their means are the logged metrics
        assert scores.primary == "ndcg@10" and len(scores.query_ids) == 12
        for metric in ("mrr@10", "ndcg@10", "recall@100", "map", "hit@10"):
            assert scores.mean(metric) == pytest.approx(logged[scores.step][f"val/{metric}"], abs=1e-12)

    rows = {row["train/global_step"]: row for row in run.history if "val/vs_start/delta" in row}
    assert sorted(rows) == [2, 4]  # the baseline (step 0) is not compared with itself
    start, *later = kept
    best_before = {2: start, 4: max(kept[:2], key=lambda s: s.mean("ndcg@10"))}
    for scores in later:
        row = rows[scores.step]
        for ref, reference in (("vs_start", start), ("vs_best", best_before[scores.step])):
            primary = paired_test(reference.values["ndcg@10"], scores.values["ndcg@10"])
            assert row[f"val/{ref}/step"] == reference.step
            assert row[f"val/{ref}/delta"] == pytest.approx(
                scores.mean("ndcg@10") - reference.mean("ndcg@10")
            )
            assert row[f"val/{ref}/p_randomization"] == pytest.approx(primary.p_randomization)
            assert row[f"val/{ref}/p_ttest"] == pytest.approx(primary.p_ttest, nan_ok=True)
            assert (row[f"val/{ref}/wins"], row[f"val/{ref}/losses"], row[f"val/{ref}/ties"]) == (
                primary.wins,
                primary.losses,
                primary.ties,
            )
            assert primary.wins + primary.losses + primary.ties == 12
            for other in ("mrr@10", "recall@100", "map", "hit@10"):  # the other measures: their change only
                change = scores.mean(other) - reference.mean(other)
                assert row[f"val/{ref}/{other}/delta"] == pytest.approx(change, abs=1e-12)
                assert f"val/{ref}/{other}/p_randomization" not in row

    # the regressions table, with the media of each compared evaluation, as wandb stored it
    tables = [row for row in run.history if "regressions._type" in row]
    assert [row["train/global_step"] for row in tables] == [2, 4]
    for row in tables:
        table = json.loads((run.run_dir / "files" / row["regressions.path"]).read_text())
        assert table["columns"] == REGRESSION_COLUMNS
        scores = next(s for s in kept if s.step == row["train/global_step"])
        dropped = int((scores.values["ndcg@10"] < start.values["ndcg@10"] - 1e-12).sum())
        assert len(table["data"]) == dropped
        deltas = [r[-1] for r in table["data"]]
        assert deltas == sorted(deltas) and all(d < 0 for d in deltas)
        for r in table["data"]:
            assert r[-1] == pytest.approx(r[-2] - r[-3])


def test_tables_off_keeps_the_tests_and_drops_the_regressions_table(wandb_offline: Path) -> None:
    _train(wandb_offline, log_tables="off")
    run = only_run(wandb_offline)
    assert [s.primary for s in read_scores(run.run_dir)] == ["mrr@10"] * 3  # the default eval_metric
    assert [row["train/global_step"] for row in run.history if "val/vs_best/p_ttest" in row] == [2, 4]
    assert not any("regressions._type" in row for row in run.history)


def test_an_evaluation_after_training_is_kept_not_compared(wandb_offline: Path) -> None:
    _train(wandb_offline, after="test", log_tables="off", finish_on_train_end=False)
    run = only_run(wandb_offline)
    kept = [(s.namespace, s.step) for s in read_scores(run.run_dir)]
    assert kept == [("test", 4), ("val", 0), ("val", 2), ("val", 4)]
    assert any("test/ndcg@10" in row for row in run.history)
    assert not any(key.startswith("test/vs_") for row in run.history for key in row)
    test, last = read_scores(run.run_dir, "test")[0], read_scores(run.run_dir, "val")[-1]
    assert test.query_ids == last.query_ids  # the same evaluator on the same model: the same scores
    np.testing.assert_array_equal(test.values["mrr@10"], last.values["mrr@10"])

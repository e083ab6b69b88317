"""Matryoshka: `truncate_dims` scores every size from one encoding pass, equal to evaluating a model truncated to
that size (ours and sentence-transformers' own evaluator), logged under `val/{metric}@dim{d}`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hf_search_wandb.core import compat
from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.tracking.log_keys import split_logs, summary_goal
from hf_search_wandb.trainer.callback import SearchWandbCallback
from tests.helpers.paths import SCIFACT
from tests.helpers.tiny_models import WORDS, make_tiny_sentence_transformer, tokens
from tests.helpers.training import make_evaluator, only_run, plain_trainer

METRICS = ("mrr@10", "ndcg@10", "recall@100", "map", "hit@10")


class ProjectionEncoder:
    """Bag of words times a fixed random matrix (seeded): continuous scores; counts its encoding calls."""

    similarity = "cosine"

    def __init__(self, dim: int = 24, columns: int | None = None) -> None:
        rng = np.random.default_rng(0)
        self.vocab = {w: i for i, w in enumerate(WORDS)}
        self.matrix = rng.normal(size=(len(WORDS) + 1, dim)).astype(np.float32)
        self.columns = columns  # a model that only emits its first `columns` dimensions
        self.calls = 0

    def encode_texts(self, texts: Sequence[str], kind: str) -> np.ndarray:
        self.calls += 1
        counts = np.zeros((len(texts), len(WORDS) + 1), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in tokens(text):
                counts[row, self.vocab.get(word, len(WORDS))] += 1
        emb = counts @ self.matrix
        return emb[:, : self.columns] if self.columns else emb


@pytest.fixture(scope="module")
def small_scifact():
    data = load_beir(SCIFACT, "test")
    return data.queries, data.corpus, data.qrels


def _evaluator(data, **kwargs) -> RetrievalEvaluator:
    queries, corpus, qrels = data
    return RetrievalEvaluator(queries, corpus, qrels, max_queries=60, corpus_sample=400, seed=1, **kwargs)


def test_every_size_from_one_encoding_equals_a_truncated_model(small_scifact) -> None:
    plain = ProjectionEncoder()
    _evaluator(small_scifact).evaluate(plain)
    encoder = ProjectionEncoder()
    evaluator = _evaluator(small_scifact, truncate_dims=[4, 16, 24])
    metrics = evaluator(encoder)
    assert encoder.calls == plain.calls  # one encoding pass, whatever the number of sizes
    for dim in (4, 16, 24):
        alone = _evaluator(small_scifact).evaluate(ProjectionEncoder(columns=dim)).metrics
        for name in METRICS:
            assert metrics[f"val_{name}@dim{dim}"] == pytest.approx(alone[name], abs=1e-6), (dim, name)
            assert evaluator.last_dim_results[dim].metrics[name] == pytest.approx(alone[name], abs=1e-6)
    # the un-suffixed metrics stay the full embedding's; the primary metric is unchanged
    full = _evaluator(small_scifact).evaluate(ProjectionEncoder()).metrics
    assert {k: metrics[f"val_{k}"] for k in METRICS} == pytest.approx(full, abs=1e-9)
    assert evaluator.primary_metric == "val_mrr@10"
    assert metrics["val_mrr@10@dim4"] != pytest.approx(full["mrr@10"])  # sizes really differ


def test_sentence_transformer_sizes_equal_its_own_truncation_and_its_evaluator(small_scifact, tmp_path) -> None:
    InformationRetrievalEvaluator = compat.st_evaluation().InformationRetrievalEvaluator
    model = make_tiny_sentence_transformer(tmp_path)
    evaluator = _evaluator(small_scifact, truncate_dims=[8, 16])
    metrics = evaluator(model)
    for dim in (8, 16):
        model.truncate_dim = dim
        try:
            ours = _evaluator(small_scifact).evaluate(model).metrics
            relevant = {q: {d for d, g in docs.items() if g > 0} for q, docs in evaluator.qrels.items()}
            theirs = InformationRetrievalEvaluator(
                evaluator.queries, evaluator.corpus, relevant, mrr_at_k=[10], ndcg_at_k=[10],
                accuracy_at_k=[10], precision_recall_at_k=[100], map_at_k=[100], write_csv=False,
                truncate_dim=dim,
            )(model)  # fmt: skip
        finally:
            model.truncate_dim = None
        for name in METRICS:
            assert metrics[f"val_{name}@dim{dim}"] == pytest.approx(ours[name], abs=1e-6), (dim, name)
        st = {k.split("cosine_", 1)[1]: v for k, v in theirs.items() if "cosine_" in k}
        assert metrics[f"val_ndcg@10@dim{dim}"] == pytest.approx(st["ndcg@10"], abs=1e-4)
        assert metrics[f"val_mrr@10@dim{dim}"] == pytest.approx(st["mrr@10"], abs=1e-4)
        assert metrics[f"val_recall@100@dim{dim}"] == pytest.approx(st["recall@100"], abs=1e-4)


def test_sizes_are_checked() -> None:
    queries, corpus, qrels = {"q": "cell"}, {"d": "cell", "e": "mice"}, {"q": {"d": 1}}
    with pytest.raises(TypeError, match="list of sizes"):
        RetrievalEvaluator(queries, corpus, qrels, truncate_dims=64)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive integers"):
        RetrievalEvaluator(queries, corpus, qrels, truncate_dims=[64, 0])
    with pytest.raises(ValueError, match=r"truncate_dims \[64\] exceed the embedding size 24"):
        RetrievalEvaluator(queries, corpus, qrels, truncate_dims=[64, 8]).evaluate(ProjectionEncoder())


def test_size_keys_route_to_val_and_are_maximised() -> None:
    logs = split_logs({"eval_val_ndcg@10@dim64": 0.5, "eval_val_ndcg@10": 0.6, "eval_loss": 1.0})
    assert logs.val == {"val/ndcg@10@dim64": 0.5, "val/ndcg@10": 0.6, "val/loss": 1.0}
    assert summary_goal("val/ndcg@10@dim64") == "max"


def test_plain_trainer_logs_every_size_to_wandb(wandb_offline: Path, tiny_bert_dir: Path) -> None:
    evaluator = make_evaluator()
    evaluator.truncate_dims = [16, 8]
    callback = SearchWandbCallback(evaluator, dataset_name="scifact", log_tables="off", log_histograms=False,
                                   model_artifact="off")
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback)
    trainer.train()
    run = only_run(wandb_offline)
    for dim in (16, 8):
        for name in METRICS:
            series = run.series(f"val/{name}@dim{dim}")
            assert len(series) == 2 and all(0.0 <= v <= 1.0 for v in series), (dim, name)
            assert run.summary[f"val/{name}@dim{dim}"] == {"max": max(series)}
    assert len(run.series("val/mrr@10")) == 2
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert [h["eval_val_ndcg@10@dim8"] for h in evals] == pytest.approx(run.series("val/ndcg@10@dim8"))


def test_a_normalising_model_is_re_normalised_after_slicing(tmp_path) -> None:
    import torch

    from hf_search_wandb.core.evaluation.matryoshka import normalizes, slice_embeddings
    from hf_search_wandb.core.models.factory import as_encoder

    model = make_tiny_sentence_transformer(tmp_path)
    assert not normalizes(as_encoder(model))
    model.append(compat.st_modules().Normalize())
    assert normalizes(as_encoder(model))
    sliced = slice_embeddings(torch.randn(5, 32), 8, normalize=True)
    assert sliced.shape == (5, 8) and torch.allclose(sliced.norm(dim=1), torch.ones(5))

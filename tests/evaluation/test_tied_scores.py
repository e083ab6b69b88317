"""A collapsed model (every document gets the same score) is said to be one, for every evaluator family.

Such a model's metrics are the tie rule's (doc id descending, trec_eval's order), not the model's: when the
relevant document happens to have the largest id, a model that outputs one constant vector scores MRR@10 1.0.
The evaluation keeps the metrics (they are what trec_eval would say) but logs one warning per evaluation and
keeps it on the result (`tie_warning`, `tied_fraction`) for the callback and the tables to show.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import torch

from hf_search_wandb import RerankingEvaluator, RetrievalEvaluator
from hf_search_wandb.core.evaluation.results import COLLAPSED_FRACTION, TIE_K, RetrievalResult
from tests.helpers.synthetic import synthetic_data
from tests.helpers.tiny_models import (
    WORDS,
    make_tiny_cross_encoder,
    make_tiny_sentence_transformer,
    make_tiny_sparse_encoder,
)

QUERIES, CORPUS, _ = synthetic_data(tuple(WORDS))
#: every query's relevant doc is the one the tie rule puts first: the largest id as text ('doc99' > 'doc299')
WINNER = max(CORPUS)
QRELS = {q: {WINNER: 1} for q in QUERIES}
#: a first stage for the reranker: 20 candidates a query, the relevant one among them, scores all different
RUN = {
    q: {**{f"doc{(i * 7 + j) % 300}": 1.0 - j / 40 for j in range(19)}, WINNER: 0.01}
    for i, q in enumerate(QUERIES)
}


def _constant_dense(tmp_path: Any) -> Any:
    """A real SentenceTransformer whose last module maps every text to the same vector (zero weights, bias 1)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    tiny = make_tiny_sentence_transformer(tmp_path / "st")
    head = Dense(tiny.get_embedding_dimension(), 8, activation_function=torch.nn.Identity())
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.fill_(1.0)
    return SentenceTransformer(modules=[*tiny, head], device="cpu")


def _constant_sparse(tmp_path: Any) -> Any:
    """A real SPLADE model whose MLM head gives every token of every text the same logits."""
    model = make_tiny_sparse_encoder(tmp_path / "splade")
    mlm = model[0].auto_model
    with torch.no_grad():
        mlm.cls.predictions.decoder.weight.zero_()
        mlm.cls.predictions.bias.fill_(1.0)
    return model


def _constant_cross_encoder(tmp_path: Any) -> Any:
    """A real CrossEncoder whose classification head scores every pair 0.3."""
    model = make_tiny_cross_encoder(tmp_path / "ce")
    with torch.no_grad():
        model.model.classifier.weight.zero_()
        model.model.classifier.bias.fill_(0.3)
    return model


def _working(family: str, tmp_path: Any) -> Any:
    if family == "dense":
        return make_tiny_sentence_transformer(tmp_path / "st-ok")
    if family == "sparse":
        return make_tiny_sparse_encoder(tmp_path / "splade-ok")
    return make_tiny_cross_encoder(tmp_path / "ce-ok")


FAMILIES = {
    "dense": (
        _constant_dense,
        lambda: RetrievalEvaluator(QUERIES, CORPUS, QRELS, depth=20, metrics=["mrr@10"]),
    ),
    "sparse": (
        _constant_sparse,
        lambda: RetrievalEvaluator(QUERIES, CORPUS, QRELS, depth=20, metrics=["mrr@10"]),
    ),
    "reranking": (
        _constant_cross_encoder,
        lambda: RerankingEvaluator(QUERIES, CORPUS, QRELS, RUN, depth=20, metrics=["mrr@10"]),
    ),
}


def _tie_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "tie order" in r.getMessage() and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_constant_model_is_flagged_once_per_evaluation_and_on_the_result(family, tmp_path, caplog) -> None:
    make_model, make_evaluator = FAMILIES[family]
    evaluator = make_evaluator()
    model = make_model(tmp_path)
    with caplog.at_level(logging.WARNING):
        result = evaluator.evaluate(model)
    # the failure mode itself: a perfect score from a model that ranks nothing
    assert result.metrics["mrr@10"] == 1.0
    assert result.tied_fraction == 1.0
    assert result.tie_warning is not None
    assert f"all {len(QUERIES)} queries' top-{TIE_K} scores are tied" in result.tie_warning
    assert "the metrics reflect the evaluator's tie order (doc id descending) only" in result.tie_warning
    assert _tie_records(caplog) == [result.tie_warning]  # logged once for the evaluation
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = evaluator(model)  # sentence-transformers' entry point: the same, once more
    assert again[evaluator.primary_metric] == 1.0 and len(_tie_records(caplog)) == 1
    assert evaluator.last_result is not None and evaluator.last_result.tie_warning == result.tie_warning


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_model_that_separates_the_documents_gets_no_warning(family, tmp_path, caplog) -> None:
    evaluator = FAMILIES[family][1]()
    with caplog.at_level(logging.WARNING):
        result = evaluator.evaluate(_working(family, tmp_path))
    assert result.tie_warning is None and result.tied_fraction < COLLAPSED_FRACTION
    assert _tie_records(caplog) == []


def _result(scores: list[list[float]]) -> RetrievalResult:
    top = np.asarray(scores, dtype=np.float32)
    n, depth = top.shape
    return RetrievalResult(
        metrics={}, query_ids=[f"q{i}" for i in range(n)], doc_ids=[f"d{j}" for j in range(depth)],
        top_indices=np.tile(np.arange(depth), (n, 1)), top_scores=top, relevant_ranks={},
        positive_scores=np.zeros(0), negative_scores=np.zeros(0), timings={},
    )  # fmt: skip


def test_the_threshold_is_nine_queries_in_ten_tied_on_their_top_ten() -> None:
    tied, spread = [0.5] * 12, [0.9 - 0.01 * j for j in range(12)]
    assert _result([tied] * 9 + [spread]).check_ties("val") is not None  # 90 %: collapsed
    assert _result([tied] * 8 + [spread] * 2).check_ties("val") is None  # 80 %: a model with some ties
    # only the top 10 count: a tail that differs does not make a tied head any less tied
    assert _result([[0.5] * 10 + [0.1, 0.0]]).tied_fraction == 0.0  # not computed until checked
    head_tied = _result([[0.5] * 10 + [0.1, 0.0]])
    assert head_tied.check_ties("val") is not None and head_tied.tied_fraction == 1.0
    # float noise of a collapsed model (1e-8 apart) is a tie; a real difference (1e-3) is not
    assert _result([[0.5 + 1e-8 * j for j in range(10)]]).check_ties("val") is not None
    assert _result([[0.5 + 1e-3 * j for j in range(10)]]).check_ties("val") is None
    # a query with a single ranked document cannot be tied and is not counted
    one = _result([[0.3]])
    assert one.check_ties("val") is None and one.tied_fraction == 0.0

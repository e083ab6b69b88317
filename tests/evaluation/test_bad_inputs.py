"""One table of bad inputs, refused the same way by every evaluator family.

Each row is something a user really passes by mistake; every evaluator must refuse it at construction with an
error that names the problem (the `match`), never store it silently (a grade of 1.5 kept as 1, ids `1` and
`"1"` merged into one judgement). The evaluators share one input check (`SearchEvaluator.checked_inputs`);
this test is what keeps it shared when a family is added: add it to `FAMILIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from datasets import Dataset

from hf_search_wandb import RerankingEvaluator, RetrievalEvaluator

QUERIES = {"q1": "what do cells do", "q2": "mice and men"}
CORPUS = {"d1": "cells divide", "d2": "mice eat", "d3": "men talk"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}
RUN = {"q1": {"d1": 0.9, "d2": 0.5, "d3": 0.1}, "q2": {"d3": 0.8, "d2": 0.7, "d1": 0.2}}


def retrieval(queries: Any, corpus: Any, qrels: Any, **options: Any) -> Any:
    return RetrievalEvaluator(queries, corpus, qrels, **{"metrics": ["mrr@2"], "depth": 2, **options})


def reranking(queries: Any, corpus: Any, qrels: Any, **options: Any) -> Any:
    return RerankingEvaluator(queries, corpus, qrels, RUN, **{"metrics": ["mrr@2"], "depth": 2, **options})


FAMILIES: dict[str, Callable[..., Any]] = {"retrieval": retrieval, "reranking": reranking}


def _with(**changes: Any) -> tuple[Any, Any, Any]:
    data = {"queries": dict(QUERIES), "corpus": dict(CORPUS), "qrels": {q: dict(d) for q, d in QRELS.items()}}
    data.update(changes)
    return data["queries"], data["corpus"], data["qrels"]


# (what the user did, (queries, corpus, qrels), options, error type, message that names it)
BAD_INPUTS: list[tuple[str, tuple[Any, Any, Any], dict[str, Any], type[Exception], str]] = [
    ("fractional grade", _with(qrels={"q1": {"d1": 1.5}, "q2": {"d2": 1}}), {}, ValueError, "not an integer"),
    ("NaN grade", _with(qrels={"q1": {"d1": float("nan")}, "q2": {"d2": 1}}), {}, ValueError, "not an integer"),
    ("text grade", _with(qrels={"q1": {"d1": "yes"}, "q2": {"d2": 1}}), {}, ValueError, "not a number"),
    ("bool grade", _with(qrels={"q1": {"d1": True}, "q2": {"d2": 1}}), {}, ValueError, "is a bool"),
    ("ids 1 and '1' in one qrels entry", _with(qrels={"q1": {"d1": 1}, "q2": {1: 1, "1": 0}}), {}, ValueError,
     "same id once normalised"),
    ("ids 1 and '1' among the queries", _with(queries={1: "a", "1": "b", "q1": "c", "q2": "d"}), {}, ValueError,
     "same id once normalised"),
    ("float doc id", _with(corpus={**CORPUS, 1.0: "x"}), {}, TypeError, "ids must be strings or integers"),
    ("blank query id", _with(queries={**QUERIES, " ": "x"}), {}, ValueError, "non-empty strings"),
    ("None as a text", _with(corpus={**CORPUS, "d4": None}), {}, TypeError, "texts must be strings"),
    ("a number as a text", _with(queries={**QUERIES, "q3": 7}), {}, TypeError, "texts must be strings"),
    # half of an emoji (a JSON "\\ud83d" escape, a UTF-16 pair cut in two): tokenizers cannot encode it
    ("lone surrogate in a document", _with(corpus={**CORPUS, "d7": "emoji broken \ud83d here"}), {}, ValueError,
     r"corpus\['d7'\]: text is not valid Unicode \(lone surrogate '\\ud83d' at position 13\); clean it, e\.g\. "
     r"text\.encode\('utf-8', 'replace'\)\.decode\(\)"),
    ("lone surrogate in a query", _with(queries={**QUERIES, "q2": "mice \udc00"}), {}, ValueError,
     r"queries\['q2'\]: text is not valid Unicode \(lone surrogate '\\udc00' at position 5\)"),
    ("surrogate pair split into two characters", _with(corpus={**CORPUS, "d1": "\ud83d\ude00"}), {}, ValueError,
     r"corpus\['d1'\]: text is not valid Unicode \(lone surrogate '\\ud83d' at position 0\)"),
    ("qrels entry not a mapping", _with(qrels={"q1": ["d1"], "q2": {"d2": 1}}), {}, TypeError, "must be a mapping"),
    ("empty corpus", _with(corpus={}), {}, ValueError, "corpus is empty"),
    ("no queries", _with(queries={}), {}, ValueError, "no queries"),
    ("empty qrels", _with(qrels={}), {}, ValueError, "qrels are empty"),
    ("no relevant judgement", _with(qrels={"q1": {"d1": 0}, "q2": {"d2": 0}}), {}, ValueError,
     "No query has a relevant document"),
    ("metrics as one string", _with(), {"primary_metric": "mrr@2", "metrics": "mrr@2"}, TypeError,
     "list of strings"),
    ("unknown metric", _with(), {"primary_metric": "mrr@2", "metrics": ["mrr@2", "ndcg_at_10"]}, ValueError,
     "ndcg_at_10"),
    ("cut-off above depth", _with(), {"primary_metric": "mrr@2", "metrics": ["recall@5"]}, ValueError, "depth"),
    ("unknown precision", _with(), {"primary_metric": "mrr@2", "precision": "int8"}, ValueError, "precision must be"),
    ("zero max_queries", _with(), {"primary_metric": "mrr@2", "max_queries": 0}, ValueError, "max_queries"),
    ("negative batch_tokens", _with(), {"primary_metric": "mrr@2", "batch_tokens": -1}, ValueError, "batch_tokens"),
    ("bool max_batch_size", _with(), {"primary_metric": "mrr@2", "max_batch_size": True}, ValueError,
     "max_batch_size"),
]


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize(("case", "data", "options", "error", "match"), BAD_INPUTS, ids=[r[0] for r in BAD_INPUTS])
def test_every_evaluator_refuses_the_same_bad_input(family, case, data, options, error, match) -> None:
    options = {"primary_metric": "mrr@2", **options}
    with pytest.raises(error, match=match):
        FAMILIES[family](*data, **options)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_good_input_of_the_table_is_accepted_with_ids_read_as_text(family) -> None:
    evaluator = FAMILIES[family]({1: "what do cells do", "q2": "mice"}, CORPUS, {1: {"d1": 1}, "q2": {"d2": 1.0}},
                                 primary_metric="mrr@2")
    assert evaluator.qrels == {"1": {"d1": 1}, "q2": {"d2": 1}}
    assert set(evaluator.queries) == {"1", "q2"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_real_unicode_is_accepted_and_a_refused_text_would_have_failed_the_tokenizer(family, tiny_bert_dir) -> None:
    """Emoji, accents and CJK pass the check; the lone surrogate it refuses is what the tokenizer cannot take
    (before the check it was stored, then failed the first evaluation with a `TypeError` naming no text)."""
    from transformers import AutoTokenizer

    corpus = {**CORPUS, "d4": "café 😀 细胞 — naïve", "d5": "\U0001f600 ok"}
    evaluator = FAMILIES[family](QUERIES, corpus, QRELS, primary_metric="mrr@2")
    assert evaluator.corpus["d4"] == "café 😀 细胞 — naïve"
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    tokenizer(["café 😀 细胞"])
    with pytest.raises(TypeError):
        tokenizer(["emoji broken \ud83d here"])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_datasets_objects_go_through_the_same_check(family) -> None:
    queries = Dataset.from_dict({"_id": ["q1", "q2"], "text": ["cells", "mice"]})
    corpus = Dataset.from_dict({"_id": ["d1", "d2", "d3"], "title": ["", "", ""], "text": ["a", "b", "c"]})
    bad = Dataset.from_dict({"query-id": ["q1", "q2"], "corpus-id": ["d1", "d2"], "score": [1.5, 1.0]})
    with pytest.raises(ValueError, match="not an integer"):
        FAMILIES[family](queries, corpus, bad, primary_metric="mrr@2")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_default_metrics_fit_a_shallow_depth_and_say_so(family, caplog) -> None:
    # a top-2 first stage (or depth=2): recall@100 of the defaults becomes recall@2, in one logged line
    make = RetrievalEvaluator if family == "retrieval" else RerankingEvaluator
    args = (QUERIES, CORPUS, QRELS) if family == "retrieval" else (QUERIES, CORPUS, QRELS, RUN)
    with caplog.at_level("WARNING"):
        evaluator = make(*args, depth=2, primary_metric="mrr@2")
    assert "recall@2" in evaluator.metrics and not any(m.endswith(("@10", "@100")) for m in evaluator.metrics)
    assert len(evaluator.metrics) == len(set(evaluator.metrics))
    (line,) = [r.getMessage() for r in caplog.records if "default metrics are cut" in r.getMessage()]
    assert "recall@100 -> recall@2" in line and "metrics=[" in line
    with pytest.raises(ValueError, match=r"recall@100 needs the top 100 documents but depth is 2: pass depth >= 100"):
        make(*args, depth=2, primary_metric="mrr@2", metrics=["recall@100"])


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("name", ["../escape", "a/../../b", "/abs", "..", "sub\\dir"])
def test_an_evaluator_name_cannot_write_its_csv_outside_the_output_folder(family, name, tmp_path) -> None:
    evaluator = FAMILIES[family](QUERIES, CORPUS, QRELS, primary_metric="mrr@2", name=name)
    out = tmp_path / "out"
    path = evaluator.csv_path(out)
    assert path.parent == out and path.name.endswith(".csv") and "/" not in path.name
    assert path.resolve().parent == out.resolve()

"""Bad inputs are refused before any training or encoding, with an error naming the problem and the fix."""

from __future__ import annotations

import math

import pytest
from transformers import TrainerCallback

from hf_search_wandb.core.data.beir import load_corpus, load_qrels, load_queries
from hf_search_wandb.core.data.inputs import normalize_id
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.trainer.options import SearchWandbConfig

QUERIES = {"q1": "what is x", "q2": "what is y"}
CORPUS = {"d1": "x is a letter", "d2": "y is another", "d3": "z"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 2}}


# ---------------------------------------------------------------- grades
@pytest.mark.parametrize("bad, says", [
    (0.5, "grade 0.5 is not an integer"),
    ("high", "grade 'high' is not a number"),
    (math.nan, "grade nan is not an integer"),
])
def test_a_grade_that_is_not_an_integer_is_refused_with_the_hint(bad, says):
    with pytest.raises(ValueError, match=says) as info:
        RetrievalEvaluator(QUERIES, CORPUS, {"q1": {"d1": bad}, "q2": {"d2": 1}})
    assert "round(2 * label)" in str(info.value) and "qrels['q1']['d1']" in str(info.value)


def test_integral_float_and_text_grades_are_accepted():
    evaluator = RetrievalEvaluator(QUERIES, CORPUS, {"q1": {"d1": 1.0}, "q2": {"d2": "2"}})
    assert evaluator.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}


# ---------------------------------------------------------------- ids
def test_int_and_str_ids_are_one_id_everywhere():
    evaluator = RetrievalEvaluator({1: "what is x", 2: "what is y"}, {10: "x", "20": "y"}, {"1": {10: 1}, 2: {"20": 1}})
    assert evaluator.qrels == {"1": {"10": 1}, "2": {"20": 1}}
    assert set(evaluator.queries) == {"1", "2"} and set(evaluator.corpus) == {"10", "20"}


def test_colliding_ids_are_refused():
    with pytest.raises(ValueError, match=r"queries: ids 1 and '1' are the same id"):
        RetrievalEvaluator({1: "a", "1": "b"}, CORPUS, QRELS)
    with pytest.raises(TypeError, match=r"ids must be strings or integers, got float 1\.0"):
        normalize_id(1.0, "corpus")


# ---------------------------------------------------------------- texts
def test_none_and_non_string_texts_are_refused():
    with pytest.raises(TypeError, match=r"queries\['q2'\]: texts must be strings, got NoneType None"):
        RetrievalEvaluator({"q1": "x", "q2": None}, CORPUS, QRELS)
    with pytest.raises(TypeError, match=r"corpus\['d3'\]: texts must be strings, got int 3"):
        RetrievalEvaluator(QUERIES, {**CORPUS, "d3": 3}, QRELS)


def test_a_lone_surrogate_in_a_beir_file_is_refused_at_load_naming_line_and_id(tmp_path):
    # a JSON `\ud83d` escape (half of an emoji) loads as a lone surrogate, which no tokenizer can encode
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "title": "", "text": "ok"}\n'
                                           '{"_id": "d7", "title": "T", "text": "emoji \\ud83d here"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "fine \\u00e9 \\ud83d\\ude00"}\n'
                                            '{"_id": "q2", "text": "cut \\udc00"}\n')
    with pytest.raises(ValueError, match=r"corpus.jsonl:2 \(id 'd7'\) `text`: text is not valid Unicode \(lone "
                                         r"surrogate '\\ud83d' at position 6\); clean it, e\.g\. text\.encode"):
        load_corpus(tmp_path / "corpus.jsonl")
    with pytest.raises(ValueError, match=r"queries.jsonl:2 \(id 'q2'\) `text`: text is not valid Unicode"):
        load_queries(tmp_path / "queries.jsonl")
    with pytest.raises(ValueError, match=r"queries.jsonl:2 \(id 'q2'\)"):  # load_beir reads the queries first
        RetrievalEvaluator.from_beir(tmp_path)
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "fine \\u00e9 \\ud83d\\ude00"}\n')
    with pytest.raises(ValueError, match=r"corpus.jsonl:2 \(id 'd7'\)"):
        RetrievalEvaluator.from_beir(tmp_path)


def test_a_beir_file_that_is_not_utf8_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes('{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"corpus.jsonl:2: not UTF-8 \(byte 0xe9 at byte 27 of the line\); re-save "
                                         r"the file as UTF-8"):
        load_corpus(path)


# ---------------------------------------------------------------- lists
def test_a_string_where_a_list_is_expected_is_refused():
    with pytest.raises(TypeError, match=r"metrics must be a list of strings, got the string 'mrr@10'; write \['mrr@10'\]"):
        RetrievalEvaluator(QUERIES, CORPUS, QRELS, metrics="mrr@10")
    with pytest.raises(TypeError, match=r"tags must be a list of strings, got the string 'abc'"):
        SearchWandbConfig(tags="abc")
    assert SearchWandbConfig(tags=("a", "bc")).tags == ["a", "bc"]


# ---------------------------------------------------------------- files
def test_qrels_first_row_is_data_unless_it_is_the_beir_header(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("q1\td1\t1.0\nq1\td2\t0\n")
    assert load_qrels(path) == {"q1": {"d1": 1, "d2": 0}}  # before: the first row was dropped as a "header"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert load_qrels(path) == {"q1": {"d1": 1}}


@pytest.mark.parametrize("text, says", [
    ("q1 d1 1\n", r"qrels.tsv:1: expected 3 tab-separated columns .* \(it looks space-separated"),
    ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\n", r"qrels.tsv:3: expected 3 tab-separated columns"),
    ("q1\td1\t1\nq2\td2\t0.5\n", r"qrels.tsv:2: grade '0.5' is not an integer"),
    ("q1\td1\t1\nq1\td1\t2\n", r"qrels.tsv:2: query 'q1', doc 'd1' is already judged on line 1"),
    ("qid\tdocid\trel\nq1\td1\t1\n", r"qrels.tsv:1: grade 'rel' is not a number"),
])
def test_malformed_qrels_rows_are_reported_by_line(tmp_path, text, says):
    path = tmp_path / "qrels.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=says):
        load_qrels(path)


def test_duplicate_and_textless_jsonl_records_are_refused_by_line(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d1", "text": "a"}\n{"_id": 2, "text": "b"}\n{"_id": "2", "text": "c"}\n')
    with pytest.raises(ValueError, match=r"corpus.jsonl:3: id '2' already appears on line 2"):
        load_corpus(corpus)
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"_id": "q1", "text": "a"}\n{"_id": "q2", "text": null}\n')
    with pytest.raises(TypeError, match=r"queries.jsonl:2 \(id 'q2'\) `text`: texts must be strings, got NoneType"):
        load_queries(queries)


# ---------------------------------------------------------------- eval_metric
@pytest.mark.parametrize("bad, says", [
    ("val/mrr@10", r"give the metric without its 'val/' prefix, e.g. eval_metric='mrr@10'"),
    ("eval_val_ndcg@10", r"without its 'eval_val_' prefix"),
    ("mrr10", r"Unknown metric 'mrr10'"),
])
def test_eval_metric_in_the_wrong_form_is_refused_at_construction(bad, says):
    with pytest.raises(ValueError, match=says):
        SearchWandbConfig(eval_metric=bad)


class _Steps(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def test_eval_metric_the_evaluator_does_not_compute_stops_training_before_the_first_step(tmp_path, wandb_offline):
    import torch
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from hf_search_wandb.trainer.callback import SearchWandbCallback
    from tests.helpers.wandb_records import run_dirs

    class OneWeight(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, labels=None):
            return {"loss": ((self.w - x) ** 2).mean()}

    evaluator = RetrievalEvaluator(QUERIES, CORPUS, QRELS, metrics=["mrr@10", "ndcg@10"])
    steps = _Steps()
    args = TrainingArguments(str(tmp_path / "out"), max_steps=2, use_cpu=True, report_to="none", save_strategy="no")
    trainer = Trainer(model=OneWeight(), args=args, train_dataset=Dataset.from_dict({"x": [0.5] * 8}),
                      callbacks=[SearchWandbCallback(evaluator, eval_metric="mrr@100"), steps])
    with pytest.raises(ValueError, match=r"eval_metric='mrr@100' is not computed by the evaluator \(it computes "
                                         r"mrr@10, ndcg@10\)"):
        trainer.train()
    assert steps.steps == 0 and not run_dirs(wandb_offline)

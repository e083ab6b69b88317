"""Retrieval-example / error-analysis tables and score histograms, checked against a hand-built result
and read back from a real offline wandb run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hf_search_wandb.core.evaluation.results import RetrievalResult
from hf_search_wandb.tracking.tables import (
    ERROR_COLUMNS,
    EXAMPLE_COLUMNS,
    TABLE_ROW_LIMIT,
    error_analysis_rows,
    log_evaluation_media,
    log_retrieval_examples,
    retrieval_example_rows,
    sample_query_ids,
    score_histograms,
    shorten,
)
from tests.helpers.wandb_records import read_run, run_dirs


def result_from_scores(
    scores: np.ndarray, query_ids: list[str], doc_ids: list[str], qrels: dict, depth: int
) -> RetrievalResult:
    """A RetrievalResult computed the slow, obvious way from a full score matrix."""
    order = np.argsort(-scores, axis=1, kind="stable")
    top = order[:, :depth]
    relevant_ranks: dict[str, dict[str, int]] = {}
    positives, negatives = [], []
    for i, qid in enumerate(query_ids):
        ranks = {doc_ids[j]: r + 1 for r, j in enumerate(order[i])}
        relevant_ranks[qid] = {d: ranks[d] for d, g in qrels.get(qid, {}).items() if g > 0 and d in ranks}
        positives += [scores[i, doc_ids.index(d)] for d in relevant_ranks[qid]]
        negatives += [scores[i, j] for j in top[i] if doc_ids[j] not in relevant_ranks[qid]]
    return RetrievalResult(
        metrics={"mrr@10": 0.5},
        query_ids=query_ids,
        doc_ids=doc_ids,
        top_indices=top.astype(np.int64),
        top_scores=np.take_along_axis(scores, top, axis=1).astype(np.float32),
        relevant_ranks=relevant_ranks,
        positive_scores=np.asarray(positives, dtype=np.float32),
        negative_scores=np.asarray(negatives, dtype=np.float32),
        timings={"total_s": 1.0},
    )


class FakeEvaluator:
    """The three attributes of RetrievalEvaluator that the tables read."""

    def __init__(self, queries: dict, corpus: dict, qrels: dict, last_result: RetrievalResult) -> None:
        self.queries, self.corpus, self.qrels, self.last_result = queries, corpus, qrels, last_result


@pytest.fixture
def setup() -> FakeEvaluator:
    rng = np.random.default_rng(3)
    n_q, n_d = 40, 300
    query_ids = [f"q{i}" for i in range(n_q)]
    doc_ids = [f"d{j}" for j in range(n_d)]
    queries = {q: f"query text {q} " * 3 for q in query_ids}
    corpus = {d: f"document {d} " + "long body " * (j % 50) for j, d in enumerate(doc_ids)}
    qrels = {q: {f"d{(7 * i) % n_d}": 1, f"d{(11 * i + 3) % n_d}": 2} for i, q in enumerate(query_ids)}
    qrels["q0"]["d5"] = 0  # judged non-relevant
    scores = rng.normal(size=(n_q, n_d))
    scores[0, 5] = 10  # q0's top-1 is a judged non-relevant doc
    result = result_from_scores(scores, query_ids, doc_ids, qrels, depth=50)
    result.relevant_ranks["q1"] = {}  # q1: relevant docs with an unknown rank
    return FakeEvaluator(queries, corpus, qrels, result)


def test_examples_rows_are_topk_of_a_fixed_sample(setup: FakeEvaluator) -> None:
    ev, res = setup, setup.last_result
    rows = retrieval_example_rows(res, ev.queries, ev.corpus, ev.qrels, num_examples=7, k=4)
    assert len(rows) == 7 * 4
    chosen = sample_query_ids(res.query_ids, 7)
    for n, qid in enumerate(chosen):
        block = rows[4 * n : 4 * n + 4]
        assert [r[1] for r in block] == [1, 2, 3, 4]
        assert {r[0] for r in block} == {shorten(ev.queries[qid])}
        expected_docs = res.ranked_doc_ids(qid, 4)
        assert [r[2] for r in block] == [shorten(ev.corpus[d]) for d in expected_docs]
        assert [r[3] for r in block] == pytest.approx(res.ranked_scores(qid, 4))
        assert [r[4] for r in block] == [ev.qrels[qid].get(d, 0) > 0 for d in expected_docs]
    assert all(len(r[2]) <= 200 for r in rows) and any(r[2].endswith("…") for r in rows)
    q0 = retrieval_example_rows(res, ev.queries, ev.corpus, ev.qrels, num_examples=40, k=1)[0]
    assert q0[4] is False  # grade 0 is not relevant


def test_sample_is_stable_across_order_and_changes_with_seed(setup: FakeEvaluator) -> None:
    ids = setup.last_result.query_ids
    assert sample_query_ids(ids, 10, seed=1) == sample_query_ids(ids[::-1], 10, seed=1)
    assert sample_query_ids(ids, 10, seed=1) != sample_query_ids(ids, 10, seed=2)
    assert sample_query_ids(ids, 100) == sorted(ids)


def test_example_rows_capped_below_wandb_limit(setup: FakeEvaluator) -> None:
    ev = setup
    rows = retrieval_example_rows(ev.last_result, ev.queries, ev.corpus, ev.qrels, num_examples=10**6, k=50)
    assert len(rows) <= TABLE_ROW_LIMIT
    assert len(rows) == 40 * 50  # every query when that fits


def test_error_rows_are_the_misses_with_true_ranks(setup: FakeEvaluator) -> None:
    ev, res = setup, setup.last_result
    rows = error_analysis_rows(res, ev.queries, ev.corpus, ev.qrels, error_k=10)
    misses = {}
    for qid in res.query_ids:
        ranks = res.relevant_ranks[qid]
        best = min(ranks.values()) if ranks else None
        if best is None or best > 10:
            misses[shorten(ev.queries[qid])] = (qid, best)
    assert len(rows) == len(misses) > 0
    for query, expected_doc, top1_doc, top1_score, expected_rank in rows:
        qid, best = misses[query]
        if best is None:
            assert expected_rank == "not in top-50"
        else:
            assert expected_rank == best
            best_doc = min(res.relevant_ranks[qid], key=res.relevant_ranks[qid].get)
            assert expected_doc == shorten(ev.corpus[best_doc])
        top = res.ranked_doc_ids(qid, 1)[0]
        assert top1_doc == shorten(ev.corpus[top])
        assert top1_score == pytest.approx(res.ranked_scores(qid, 1)[0])
    ranks = [r[4] for r in rows]
    assert ranks[0] == "not in top-50"  # worst first
    numeric = [r for r in ranks if isinstance(r, int)]
    assert numeric == sorted(numeric, reverse=True)
    assert len(error_analysis_rows(res, ev.queries, ev.corpus, ev.qrels, error_k=10, max_rows=3)) == 3
    assert len(error_analysis_rows(res, ev.queries, ev.corpus, ev.qrels, error_k=300)) == 1  # only q1


def test_tables_equal_what_wandb_validates_row_by_row(setup: FakeEvaluator) -> None:
    import wandb

    from hf_search_wandb.tracking.tables import error_analysis_table, retrieval_examples_table

    ev, res = setup, setup.last_result
    fast = retrieval_examples_table(res, ev.queries, ev.corpus, ev.qrels)
    slow = wandb.Table(
        columns=EXAMPLE_COLUMNS, data=retrieval_example_rows(res, ev.queries, ev.corpus, ev.qrels)
    )
    assert fast.columns == slow.columns and fast.data == slow.data
    assert (
        fast._column_types == slow._column_types
    )  # wandb's inferred column types: str, int, str, float, bool
    rows = error_analysis_rows(res, ev.queries, ev.corpus, ev.qrels)
    fast = error_analysis_table(res, ev.queries, ev.corpus, ev.qrels)
    slow = wandb.Table(columns=ERROR_COLUMNS, data=rows, allow_mixed_types=True)
    assert fast.data == slow.data and fast._column_types == slow._column_types


def test_histograms_count_every_score(setup: FakeEvaluator) -> None:
    hists = score_histograms(setup.last_result)
    res = setup.last_result
    assert sum(hists["score_distribution"].histogram) == res.top_scores.size
    assert sum(hists["positive_scores"].histogram) == res.positive_scores.size
    assert sum(hists["negative_scores"].histogram) == res.negative_scores.size
    res.positive_scores = np.array([], dtype=np.float32)
    assert "positive_scores" not in score_histograms(res)


def test_bad_arguments_say_what_is_wrong(setup: FakeEvaluator) -> None:
    ev = setup
    with pytest.raises(ValueError, match="k must be >= 1"):
        retrieval_example_rows(ev.last_result, ev.queries, ev.corpus, ev.qrels, k=0)
    with pytest.raises(ValueError, match="num_examples"):
        sample_query_ids(["a"], -1)


def _table_json(run_dir: Path, path: str) -> dict:
    return json.loads((run_dir / "files" / path).read_text())


def test_logged_media_read_back_from_offline_run(setup: FakeEvaluator, wandb_offline: Path) -> None:
    import wandb

    ev = setup
    run = wandb.init(project="tables-test", dir=wandb_offline)
    logged = log_evaluation_media(run, ev.last_result, ev, step=120, num_examples=6, k=3, error_k=10)
    log_retrieval_examples(None, evaluator=ev, step=240, num_examples=2, k=2)  # the active run
    run.finish()
    assert set(logged) == {"retrieval_examples", "error_analysis", *score_histograms(ev.last_result)}

    records = read_run(run_dirs(wandb_offline)[-1])
    media = next(h for h in records.history if "error_analysis._type" in h)
    assert media["train/global_step"] == 120
    assert media["retrieval_examples._type"] == "table-file"
    assert (media["retrieval_examples.nrows"], media["retrieval_examples.ncols"]) == (18, 5)
    examples = _table_json(records.run_dir, media["retrieval_examples.path"])
    assert examples["columns"] == EXAMPLE_COLUMNS and len(examples["data"]) == 18
    errors = _table_json(records.run_dir, media["error_analysis.path"])
    assert errors["columns"] == ERROR_COLUMNS
    assert (
        len(errors["data"])
        == media["error_analysis.nrows"]
        == len(error_analysis_rows(ev.last_result, ev.queries, ev.corpus, ev.qrels))
    )
    assert "not in top-50" in [row[4] for row in errors["data"]]
    for key in ("score_distribution", "positive_scores", "negative_scores"):
        assert media[f"{key}._type"] == "histogram"
        assert len(media[f"{key}.values"]) + 1 == len(media[f"{key}.bins"])
    assert sum(media["score_distribution.values"]) == ev.last_result.top_scores.size
    second = [h for h in records.history if "retrieval_examples.nrows" in h][-1]
    assert (second["train/global_step"], second["retrieval_examples.nrows"]) == (240, 4)


def test_no_run_or_disabled_run_logs_nothing(setup: FakeEvaluator, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    ev = setup
    monkeypatch.setattr(wandb, "run", None)  # no active run, whatever ran before
    assert log_evaluation_media(None, ev.last_result, ev, step=1) == {}
    run = wandb.init(mode="disabled")
    try:
        assert log_evaluation_media(run, ev.last_result, ev, step=1) == {}
        assert log_retrieval_examples(run, evaluator=ev) is None
    finally:
        run.finish()


def test_logging_media_never_encodes_again(tmp_path: Path, wandb_offline: Path) -> None:
    import wandb

    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
    from tests.helpers.paths import SCIFACT
    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(tmp_path)
    forwards = []
    model[0].register_forward_hook(lambda *_: forwards.append(1))  # every encoder forward pass
    evaluator = RetrievalEvaluator.from_beir(SCIFACT, "test", max_queries=20, corpus_sample=100)
    evaluator(model)
    after_eval = len(forwards)
    assert after_eval > 0  # the hook does see the evaluation's forward passes

    run = wandb.init(project="tables-test", dir=wandb_offline)
    logged = log_evaluation_media(run, evaluator.last_result, evaluator, step=1)
    log_retrieval_examples(run, evaluator=evaluator, step=2)
    run.finish()
    assert len(forwards) == after_eval
    assert {"retrieval_examples", "error_analysis", "score_distribution"} <= set(logged)
    assert logged["retrieval_examples"].columns == EXAMPLE_COLUMNS
    assert len(logged["retrieval_examples"].data) == 20 * 5

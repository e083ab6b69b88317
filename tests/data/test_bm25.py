"""The one BM25 build (`core.data.bm25`): hard-negative mining and reranking candidates rank alike."""

from __future__ import annotations

from hf_search_wandb.core.data.bm25 import BM25Index
from hf_search_wandb.core.data.candidates import bm25_candidates
from hf_search_wandb.core.data.hard_negatives import mine_bm25_negatives

# several documents share a text (exact BM25 ties) and ids sort differently as text than as numbers
CORPUS = {
    "d01": "insulin resistance in obese mice",
    "d10": "insulin resistance in rats",
    "d02": "insulin resistance in rats",
    "d3": "mice sleep less",
    "d30": "mice sleep less",
    "d4": "insulin dose and blood glucose",
    "d5": "heart virus infection",
    "d6": "resistance training in older adults",
    "d7": "obese mice gain weight",
    "d8": "obese mice gain weight",
}
QUERIES = {"q1": "insulin resistance mice", "q2": "obese mice sleep"}
QRELS = {"q1": {"d01": 1}, "q2": {"d7": 1}}


def test_both_callers_get_the_shared_index_ranking_in_trec_eval_order() -> None:
    index = BM25Index(CORPUS)
    rows, scores = index.top_k(list(QUERIES.values()), len(CORPUS))
    ranking = {
        q: [(index.doc_ids[r], float(s)) for r, s in zip(rows[i], scores[i], strict=True)]
        for i, q in enumerate(QUERIES)
    }
    for docs in ranking.values():  # trec_eval's order: score descending, ties by doc id descending
        assert docs == sorted(docs, key=lambda x: (x[1], x[0]), reverse=True)
    assert [d for d, _ in ranking["q1"][:3]] == ["d01", "d10", "d02"]  # d10 and d02 tie

    # reranking's first stage: the same documents, scores and order, cut to the depth
    assert bm25_candidates(QUERIES, CORPUS, 6) == {q: docs[:6] for q, docs in ranking.items()}

    # hard-negative mining: the same order, less the positives, their duplicates and the zero scores
    mined = mine_bm25_negatives(QUERIES, CORPUS, QRELS, num_negatives=2, max_candidates=len(CORPUS))
    for (qid, positive), negatives in zip(mined.pair_ids, mined.negative_ids, strict=True):
        expected = [d for d, s in ranking[qid] if s > 0 and CORPUS[d] != CORPUS[positive]]
        assert negatives == expected[:2]
    assert mined.negative_ids == [["d10", "d02"], ["d30", "d3"]]

"""The published number: all-MiniLM-L6-v2 on SciFact test (5,183 docs, 300 queries), fp32 on CPU.

MTEB / BEIR report nDCG@10 = 0.6451 for this model and dataset. Slow: encodes the whole corpus (minutes on a
2-core CPU), so it is excluded from `make test`; run with `make test-slow` or `pytest -m slow`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.core.metrics.scoring import score_run
from tests.helpers.paths import SCIFACT


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a 2-core CPU encodes 5,183 docs in ~5-15 min, longer when shared
def test_minilm_scifact_ndcg_matches_the_published_value(minilm_path: Path):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path), device="cpu")
    evaluator = RetrievalEvaluator.from_beir(SCIFACT, "test", precision="fp32")
    metrics = evaluator(model)
    print(f"SciFact test, MiniLM-L6 fp32: {metrics} in {evaluator.last_result.timings['total_s']:.0f} s")
    assert metrics["val_ndcg@10"] == pytest.approx(0.6451, abs=0.002)
    result = evaluator.last_result
    assert len(result.query_ids) == 300 and len(result.doc_ids) == 5183
    # the kept run scores to the same numbers under trec_eval's rules
    assert score_run(evaluator.qrels, result.run()) == pytest.approx(result.metrics, abs=1e-9)
    # every relevant doc has a true rank, and those inside the top 100 sit where the ranking says
    for qid, ranks in result.relevant_ranks.items():
        top = result.ranked_doc_ids(qid)
        for doc, rank in ranks.items():
            assert rank == (top.index(doc) + 1 if doc in top else rank) and rank >= 1
            assert (doc in top) == (rank <= len(top))

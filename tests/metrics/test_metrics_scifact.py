"""`score_run` against sentence-transformers' `InformationRetrievalEvaluator.compute_metrics` on SciFact.

Both scorers get the very same rankings (one encoding, one top-100 per query), so any difference comes
from the metric definitions alone. They agree on MRR@k, nDCG@k (SciFact's qrels are all grade 1),
Recall@k, Precision@k and Accuracy@k (= hit@k). They differ in two documented places:

* MAP@k: sentence-transformers divides by min(k, number of relevant docs); trec_eval's `map_cut_k`
  (our `map@k`) by the number of relevant docs. Equal whenever every query has <= k relevant docs.
* Ties: sentence-transformers orders equal scores by corpus id ascending, trec_eval by doc id descending.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import numpy as np
import pytest

from hf_search_wandb.core import compat
from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.core.metrics.scoring import score_run
from tests.helpers.paths import SCIFACT
from tests.helpers.tiny_models import tokens

DEPTH = 100
KS = (1, 3, 5, 10, 100)


def _st_evaluator(queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, dict[str, int]]):
    InformationRetrievalEvaluator = compat.st_evaluation().InformationRetrievalEvaluator
    relevant = {q: {d for d, g in docs.items() if g > 0} for q, docs in qrels.items()}
    return InformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        mrr_at_k=list(KS),
        ndcg_at_k=list(KS),
        accuracy_at_k=list(KS),
        precision_recall_at_k=list(KS),
        map_at_k=list(KS),
        write_csv=False,
    )


def _top_run(
    model, queries: dict[str, str], corpus: dict[str, str], depth: int = DEPTH
) -> dict[str, dict[str, float]]:
    """Encode once (cosine similarity, as both evaluators use) and keep the top `depth` per query."""
    doc_ids, qids = list(corpus), list(queries)
    docs = np.asarray(model.encode([corpus[d] for d in doc_ids], batch_size=64, normalize_embeddings=True))
    qs = np.asarray(model.encode([queries[q] for q in qids], batch_size=64, normalize_embeddings=True))
    scores = qs @ docs.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
    return {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(qids)}


class RandomProjectionEncoder:
    """A tiny random model: hashed bag of words times a fixed Gaussian matrix (seeded). Lexically similar
    texts get similar vectors, so rankings are far from trivial, and encoding 1,000 docs is instant."""

    def __init__(self, dim: int = 256, buckets: int = 1 << 14, seed: int = 0) -> None:
        self.buckets = buckets
        self.projection = np.random.default_rng(seed).standard_normal((buckets, dim)).astype(np.float32)

    def encode(self, texts: list[str], normalize_embeddings: bool = False, **_: object) -> np.ndarray:
        out = np.stack(
            [
                self.projection[[zlib.crc32(w.encode()) % self.buckets for w in tokens(t)] or [0]].sum(0)
                for t in texts
            ]
        )
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _compare(run: dict[str, dict[str, float]], queries: dict, corpus: dict, qrels: dict) -> dict[str, float]:
    """Score the same run both ways; assert equality where the definitions agree; return our figures."""
    evaluator = _st_evaluator(queries, corpus, qrels)
    hits = [[{"corpus_id": d, "score": s} for d, s in run[q].items()] for q in evaluator.queries_ids]
    theirs = evaluator.compute_metrics(hits)
    names = [f"{m}@{k}" for m in ("mrr", "ndcg", "recall", "precision", "hit", "map") for k in KS]
    ours = score_run(qrels, run, metrics=names, depth=DEPTH)
    st_name = {
        "mrr": "mrr@k",
        "ndcg": "ndcg@k",
        "recall": "recall@k",
        "precision": "precision@k",
        "hit": "accuracy@k",
    }
    for measure, their_key in st_name.items():
        for k in KS:
            assert ours[f"{measure}@{k}"] == pytest.approx(theirs[their_key][k], abs=1e-9), f"{measure}@{k}"
    # MAP@k: the same when no query has more than k relevant docs, ours lower otherwise.
    max_relevant = max(sum(g > 0 for g in docs.values()) for docs in qrels.values())
    for k in KS:
        if max_relevant <= k:
            assert ours[f"map@{k}"] == pytest.approx(theirs["map@k"][k], abs=1e-9)
        else:
            assert ours[f"map@{k}"] <= theirs["map@k"][k] + 1e-12
    ours["st_map@1"] = float(theirs["map@k"][1])
    return ours


def _has_ties(run: dict[str, dict[str, float]]) -> bool:
    return any(len(set(docs.values())) < len(docs) for docs in run.values())


def test_tie_rules_differ_and_ours_is_trec_eval() -> None:
    """The same tied run: sentence-transformers puts the smaller corpus id first, trec_eval the larger."""
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 0.5, "b": 0.5}}
    evaluator = _st_evaluator({"q": "x"}, {"a": "a", "b": "b"}, qrels)
    theirs = evaluator.compute_metrics([[{"corpus_id": d, "score": s} for d, s in run["q"].items()]])
    assert theirs["mrr@k"][10] == 1.0  # "a" first
    assert score_run(qrels, run, metrics=["mrr@10"]) == {"mrr@10": 0.5}  # "b" first, as trec_eval
    pytrec_eval = pytest.importorskip("pytrec_eval")
    assert pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)["q"]["recip_rank"] == 0.5


def test_map_at_k_denominators_differ() -> None:
    """3 relevant docs, the first at rank 1: ST MAP@1 = 1/min(1, 3) = 1, trec_eval map_cut_1 = 1/3."""
    qrels = {"q": {"a": 1, "b": 1, "c": 1}}
    run = {"q": {"a": 0.9, "x": 0.8, "b": 0.7}}
    evaluator = _st_evaluator({"q": "x"}, {d: d for d in "abcx"}, qrels)
    theirs = evaluator.compute_metrics([[{"corpus_id": d, "score": s} for d, s in run["q"].items()]])
    assert theirs["map@k"][1] == 1.0
    assert score_run(qrels, run, metrics=["map@1"]) == {"map@1": pytest.approx(1 / 3)}


def test_same_numbers_as_sentence_transformers_on_scifact_subset() -> None:
    """Fast: a tiny random model, 100 SciFact test queries and 1,000 docs (their relevant docs included)."""
    data = load_beir(SCIFACT, "test")
    rng = random.Random(0)
    qids = sorted(rng.sample(sorted(data.qrels), 100))
    qrels = {q: data.qrels[q] for q in qids}
    needed = {d for q in qids for d in qrels[q]}
    others = [d for d in data.corpus if d not in needed]
    doc_ids = sorted(needed) + rng.sample(others, 1000 - len(needed))
    corpus = {d: data.corpus[d] for d in doc_ids}
    queries = {q: data.queries[q] for q in qids}
    run = _top_run(RandomProjectionEncoder(), queries, corpus)
    assert not _has_ties(run)  # distinct scores: the two tie rules cannot matter here
    ours = _compare(run, queries, corpus, qrels)
    assert ours["ndcg@10"] > 0.1 and ours["mrr@100"] > ours["mrr@1"] > 0.0  # a real ranking, not all zeros


@pytest.mark.slow
@pytest.mark.timeout(3600)  # encoding 5,183 docs on a busy 2-core CPU can pass the default 900 s
def test_minilm_on_scifact_test_matches_sentence_transformers(minilm_path: Path) -> None:
    """The real all-MiniLM-L6-v2 on the full SciFact test split (300 queries, 5,183 docs): minutes on CPU."""
    from sentence_transformers import SentenceTransformer

    data = load_beir(SCIFACT, "test")
    model = SentenceTransformer(str(minilm_path), device="cpu")
    run = _top_run(model, data.queries, data.corpus)
    ours = _compare(run, data.queries, data.corpus, data.qrels)
    print({k: round(v, 4) for k, v in ours.items()})  # figures for docs/metrics.md (pytest -s)
    assert ours["ndcg@10"] == pytest.approx(0.6451, abs=0.002)
    assert ours["mrr@10"] == pytest.approx(0.6047, abs=0.002)
    assert np.isfinite(list(ours.values())).all()

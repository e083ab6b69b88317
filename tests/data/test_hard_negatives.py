"""Hard-negative mining: the dataset shape sentence-transformers trains on, and no false negatives."""

from __future__ import annotations

import logging
import random
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.core.data.hard_negatives import HardNegatives, mine_bm25_negatives, mine_dense_negatives
from hf_search_wandb.core.data.records import BeirData
from tests.helpers.paths import SCIFACT
from tests.helpers.tiny_models import tokens


@pytest.fixture(scope="module")
def scifact_subset() -> BeirData:
    """60 SciFact train queries and 600 docs (all their judged docs included)."""
    data = load_beir(SCIFACT, "train")
    rng = random.Random(0)
    qids = sorted(rng.sample(sorted(data.qrels), 60))
    qrels = {q: data.qrels[q] for q in qids}
    judged = {d for q in qids for d in qrels[q]}
    others = sorted(d for d in data.corpus if d not in judged)
    doc_ids = sorted(judged) + rng.sample(others, 600 - len(judged))
    return BeirData(
        corpus={d: data.corpus[d] for d in doc_ids},
        queries={q: data.queries[q] for q in qids},
        qrels=qrels,
        name="scifact-subset",
    )


def _check_rows(mined: HardNegatives, data: BeirData, n: int) -> None:
    """One row per (query, positive) pair; n distinct negatives, none of them judged relevant."""
    ds = mined.dataset
    assert ds.column_names == ["anchor", "positive", *[f"negative_{i}" for i in range(1, n + 1)]]
    pairs = [(q, d) for q, docs in data.qrels.items() for d, g in docs.items() if g > 0 and d in data.corpus]
    assert len(mined.pair_ids) + mined.num_pairs_skipped == len(pairs)
    assert sorted(mined.pair_ids) == sorted(p for p in pairs if p in set(mined.pair_ids))
    assert len(ds) == len(mined) == len(mined.negative_ids)
    for row, (qid, pos), negs in zip(ds, mined.pair_ids, mined.negative_ids, strict=True):
        assert row["anchor"] == data.queries[qid]
        assert row["positive"] == data.corpus[pos]
        assert [row[f"negative_{i}"] for i in range(1, n + 1)] == [data.corpus[d] for d in negs]
        assert len(set(negs)) == n
        relevant = {d for d, g in data.qrels[qid].items() if g > 0}
        assert not relevant & set(negs), f"false negative for query {qid}"


def test_bm25_rows_are_sentence_transformers_n_tuples_without_false_negatives(
    scifact_subset: BeirData,
) -> None:
    mined = mine_bm25_negatives(
        scifact_subset.queries, scifact_subset.corpus, scifact_subset.qrels, num_negatives=5
    )
    _check_rows(mined, scifact_subset, 5)
    assert len(mined) > 60  # some SciFact queries have several positives: one row each
    assert mined.metadata["negative_sampling"] == "bm25_hard"
    assert mined.metadata["num_hard_negatives"] == 5
    assert mined.num_false_negatives_removed > 0  # BM25 finds the positives themselves: filtered out


def test_bm25_negatives_are_the_top_lexical_matches_in_order() -> None:
    corpus = {
        "pos": "insulin resistance in obese mice",
        "two": "insulin resistance in rats",
        "one": "mice sleep",
        "none": "heart virus",
        "dup": "insulin resistance in obese mice",  # same text as the positive: not a negative
        "judged0": "insulin resistance and mice",  # judged non-relevant (grade 0): a fine negative
    }
    qrels = {"q": {"pos": 1, "judged0": 0}}
    mined = mine_bm25_negatives({"q": "insulin resistance mice"}, corpus, qrels, num_negatives=3)
    assert mined.negative_ids == [["judged0", "two", "one"]]
    assert mined.num_false_negatives_removed == 2  # "pos" and "dup"
    with pytest.raises(ValueError, match="too few"):
        mine_bm25_negatives({"q": "x"}, {"a": "x", "b": "y"}, {"q": {"a": 1}}, num_negatives=2)


def test_pairs_without_enough_hard_candidates_are_dropped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    corpus = {
        "p1": "gene expression",
        "p2": "dna repair",
        "a": "gene therapy",
        "b": "heart",
        "c": "brain",
        "d": "x",
    }
    queries = {"q1": "gene", "q2": "dna"}
    qrels = {"q1": {"p1": 1}, "q2": {"p2": 1}}
    with caplog.at_level(logging.WARNING, logger="hf_search_wandb.core.data.hard_negatives"):
        mined = mine_bm25_negatives(queries, corpus, qrels, num_negatives=1)
    assert mined.pair_ids == [("q1", "p1")]  # "dna" shares no term with any other doc: no hard negative
    assert mined.negative_ids == [["a"]]
    assert mined.num_pairs_skipped == 1
    assert "1 (query, positive) pairs had fewer than 1 negatives" in caplog.text


def test_range_min_and_random_sampling(scifact_subset: BeirData) -> None:
    args = (scifact_subset.queries, scifact_subset.corpus, scifact_subset.qrels)
    top = mine_bm25_negatives(*args, num_negatives=4, max_candidates=20)
    shifted = mine_bm25_negatives(*args, num_negatives=2, range_min=2, max_candidates=20)
    by_pair = dict(zip(top.pair_ids, top.negative_ids, strict=True))
    for pair, negs in zip(shifted.pair_ids, shifted.negative_ids, strict=True):
        assert negs == by_pair[pair][2:4]
    sampled = mine_bm25_negatives(*args, num_negatives=3, sampling="random", seed=1, max_candidates=20)
    again = mine_bm25_negatives(*args, num_negatives=3, sampling="random", seed=1, max_candidates=20)
    assert sampled.negative_ids == again.negative_ids
    assert sampled.negative_ids != [negs[:3] for negs in top.negative_ids]
    _check_rows(sampled, scifact_subset, 3)


class KeywordEncoder:
    """A deterministic bag-of-words encoder (hashed counts): similar texts really are similar, instantly."""

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def encode(self, texts: list[str], normalize_embeddings: bool = False, **_: object) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in tokens(text):
                out[i, zlib.crc32(word.encode()) % self.dim] += 1.0
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def test_dense_mining_with_a_sentence_transformer(scifact_subset: BeirData, tmp_path: Path) -> None:
    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(tmp_path, seed=0)
    qids = sorted(scifact_subset.qrels)[:10]  # a small slice: encoding is the slow part on a shared CPU
    qrels = {q: scifact_subset.qrels[q] for q in qids}
    doc_ids = sorted({d for q in qids for d in qrels[q]} | set(sorted(scifact_subset.corpus)[:60]))
    data = BeirData(
        corpus={d: scifact_subset.corpus[d] for d in doc_ids},
        queries={q: scifact_subset.queries[q] for q in qids},
        qrels=qrels,
    )
    mined = mine_dense_negatives(model, data.queries, data.corpus, data.qrels, num_negatives=3, batch_size=16)
    _check_rows(mined, data, 3)
    assert mined.metadata["negative_sampling"] == "dense_hard"
    assert mined.metadata["num_hard_negatives"] == 3
    assert mined.params["miner"] == "SentenceTransformer"


def test_dense_negatives_are_the_nearest_non_relevant_docs(scifact_subset: BeirData) -> None:
    model = KeywordEncoder()
    data = scifact_subset
    mined = mine_dense_negatives(model, data.queries, data.corpus, data.qrels, num_negatives=3)
    _check_rows(mined, data, 3)
    doc_ids = list(data.corpus)
    docs = model.encode([data.corpus[d] for d in doc_ids], normalize_embeddings=True)
    for (qid, _), negs in list(zip(mined.pair_ids, mined.negative_ids, strict=True))[:20]:
        scores = docs @ model.encode([data.queries[qid]], normalize_embeddings=True)[0]
        relevant = {d for d, g in data.qrels[qid].items() if g > 0}
        expected = [doc_ids[i] for i in np.argsort(-scores, kind="stable") if doc_ids[i] not in relevant]
        np.testing.assert_allclose(
            [scores[doc_ids.index(d)] for d in negs],
            [scores[doc_ids.index(d)] for d in expected[:3]],
            atol=1e-6,
        )


def test_dense_margin_and_max_score_keep_negatives_below_the_positive(scifact_subset: BeirData) -> None:
    model = KeywordEncoder()
    data = scifact_subset
    mined = mine_dense_negatives(
        model, data.queries, data.corpus, data.qrels, num_negatives=2, margin=0.05, max_score=0.5
    )
    _check_rows(mined, data, 2)
    assert len(mined) > 0
    for (qid, pos), negs in zip(mined.pair_ids, mined.negative_ids, strict=True):
        emb = model.encode(
            [data.queries[qid], data.corpus[pos], *(data.corpus[d] for d in negs)], normalize_embeddings=True
        )
        scores = emb[1:] @ emb[0]
        assert (scores[1:] <= min(0.5, scores[0] - 0.05) + 1e-6).all()
    assert mined.params["margin"] == 0.05
    plain = mine_dense_negatives(model, data.queries, data.corpus, data.qrels, num_negatives=2)
    assert plain.negative_ids != mined.negative_ids  # the filter removed some of the nearest docs


def test_missing_bm25s_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bm25s", None)
    with pytest.raises(ImportError, match=r'pip install "hf-search-wandb\[hard-negatives\]"'):
        mine_bm25_negatives({"q": "a b"}, {"d": "a", "e": "b"}, {"q": {"d": 1}}, num_negatives=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_negatives": 0}, "num_negatives must be an integer >= 1"),
        ({"sampling": "best"}, "sampling must be 'top' or 'random'"),
        ({"range_min": -1}, "range_min must be >= 0"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mine_bm25_negatives(
            {"q": "a"}, {"d": "a", "e": "a b", "f": "c"}, {"q": {"d": 1}}, **{"num_negatives": 1, **kwargs}
        )


def test_ids_that_do_not_match_are_reported() -> None:
    with pytest.raises(ValueError, match="No \\(query, positive\\) pair"):
        mine_bm25_negatives({"q": "a"}, {"d": "a", "e": "b"}, {"other": {"d": 1}}, num_negatives=1)
    with pytest.raises(ValueError, match="corpus is empty"):
        mine_bm25_negatives({"q": "a"}, {}, {"q": {"d": 1}}, num_negatives=1)
    with pytest.raises(TypeError, match=r"needs a model with \.encode"):
        mine_dense_negatives(object(), {"q": "a"}, {"d": "a", "e": "b"}, {"q": {"d": 1}}, num_negatives=1)

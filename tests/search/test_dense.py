"""Chunked exact top-k search: equal to a brute-force sort (ties included), whatever the chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_search_wandb.core.search.dense import key_scores, key_ties, score_keys, search, tie_positions


def brute_force(queries: np.ndarray, docs: np.ndarray, ties: np.ndarray, k: int):
    """Sort every doc by (score desc, tie desc) with numpy: the reference ranking."""
    scores = (queries.astype(np.float32) @ docs.astype(np.float32).T).astype(np.float32)
    order = np.stack([np.lexsort((-ties, -row)) for row in scores])
    return order[:, :k], scores


@settings(max_examples=40, deadline=None)
@given(
    n_queries=st.integers(1, 7),
    n_docs=st.integers(1, 40),
    dim=st.integers(1, 4),
    k=st.integers(1, 50),
    chunk=st.integers(1, 64),
    seed=st.integers(0, 10_000),
)
def test_search_equals_brute_force_with_ties(n_queries, n_docs, dim, k, chunk, seed):
    rng = np.random.default_rng(seed)
    # small integer embeddings: many exact score ties, the case where the tie rule matters
    queries = rng.integers(-2, 3, size=(n_queries, dim)).astype(np.float32)
    docs = rng.integers(-2, 3, size=(n_docs, dim)).astype(np.float32)
    ties = rng.permutation(n_docs)
    expected, scores = brute_force(queries, docs, ties, k)
    pairs_q = np.repeat(np.arange(n_queries), 2)
    pairs_d = rng.integers(0, n_docs, size=pairs_q.size)
    hits = search(
        torch.from_numpy(queries),
        torch.from_numpy(docs),
        torch.from_numpy(ties),
        k,
        pair_queries=torch.from_numpy(pairs_q),
        pair_docs=torch.from_numpy(pairs_d),
        chunk_elements=chunk,
    )
    tie_to_doc = np.argsort(ties)
    got = tie_to_doc[key_ties(hits.top_keys).numpy()]
    assert got.shape == (n_queries, min(k, n_docs))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(key_scores(hits.top_keys).numpy(), np.take_along_axis(scores, expected, 1))
    # true rank of each pair = its position in the full brute-force order
    full, _ = brute_force(queries, docs, ties, n_docs)
    for q, d, rank in zip(pairs_q, pairs_d, hits.pair_ranks.tolist(), strict=True):
        assert rank == int(np.flatnonzero(full[q] == d)[0]) + 1


def test_true_rank_beyond_depth():
    queries = torch.tensor([[1.0, 0.0]])
    docs = torch.tensor([[float(10 - i), 0.0] for i in range(10)])  # doc i scores 10 - i
    hits = search(
        queries, docs, torch.arange(10), 3, pair_queries=torch.tensor([0, 0]), pair_docs=torch.tensor([1, 8])
    )
    assert key_ties(hits.top_keys).tolist() == [[0, 1, 2]]
    assert hits.pair_ranks.tolist() == [2, 9]
    assert key_scores(hits.pair_keys).tolist() == [9.0, 2.0]


def test_pair_held_by_another_shard_stays_missing():
    hits = search(
        torch.ones(1, 2),
        torch.ones(2, 2),
        torch.arange(2),
        5,
        pair_queries=torch.tensor([0]),
        pair_docs=torch.tensor([-1]),
    )
    assert hits.pair_ranks.tolist() == [0]
    assert hits.top_keys.shape == (1, 2)  # k capped by the corpus size


@pytest.mark.parametrize(
    "value", [0.0, -0.0, 1e-38, -1e-38, 3.5, -3.5, 1e30, -1e30, float("inf"), -float("inf")]
)
def test_keys_round_trip_and_order(value):
    scores = torch.tensor([value, np.nextafter(np.float32(value), np.float32(np.inf))], dtype=torch.float32)
    keys = score_keys(scores, torch.tensor([7, 7]))
    assert key_scores(keys).tolist() == scores.tolist()  # -0.0 == 0.0: canonicalised to +0.0
    assert key_ties(keys).tolist() == [7, 7]
    if scores[1] > scores[0]:
        assert keys[1] > keys[0]


def test_tie_positions_follow_string_order():
    ids = ["10", "9", "100", "a", "B"]
    positions = tie_positions(ids)
    assert [ids[i] for i in np.argsort(positions)] == sorted(ids)

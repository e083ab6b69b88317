"""Synthetic retrieval data over the tiny models' vocabulary (shared by in-process and 2-process tests)."""

from __future__ import annotations


def synthetic_data(words: tuple[str, ...], seed: int = 0):
    """300 docs and 40 queries over the tiny models' vocabulary (so every token is known), each query's
    words planted in 1-3 relevant docs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pick = lambda n: " ".join(rng.choice(words, size=n).tolist())  # noqa: E731
    corpus = {f"doc{i}": pick(int(rng.integers(5, 40))) for i in range(300)}
    queries, qrels = {}, {}
    for q in range(40):
        queries[f"q{q}"] = pick(int(rng.integers(2, 6)))
        relevant = rng.choice(300, size=int(rng.integers(1, 4)), replace=False).tolist()
        for d in relevant:
            corpus[f"doc{d}"] += " " + queries[f"q{q}"]
        qrels[f"q{q}"] = {f"doc{d}": int(rng.integers(1, 3)) for d in relevant}
    return queries, corpus, qrels


def random_token_vectors(n: int, longest: int, dim: int, seed: int) -> list:
    """`n` texts' unit token vectors (0 to `longest` tokens each, so some are empty), for the MaxSim kernels."""
    import torch

    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, longest + 1, (n,), generator=g).tolist()
    return [torch.nn.functional.normalize(torch.randn(k, dim, generator=g), dim=-1) for k in lengths]

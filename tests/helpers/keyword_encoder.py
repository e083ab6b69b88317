"""An encoder whose embedding counts keywords: integer scores, rankings checkable by hand, no model."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

VOCAB = ("cancer", "gene", "brain", "sleep")


class KeywordEncoder:
    """Embedding = count of each keyword in the text: scores are integers, rankings checkable by hand."""

    similarity = "dot"

    def __init__(self, vocab: Sequence[str] = VOCAB) -> None:
        self.vocab = list(vocab)
        self.calls: list[tuple[str, int]] = []

    def encode_texts(self, texts: Sequence[str], kind: str) -> np.ndarray:
        self.calls.append((kind, len(texts)))
        words = [re.findall(r"[a-z]+", t.lower()) for t in texts]
        return np.array([[w.count(v) for v in self.vocab] for w in words], dtype=np.float32)

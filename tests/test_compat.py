"""`core/compat.py` on the installed versions (CI runs it on the newest pins and on the oldest supported pair,
`make test-oldest`): each place resolves without a deprecation, the feature table matches what imports, and a
missing family is one clear error."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest
import torch

from hf_search_wandb.core import compat


def test_places_resolve_on_the_installed_version_without_deprecations() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses, modules, evaluation = compat.st_losses(), compat.st_modules(), compat.st_evaluation()
        base = compat.sentence_evaluator_base()
    assert losses.MultipleNegativesRankingLoss.__name__ == "MultipleNegativesRankingLoss"
    assert {"Transformer", "Pooling", "Normalize"} <= set(dir(modules))
    assert {"InformationRetrievalEvaluator", "SequentialEvaluator"} <= set(dir(evaluation))
    assert base.__name__ in ("BaseEvaluator", "SentenceEvaluator") and callable(base.__call__)
    moved = [
        w
        for w in caught
        if issubclass(w.category, DeprecationWarning) and "sentence_transformers" in str(w.message)
    ]
    assert not moved, [str(w.message) for w in moved]


@pytest.mark.parametrize(
    ("feature", "module", "name"),
    [
        ("SparseEncoder", "sentence_transformers.sparse_encoder", "SparseEncoder"),
        ("CrossEncoderTrainer", "sentence_transformers.cross_encoder", "CrossEncoderTrainer"),
    ],
)
def test_the_feature_table_says_what_imports(feature: str, module: str, name: str) -> None:
    try:
        present = hasattr(importlib.import_module(module), name)
    except ImportError:
        present = False
    assert compat.has_feature(feature) == present, (feature, str(compat.st_version()))


def test_a_missing_family_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "st_version", lambda: compat.Version("3.4.1"))
    with pytest.raises(
        ImportError, match=r"SparseEncoder needs sentence-transformers >= 5\.0, but 3\.4\.1 .*pip install"
    ):
        compat.require("SparseEncoder")
    with pytest.raises(ImportError, match=r"^loading it needs sentence-transformers >= 4\.0"):
        compat.require("CrossEncoderTrainer", "loading it")
    with pytest.raises(ValueError, match="unknown feature 'Splade'"):
        compat.has_feature("Splade")
    monkeypatch.setattr(compat, "st_version", lambda: compat.Version("6.2.0"))
    compat.require("SparseEncoder")  # present: nothing happens


def test_query_and_document_encoding_use_the_models_prompts(tmp_path: Path) -> None:
    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(tmp_path)
    model.prompts = {"query": "risk of ", "passage": "study of "}  # words of the tiny vocabulary
    texts = ["cell growth in mice", "insulin and diabetes"]
    queries = compat.encode_queries(model, texts, convert_to_tensor=True)
    documents = compat.encode_documents(model, texts, convert_to_tensor=True)
    torch.testing.assert_close(queries, model.encode(texts, prompt="risk of ", convert_to_tensor=True))
    torch.testing.assert_close(documents, model.encode(texts, prompt="study of ", convert_to_tensor=True))
    assert not torch.allclose(queries, documents)

"""What differs across the supported transformers / sentence-transformers versions, in one place.

Supported: transformers 4.46 to 5.x and sentence-transformers 3.4 to 6.x (docs/versions.md). Where a class
lives moved in sentence-transformers 6 (`sentence_transformers.sentence_transformer.losses`, `.base.modules`,
...; the old paths still import there, with a `DeprecationWarning`); each function below tries the new place
first and falls back to the old one, so the package never imports a deprecated path and never a missing one.
Model families that an old sentence-transformers lacks (`SparseEncoder` before 5.0, `CrossEncoderTrainer`
before 4.0) are named in `FEATURES`; `require` turns their absence into one clear error with the fix.

Nothing is imported at import time (versions are read from the installed distributions' metadata).

Example:
    >>> needs_sentence_transformers("SparseEncoder")
    '5.0'
    >>> st_version() >= Version("3.4")
    True
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any

from packaging.version import Version

#: sentence-transformers features that older versions lack, with the first version that has them.
FEATURES: dict[str, str] = {
    "SparseEncoder": "5.0",  # SPLADE: SparseEncoder, SparseEncoderTrainer, the sparse evaluators
    "CrossEncoderTrainer": "4.0",  # CrossEncoder as an nn.Module, its trainer, losses and evaluators
    "encode_query": "5.0",  # SentenceTransformer.encode_query / encode_document
    "MultiVectorEncoder": "6.2",  # ColBERT-style: MultiVectorEncoder, its trainer and evaluator
}


def _installed(distribution: str) -> Version:
    try:
        return Version(version(distribution))
    except PackageNotFoundError:  # pragma: no cover - both are requirements of the package
        return Version("0")


@cache
def st_version() -> Version:
    """The installed sentence-transformers version (its release part: `6.2.0.dev0` reads as `6.2.0`)."""
    return Version(_installed("sentence-transformers").base_version)


@cache
def transformers_version() -> Version:
    """The installed transformers version (its release part)."""
    return Version(_installed("transformers").base_version)


def needs_sentence_transformers(feature: str) -> str:
    """The first sentence-transformers version with `feature` (a key of `FEATURES`)."""
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}: one of {', '.join(FEATURES)}")
    return FEATURES[feature]


def has_feature(feature: str) -> bool:
    """True when the installed sentence-transformers has `feature` (a key of `FEATURES`)."""
    return st_version() >= Version(needs_sentence_transformers(feature))


def require(feature: str, what: str | None = None) -> None:
    """Raise `ImportError` naming the installed version and the upgrade when `feature` is missing.

    Example (silent where the feature exists; the error names the upgrade where it does not):
        >>> try:
        ...     require("SparseEncoder", "a SPLADE model")
        ... except ImportError as err:
        ...     assert str(err).startswith("a SPLADE model needs sentence-transformers >= 5.0") and "pip install" in str(err)
    """
    if has_feature(feature):
        return
    minimum = needs_sentence_transformers(feature)
    raise ImportError(
        f"{what or feature} needs sentence-transformers >= {minimum}, but {st_version()} is installed: "
        f"pip install 'sentence-transformers>={minimum}' (see docs/versions.md)"
    )


def _first_module(*names: str) -> ModuleType:
    """The first of `names` that imports (the newest place first); the last one's error if none does."""
    for name in names[:-1]:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as err:  # that place does not exist; a missing dependency is raised
            if not err.name or not name.startswith(err.name):
                raise
    return importlib.import_module(names[-1])


def st_losses() -> ModuleType:
    """The bi-encoder (`SentenceTransformer`) losses module: `MultipleNegativesRankingLoss`, ...

    Example:
        >>> st_losses().MultipleNegativesRankingLoss.__name__
        'MultipleNegativesRankingLoss'
    """
    return _first_module("sentence_transformers.sentence_transformer.losses", "sentence_transformers.losses")


def st_modules() -> ModuleType:
    """The `SentenceTransformer` modules: `Transformer`, `Pooling`, `Normalize`, `Dense`, ...

    Example:
        >>> sorted({"Transformer", "Pooling", "Normalize"} & set(dir(st_modules())))
        ['Normalize', 'Pooling', 'Transformer']
    """
    return _first_module("sentence_transformers.sentence_transformer.modules", "sentence_transformers.models")


def st_evaluation() -> ModuleType:
    """The `SentenceTransformer` evaluators: `InformationRetrievalEvaluator`, `SequentialEvaluator`, ...

    Example:
        >>> st_evaluation().InformationRetrievalEvaluator.__name__
        'InformationRetrievalEvaluator'
    """
    return _first_module(
        "sentence_transformers.sentence_transformer.evaluation", "sentence_transformers.evaluation"
    )


def mlm_transformer(model_path: str, **kwargs: Any) -> Any:
    """The MLM module under a SPLADE head: `Transformer(..., transformer_task="fill-mask")` from
    `sentence_transformers.sparse_encoder.modules` (6.x), `MLMTransformer` from `.models` (5.x)."""
    require("SparseEncoder", "a SPLADE model")
    modules = sparse_modules()
    if modules.__name__.endswith(".modules"):  # 6.x (where MLMTransformer is only kept for old code)
        return modules.Transformer(model_path, transformer_task="fill-mask", **kwargs)
    return modules.MLMTransformer(model_path, **kwargs)


def sparse_modules() -> ModuleType:
    """The `SparseEncoder` modules (`SpladePooling`, ...): `.sparse_encoder.modules` (6.x), `.models` (5.x)."""
    require("SparseEncoder")
    return _first_module(
        "sentence_transformers.sparse_encoder.modules", "sentence_transformers.sparse_encoder.models"
    )


def sentence_evaluator_base() -> type:
    """sentence-transformers' evaluator base class: `BaseEvaluator` (6.x), `SentenceEvaluator` before."""
    module = _first_module("sentence_transformers.base.evaluation", "sentence_transformers.evaluation")
    return getattr(module, "BaseEvaluator", None) or module.SentenceEvaluator


def embedding_dimension(module: Any) -> int:
    """A `Transformer` module's output size (`get_embedding_dimension` in 6.x, `get_word_...` before)."""
    getter = getattr(module, "get_embedding_dimension", None) or module.get_word_embedding_dimension
    return int(getter())


def cross_encoder_activation(model: Any) -> Any:
    """The activation a `CrossEncoder.predict` applies by default: `activation_fn` (sentence-transformers 4+),
    `default_activation_function` before."""
    found = getattr(model, "activation_fn", None)
    return found if found is not None else getattr(model, "default_activation_function", None)


def encode_queries(model: Any, texts: list[str], **kwargs: Any) -> Any:
    """`model.encode_query(texts)`; before sentence-transformers 5, `encode` with the `query` prompt if the
    model has one (what `encode_query` does for a model without a Router)."""
    if hasattr(model, "encode_query"):
        return model.encode_query(texts, **kwargs)
    if "query" in (getattr(model, "prompts", None) or {}) and "prompt" not in kwargs:
        kwargs.setdefault("prompt_name", "query")
    return model.encode(texts, **kwargs)


def encode_documents(model: Any, texts: list[str], **kwargs: Any) -> Any:
    """`model.encode_document(texts)`; before sentence-transformers 5, `encode` with the first of the
    `document` / `passage` / `corpus` prompts the model has (the order `encode_document` tries)."""
    if hasattr(model, "encode_document"):
        return model.encode_document(texts, **kwargs)
    prompts = getattr(model, "prompts", None) or {}
    for name in ("document", "passage", "corpus"):
        if name in prompts and "prompt" not in kwargs:
            kwargs.setdefault("prompt_name", name)
            break
    return model.encode(texts, **kwargs)


__all__ = [
    "FEATURES",
    "Version",
    "cross_encoder_activation",
    "embedding_dimension",
    "encode_documents",
    "encode_queries",
    "has_feature",
    "mlm_transformer",
    "needs_sentence_transformers",
    "require",
    "sentence_evaluator_base",
    "sparse_modules",
    "st_evaluation",
    "st_losses",
    "st_modules",
    "st_version",
    "transformers_version",
]

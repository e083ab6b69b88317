"""Save any model the callback accepts to a directory that loads back into a model scoring the same metrics.

* a `SentenceTransformer`: its own folder layout (`modules.json`); loads back as a `SentenceTransformer`;
* a transformers `PreTrainedModel`: `save_pretrained` + its tokenizer, and `hf_search_wandb_encoder.json` with the
  pooling it is evaluated with when that is not the default (given, or what the model said:
  `core.models.pooling_config`); loads back with `AutoModel`, which the evaluator then pools the same way;
* a custom `nn.Module` holding a `PreTrainedModel` as `.encoder` / `.model` / `.backbone` (a plain-Trainer
  bi-encoder): the inner model's `save_pretrained`, its tokenizer, and `hf_search_wandb_encoder.json` saying
  how it is pooled (`pooling`, `normalize`, `similarity`, `max_length`, the wrapper's class). It loads back as
  a `PooledEncoder` (an `nn.Module`: `.encoder`, `.pooling`, `.normalize`, `.tokenizer`), which the evaluator
  scores exactly as it scored the original module. Parameters of the wrapper outside the inner model (a
  projection head, ...) are saved too (`wrapper_state_dict.pt`) and named in the JSON file; the
  `PooledEncoder` cannot apply them, so loading such a module says so.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from hf_search_wandb.core.models.base import unwrap_model
from hf_search_wandb.core.models.dense import HFEncoder
from hf_search_wandb.core.models.factory import as_encoder
from hf_search_wandb.core.models.pooling_config import ENCODER_FILE, model_pooling

logger = logging.getLogger(__name__)

WRAPPER_STATE = "wrapper_state_dict.pt"

__all__ = ["ENCODER_FILE", "PooledEncoder", "load_model", "save_model"]


class PooledEncoder(torch.nn.Module):
    """A transformers encoder + pooling: what a custom bi-encoder module saved by `save_model` loads back as.

    `forward(input_ids, attention_mask, ...)` returns the pooled (optionally L2-normalised) embeddings;
    `RetrievalEvaluator.evaluate(pooled_encoder)` scores it (through `as_encoder`, like the original module).
    """

    def __init__(
        self,
        encoder: torch.nn.Module,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        normalize: bool = False,
        similarity: str = "cosine",
        max_length: int | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        self.similarity = similarity
        self.max_length = max_length

    def as_encoder(self) -> HFEncoder:
        """The evaluator's adapter with the saved pooling, similarity and truncation."""
        return HFEncoder(
            self.encoder, self.tokenizer, pooling=self.pooling, normalize=self.normalize,
            max_length=self.max_length, similarity=self.similarity, owner=self,
        )  # fmt: skip

    def forward(self, **features: torch.Tensor) -> torch.Tensor:
        """Pooled embeddings of a tokenised batch (`input_ids`, `attention_mask`, ...)."""
        return self.as_encoder().forward(features, "document")


def save_model(
    model: Any,
    directory: str | os.PathLike[str],
    tokenizer: Any = None,
    *,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
) -> Path:
    """Save `model` so that `load_model(directory)` scores the same; returns the directory.

    Args:
        model: a SentenceTransformer, a `PreTrainedModel`, or a module holding one (DDP wrappers removed).
        directory: created if needed; files of the same names are overwritten.
        tokenizer: saved next to the weights (the trainer's `processing_class`).
        pooling / normalize / max_length: the evaluator's settings; None: what the model says
            (`core.models.pooling_config`), as the evaluator decides.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    model = unwrap_model(model)
    if _is_library_model(model):
        model.save_pretrained(str(target))  # a sentence-transformers model (any family) or a PreTrainedModel
        _save_tokenizer(tokenizer, target, model)
        _record_pooling(model, target, pooling, normalize)
        return target
    encoder = _inner_encoder(model, tokenizer, pooling, normalize, max_length)
    if encoder is None and hasattr(model, "save_pretrained"):
        model.save_pretrained(str(target))  # a module with its own format: loading it back is its own business
        _save_tokenizer(tokenizer, target, model)
        return target
    if encoder is None:
        torch.save(model.state_dict(), target / "pytorch_model.bin")
        _write_json(target, {"format": "state_dict", "wrapper_class": _class_path(model)})
        _save_tokenizer(tokenizer, target, model)
        logger.warning(
            "%s holds no transformers model (.encoder/.model/.backbone): saved its state_dict only, which "
            "load_model cannot rebuild without your class.", type(model).__name__,
        )  # fmt: skip
        return target
    inner: Any = encoder.model
    inner.save_pretrained(str(target))
    _save_tokenizer(encoder.tokenizer, target, model)
    inner_ids = {id(p) for p in inner.parameters()}
    extra = [name for name, p in model.named_parameters() if id(p) not in inner_ids]
    if extra:
        torch.save(model.state_dict(), target / WRAPPER_STATE)
    attribute = next(a for a in ("encoder", "model", "backbone") if getattr(model, a, None) is inner)
    _write_json(target, {
        "format": "pooled_encoder", "pooling": encoder.pooling, "normalize": encoder.normalize,
        "similarity": encoder.similarity, "max_length": encoder.max_length, "attribute": attribute,
        "wrapper_class": _class_path(model), "extra_parameters": extra,
    })  # fmt: skip
    return target


def load_model(directory: str | os.PathLike[str], *, device: str | None = None, **kwargs: Any) -> Any:
    """Load what `save_model` (or `SentenceTransformer.save` / `save_pretrained`) wrote.

    Returns:
        A `MultiVectorEncoder` (its `config_sentence_transformers.json` says so), a `SentenceTransformer` (the
        folder has `modules.json`), a `PooledEncoder` (a saved custom module), or an `AutoModel`. `kwargs` go
        to the loader.

    Raises:
        ValueError: the folder holds a bare state_dict of a module without a transformers model inside
            (rebuild your class and `load_state_dict` it), or wrapper parameters a `PooledEncoder` would drop.
    """
    path = Path(directory)
    if (path / "modules.json").is_file() and _saved_type(path) == "MultiVectorEncoder":  # ColBERT-style
        from sentence_transformers import MultiVectorEncoder

        return MultiVectorEncoder(str(path), device=device, **kwargs)
    if (path / "modules.json").is_file():
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(path), device=device, **kwargs)
    info = json.loads((path / ENCODER_FILE).read_text()) if (path / ENCODER_FILE).is_file() else {}
    if info.get("format") == "state_dict":
        raise ValueError(
            f"{path} holds the state_dict of a {info.get('wrapper_class')} (no transformers model inside): build "
            f"that module yourself and call module.load_state_dict(torch.load('{path / 'pytorch_model.bin'}'))."
        )
    if info.get("extra_parameters"):
        raise ValueError(
            f"The saved {info.get('wrapper_class')} has parameters outside its transformers model "
            f"({', '.join(info['extra_parameters'][:3])}, ...), which a PooledEncoder cannot apply: build your "
            f"module and call module.load_state_dict(torch.load('{path / WRAPPER_STATE}'))."
        )
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(path), **kwargs)
    if device is not None:
        model = model.to(device)
    if info.get("format") != "pooled_encoder":
        return model
    return PooledEncoder(
        model, AutoTokenizer.from_pretrained(str(path)), pooling=info.get("pooling", "mean"),
        normalize=bool(info.get("normalize", False)), similarity=info.get("similarity", "cosine"),
        max_length=info.get("max_length"),
    )  # fmt: skip


def _saved_type(path: Path) -> str | None:
    """The `model_type` sentence-transformers wrote in `config_sentence_transformers.json`, if any."""
    config = path / "config_sentence_transformers.json"
    if not config.is_file():
        return None
    value = json.loads(config.read_text()).get("model_type")
    return str(value) if value else None


def _is_library_model(model: Any) -> bool:
    """A transformers `PreTrainedModel`, or any sentence-transformers model (SentenceTransformer, CrossEncoder,
    SparseEncoder): saved in its own format, which its own class loads back."""
    if not hasattr(model, "save_pretrained"):
        return False
    from transformers import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        return True
    return any(cls.__module__.startswith("sentence_transformers") for cls in type(model).__mro__)


def _record_pooling(model: Any, target: Path, pooling: str | None, normalize: bool | None) -> None:
    """Beside a saved `PreTrainedModel`, the pooling it is evaluated with, unless that is the default (which a
    reloaded model gets anyway): the folder the weights move to has no sentence-transformers config."""
    from transformers import PreTrainedModel

    choice = model_pooling(model, pooling, normalize) if isinstance(model, PreTrainedModel) else None
    stale = target / ENCODER_FILE  # read above when the model was loaded from `target` itself
    if stale.is_file():
        stale.unlink()
    if choice is None or (choice.source == "default" and choice.normalize_source == "default"):
        return
    _write_json(target, {"format": "pretrained", "pooling": choice.pooling, "normalize": choice.normalize})


def _inner_encoder(
    model: Any, tokenizer: Any, pooling: str | None, normalize: bool | None, max_length: int | None
) -> HFEncoder | None:
    if not isinstance(model, torch.nn.Module):
        return None
    try:
        encoder = as_encoder(model, tokenizer, pooling=pooling, normalize=normalize, max_length=max_length)
    except TypeError:
        return None
    return encoder if isinstance(encoder, HFEncoder) else None


def _save_tokenizer(tokenizer: Any, target: Path, model: Any) -> None:
    if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(target))
    elif getattr(model, "tokenizer", None) is None:  # a SentenceTransformer saves its own
        logger.info("No tokenizer given: %s holds the weights only.", target)


def _class_path(model: Any) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def _write_json(target: Path, info: dict[str, Any]) -> None:
    (target / ENCODER_FILE).write_text(json.dumps(info, indent=2) + "\n")

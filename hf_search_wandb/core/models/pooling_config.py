"""Which pooling and normalisation a plain transformers model says it uses, and the rule that picks the evaluator's.

A transformers model has no pooling of its own: what turns its token states into one embedding lives beside it.
`declared_pooling` reads, for each of pooling and normalisation, the first of these that says something:

1. attributes of the module holding the model (a custom bi-encoder): `pooling` / `pooling_mode` /
   `sentence_pooling_method` / `pooling_method` / `pooler_type` (a string), `normalize` / `normalize_embeddings` /
   `normalized` / `normlized` (a bool), as retrieval toolkits (FlagEmbedding, SimCSE-style code) name them;
2. sentence-transformers' files beside the weights: `modules.json`, its Pooling module's `config.json`
   (`pooling_mode`, or the older `pooling_mode_cls_token` / `_mean_tokens` / `_max_tokens` / `_lasttoken` ...
   flags) and a `Normalize` module. They are looked up in the folder `config._name_or_path` names, or for a hub
   id in the local hub cache (`huggingface_hub.try_to_load_from_cache`: never a download);
3. `hf_search_wandb_encoder.json` beside the weights (what `core.models.save_load.save_model` writes);
4. the same attributes on the model's config, where some toolkits write them.

A pooling named in an unknown spelling is a warning and is not used.

`choose_pooling` applies the rule: an explicit `pooling=` / `normalize=` is used, with a warning when the model
says otherwise; None takes what the model says; a model that says nothing is pooled by mean, unnormalised, and
that is said once at info level.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: the poolings `HFEncoder` computes (sentence-transformers' `Pooling` modes, computed as it does)
POOLING_MODES = ("mean", "cls", "max", "lasttoken", "mean_sqrt_len_tokens", "weightedmean")
#: the file `save_model` writes beside a model's weights to say how it was pooled
ENCODER_FILE = "hf_search_wandb_encoder.json"
#: what the default is when a model says nothing
DEFAULT_POOLING = "mean"

# sentence-transformers < 5 writes one flag per mode (in this order when several are on)
_ST_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# names toolkits use for the same poolings in their configs
_ALIASES = {
    "avg": "mean", "average": "mean", "mean_tokens": "mean", "mean_pooling": "mean",
    "cls_token": "cls", "first": "cls", "cls_before_pooler": "cls",
    "max_tokens": "max", "last": "lasttoken", "last_token": "lasttoken", "eos": "lasttoken",
    "weightedmean_tokens": "weightedmean", "weighted_mean": "weightedmean",
}  # fmt: skip
# attributes toolkits give their bi-encoder module or the model's config (FlagEmbedding: sentence_pooling_method,
# normlized / normalize_embeddings; SimCSE: pooler_type), first found wins
_POOLING_NAMES = ("pooling", "pooling_mode", "sentence_pooling_method", "pooling_method", "pooler_type")
_NORMALIZE_NAMES = ("normalize", "normalize_embeddings", "normalized", "normlized")
# sentence-transformers modules a plain transformers model + pooling reproduces
_REPRODUCIBLE = frozenset({"Transformer", "Pooling", "Normalize"})
# the messages `say_once` has logged
_SAID: set[str] = set()


@dataclass(frozen=True)
class DeclaredPooling:
    """What a model says about its pooling: each field None where nothing says, with where it was read."""

    pooling: str | None = None
    pooling_source: str | None = None
    normalize: bool | None = None
    normalize_source: str | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoolingChoice:
    """The pooling and normalisation an evaluation uses, where each came from, and what to tell the user.

    `source` / `normalize_source`: `"given"` (an explicit argument), `"default"`, or where the model said it
    (e.g. `"sentence-transformers config /path/1_Pooling/config.json"`). `messages`: `(log level, text)`.
    """

    pooling: str
    normalize: bool
    source: str
    normalize_source: str
    messages: tuple[tuple[int, str], ...] = ()


def canonical_pooling(name: str) -> str | None:
    """`name` as one of `POOLING_MODES` (toolkit spellings such as `avg` or `last_token` understood); None if unknown.

    Example:
        >>> canonical_pooling("avg"), canonical_pooling("CLS"), canonical_pooling("avg_top2")
        ('mean', 'cls', None)
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in POOLING_MODES else None


def model_reference(model: Any) -> tuple[str | None, str | None]:
    """(the folder or hub id the model was loaded from, its hub commit when known) — from its config."""
    config = getattr(model, "config", None)
    ref = getattr(config, "_name_or_path", None) or getattr(model, "name_or_path", None)
    commit = getattr(config, "_commit_hash", None)
    return (str(ref) if ref else None), (str(commit) if commit else None)


def find_beside(ref: str | None, filename: str, revision: str | None = None) -> Path | None:
    """`filename` in the folder `ref`, or in the local hub cache of the hub id `ref`; None when absent.

    Never touches the network, whatever `HF_HUB_OFFLINE` says.
    """
    if not ref:
        return None
    folder = Path(ref).expanduser()
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(ref, filename, revision=revision)
        if not isinstance(cached, str) and revision is not None:  # a commit not in the cache: its branch
            cached = try_to_load_from_cache(ref, filename)
    except Exception:  # not a hub id (a removed folder, a name with odd characters): nothing beside it
        return None
    return Path(cached) if isinstance(cached, str) else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        logger.warning("Could not read %s (%s): its pooling is ignored.", path, err)
        return None


def sentence_transformers_pooling(ref: str | None, revision: str | None = None) -> DeclaredPooling | None:
    """What sentence-transformers' files beside a model say (`modules.json` and its Pooling `config.json`);
    None when there is no `modules.json`.

    Example:
        >>> sentence_transformers_pooling("/no/such/folder") is None
        True
    """
    modules_file = find_beside(ref, "modules.json", revision)
    modules = _read_json(modules_file) if modules_file is not None else None
    if not isinstance(modules, list):
        return None
    pooling = pooling_source = None
    problems: list[str] = []
    normalize = False
    for entry in modules:
        if not isinstance(entry, dict):
            continue
        kind = str(entry.get("type", "")).rsplit(".", 1)[-1]
        if kind not in _REPRODUCIBLE:
            problems.append(
                f"its sentence-transformers modules include {kind} ({entry.get('path')}), which a plain "
                f"transformers model does not apply: evaluate SentenceTransformer({ref!r}) to score the whole model"
            )
        elif kind == "Normalize":
            normalize = True
        elif kind == "Pooling":
            config_name = f"{str(entry.get('path', '')).strip('/')}/config.json".lstrip("/")
            config_file = find_beside(ref, config_name, revision)
            config = _read_json(config_file) if config_file is not None else None
            modes = _pooling_modes(config) if isinstance(config, dict) else []
            if len(modes) == 1:
                pooling, pooling_source = modes[0], f"sentence-transformers config {config_file}"
            elif len(modes) > 1:
                problems.append(
                    f"its sentence-transformers Pooling concatenates {'+'.join(modes)}, which a plain transformers "
                    f"model + one pooling cannot: evaluate SentenceTransformer({ref!r}) to score it as it is"
                )
            elif config_file is not None:
                problems.append(f"{config_file} names no pooling the evaluator knows ({config})")
    return DeclaredPooling(
        pooling=pooling,
        pooling_source=pooling_source,
        normalize=normalize,
        normalize_source=f"sentence-transformers modules {modules_file}",
        problems=tuple(problems),
    )


def _pooling_modes(config: dict[str, Any]) -> list[str]:
    """The modes of a sentence-transformers Pooling config: `pooling_mode` (>= 5: a name or a list) or the flags."""
    value = config.get("pooling_mode")
    if isinstance(value, str):
        names = [value]
    elif isinstance(value, list):
        names = [str(v) for v in value]
    else:
        names = [mode for flag, mode in _ST_FLAGS.items() if config.get(flag) is True]
    return [mode for mode in (canonical_pooling(n) for n in names) if mode is not None]


def _saved_pooling(ref: str | None, revision: str | None) -> DeclaredPooling | None:
    path = find_beside(ref, ENCODER_FILE, revision)
    info = _read_json(path) if path is not None else None
    if not isinstance(info, dict):
        return None
    pooling = info.get("pooling")
    normalize = info.get("normalize")
    return DeclaredPooling(
        pooling=canonical_pooling(pooling) if isinstance(pooling, str) else None,
        pooling_source=str(path),
        normalize=normalize if isinstance(normalize, bool) else None,
        normalize_source=str(path),
    )


def _attribute_hints(obj: Any, describe: Callable[[str, Any], str]) -> DeclaredPooling | None:
    """The pooling / normalisation named by `obj`'s attributes (`_POOLING_NAMES`, `_NORMALIZE_NAMES`): the first
    string and the first bool; a pooling the evaluator does not compute is a problem, not a choice."""
    pooling = pooling_source = normalize = normalize_source = None
    problems: list[str] = []
    for attr in _POOLING_NAMES:
        value = getattr(obj, attr, None)
        if isinstance(value, str) and value:
            pooling = canonical_pooling(value)
            if pooling is None:
                problems.append(
                    f"{describe(attr, value)} names a pooling the evaluator does not compute (it computes "
                    f"{', '.join(POOLING_MODES)}); pass pooling= to the evaluator"
                )
            else:
                pooling_source = describe(attr, value)
            break
    for attr in _NORMALIZE_NAMES:
        value = getattr(obj, attr, None)
        if isinstance(value, bool):
            normalize, normalize_source = value, describe(attr, value)
            break
    if pooling is None and normalize is None and not problems:
        return None
    return DeclaredPooling(pooling, pooling_source, normalize, normalize_source, tuple(problems))


def _config_hints(model: Any) -> DeclaredPooling | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    return _attribute_hints(config, lambda attr, value: f"the model's config ({attr}={value!r})")


def _own_attributes(owner: Any) -> DeclaredPooling | None:
    if owner is None:
        return None
    name = type(owner).__name__
    return _attribute_hints(owner, lambda attr, value: f"{name}.{attr}")


def declared_pooling(model: Any, owner: Any = None) -> DeclaredPooling:
    """What `model` (a transformers model) and the module holding it (`owner`) say about their pooling.

    Each field comes from the first source that sets it (the module's attributes, sentence-transformers' files,
    `hf_search_wandb_encoder.json`, the model's config); the problems of every source are kept.

    Example:
        >>> from transformers import BertConfig, BertModel
        >>> declared_pooling(BertModel(BertConfig(num_hidden_layers=1, pooling_mode="cls"))).pooling
        'cls'
    """
    ref, revision = model_reference(model)
    sources = [
        _own_attributes(owner),
        sentence_transformers_pooling(ref, revision),
        _saved_pooling(ref, revision),
        _config_hints(model),
    ]
    found = [s for s in sources if s is not None]
    by_pooling = next((s for s in found if s.pooling is not None), None)
    by_normalize = next((s for s in found if s.normalize is not None), None)
    return DeclaredPooling(
        pooling=by_pooling.pooling if by_pooling else None,
        pooling_source=by_pooling.pooling_source if by_pooling else None,
        normalize=by_normalize.normalize if by_normalize else None,
        normalize_source=by_normalize.normalize_source if by_normalize else None,
        problems=tuple(p for s in found for p in s.problems),
    )


def choose_pooling(
    declared: DeclaredPooling,
    pooling: str | None = None,
    normalize: bool | None = None,
    *,
    name: str = "model",
) -> PoolingChoice:
    """The pooling and normalisation to evaluate with: the explicit ones when given (a warning when the model
    says otherwise), else the model's, else mean without normalisation (said at info level).

    Example:
        >>> said = DeclaredPooling("cls", "its config", True, "its config")
        >>> choice = choose_pooling(said, pooling="mean")
        >>> choice.pooling, choice.normalize, choice.source
        ('mean', True, 'given')
        >>> choice.messages[0][1]
        "model: pooling='mean' was given but the model says 'cls' (its config); using 'mean', the one given."
    """
    messages = [(logging.WARNING, f"{name}: {problem}.") for problem in declared.problems]
    if pooling is not None:
        chosen, source = pooling, "given"
        if declared.pooling is not None and declared.pooling != pooling:
            messages.append((logging.WARNING, (
                f"{name}: pooling={pooling!r} was given but the model says {declared.pooling!r} "
                f"({declared.pooling_source}); using {pooling!r}, the one given."
            )))  # fmt: skip
    elif declared.pooling is not None:
        chosen, source = declared.pooling, str(declared.pooling_source)
    else:
        chosen, source = DEFAULT_POOLING, "default"
        messages.append((logging.INFO, (
            f"{name}: no pooling found (no sentence-transformers Pooling config beside it, none in its config): "
            f"{DEFAULT_POOLING} pooling; pass pooling= to the evaluator to choose another."
        )))  # fmt: skip
    if normalize is not None:
        normalized, normalize_source = normalize, "given"
        if declared.normalize is not None and declared.normalize != normalize:
            messages.append((logging.WARNING, (
                f"{name}: normalize={normalize} was given but the model says normalize={declared.normalize} "
                f"({declared.normalize_source}); using normalize={normalize}, the one given."
            )))  # fmt: skip
    elif declared.normalize is not None:
        normalized, normalize_source = declared.normalize, str(declared.normalize_source)
    else:
        normalized, normalize_source = False, "default"
    if source not in ("given", "default") or normalize_source not in ("given", "default"):
        messages.append((logging.INFO, (
            f"{name}: evaluated with {chosen} pooling ({source})"
            f"{', L2-normalised' if normalized else ', not normalised'} ({normalize_source})."
        )))  # fmt: skip
    return PoolingChoice(chosen, normalized, source, normalize_source, tuple(messages))


def say_once(messages: Iterable[tuple[int, str]]) -> None:
    """Log `(level, text)` messages (a `PoolingChoice`'s), each distinct text once per process: an evaluator
    adapts the model at every evaluation, and one warning per run is enough."""
    for level, text in messages:
        if text not in _SAID:
            _SAID.add(text)
            logger.log(level, text)


def model_pooling(
    model: Any, pooling: str | None = None, normalize: bool | None = None
) -> PoolingChoice | None:
    """The pooling an evaluator with these `pooling` / `normalize` settings uses for `model` — a transformers
    `PreTrainedModel`, or a module holding one as `.encoder` / `.model` / `.backbone` — without logging;
    None for any other model (a SentenceTransformer pools with its own modules).

    Example:
        >>> from transformers import BertConfig, BertModel
        >>> model_pooling(BertModel(BertConfig(num_hidden_layers=1))).pooling
        'mean'
    """
    from transformers import PreTrainedModel

    from hf_search_wandb.core.models.base import unwrap_model  # torch: imported when a model is asked about

    try:
        model = unwrap_model(model)
    except NotImplementedError:  # sharded weights: the evaluator refuses them, with its own message
        return None
    if isinstance(model, PreTrainedModel):
        return choose_pooling(declared_pooling(model), pooling, normalize)
    for attr in ("encoder", "model", "backbone"):
        inner = getattr(model, attr, None)
        if isinstance(inner, PreTrainedModel):
            return choose_pooling(declared_pooling(inner, owner=model), pooling, normalize)
    return None


__all__ = [
    "DEFAULT_POOLING",
    "ENCODER_FILE",
    "POOLING_MODES",
    "DeclaredPooling",
    "PoolingChoice",
    "canonical_pooling",
    "choose_pooling",
    "declared_pooling",
    "find_beside",
    "model_pooling",
    "model_reference",
    "say_once",
    "sentence_transformers_pooling",
]

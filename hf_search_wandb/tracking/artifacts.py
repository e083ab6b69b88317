"""Best-model and dataset artifacts: log them, and fetch / load them back.

* `log_model_artifact`: `search-model-{run.id}` (type `model`), the saved model directory, metadata
  with the best metric, aliases `best` and `latest`. Logging the same name again makes a new version
  and moves the aliases, so the run keeps one artifact whose `best` alias is the best model so far.
* `log_dataset_artifact`: `training-data-{dataset_name}` (type `dataset`) with `train.jsonl` /
  `val.jsonl` and their sizes and negative-sampling metadata.
* `fetch_artifact` / `load_model_from_artifact`: download by `name:alias` to a local directory.

In offline mode an artifact is staged in the run (files copied to wandb's staging folder) and uploaded
by `wandb sync`; nothing can be downloaded, so `fetch_artifact` raises `ArtifactUnavailableError`
saying what to do instead, and `find_staged_artifact` / `restore_staged_artifact` recover a copy that
an offline run staged on this machine. With no run, or a disabled one, the `log_*` helpers do nothing
and return None. Only the main process should call them (the callback does so on rank 0).

Why over 400 lines: logging, fetching, loading and recovering staged offline copies share the artifact naming
and the offline rules.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_search_wandb.core import compat
from hf_search_wandb.tracking.leet import leet_inspect
from hf_search_wandb.tracking.run_history import started
from hf_search_wandb.tracking.wandb_api import active_run, require_wandb, resolve_mode

__all__ = [
    "ArtifactUnavailableError",
    "StagedArtifact",
    "dataset_artifact_name",
    "fetch_artifact",
    "find_staged_artifact",
    "load_model_from_artifact",
    "log_dataset_artifact",
    "log_model_artifact",
    "model_artifact_name",
    "restore_staged_artifact",
    "write_jsonl",
]


class ArtifactUnavailableError(RuntimeError):
    """An artifact cannot be downloaded here (offline mode, disabled mode, or no W&B server)."""


def staging_dir() -> Path:
    """wandb's artifact staging folder (`WANDB_DATA_DIR/artifacts/staging`, by default under the user's data
    folder): every file of a logged artifact is copied there first. Not created here.

    Example:
        >>> staging_dir().parts[-2:]
        ('artifacts', 'staging')
    """
    wandb = require_wandb()
    return Path(wandb.env.get_data_dir()).expanduser().absolute() / "artifacts" / "staging"


def _staged_files() -> set[Path]:
    try:
        return {p for p in staging_dir().iterdir() if p.is_file()}
    except OSError:
        return set()


def _remove_partial_staging(artifact: Any, before: set[Path]) -> None:
    """After a failed `add_dir`/`add_file`: delete the copies this artifact staged (its entries' staged files,
    and a half-written copy still writable), so a full staging folder is not left fuller."""
    staging = staging_dir()
    entries = getattr(getattr(artifact, "manifest", None), "entries", {}) or {}
    mine = {Path(str(e.local_path)) for e in entries.values() if getattr(e, "local_path", None)}
    for path in (_staged_files() - before) | {p for p in mine if p.parent == staging}:
        with contextlib.suppress(OSError):
            if path in mine or path.stat().st_mode & 0o200:  # wandb makes a complete copy read-only
                path.unlink()


def _safe_name(text: str) -> str:
    """An artifact-name-safe version of `text` (wandb allows letters, digits, `-`, `_` and `.`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "unnamed"


def model_artifact_name(run_id: str) -> str:
    """`search-model-{run_id}`.

    Example:
        >>> model_artifact_name("abc123")
        'search-model-abc123'
    """
    return f"search-model-{_safe_name(run_id)}"


def dataset_artifact_name(dataset_name: str) -> str:
    """`training-data-{dataset_name}`, with characters wandb rejects replaced by `-`.

    Example:
        >>> dataset_artifact_name("BeIR/scifact")
        'training-data-BeIR-scifact'
    """
    return f"training-data-{_safe_name(dataset_name)}"


def _jsonable(value: Any) -> Any:
    """Metadata values as plain JSON types (numpy / torch scalars become Python numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if hasattr(value, "tolist"):  # numpy arrays, torch tensors
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _default_description(metadata: Mapping[str, Any]) -> str:
    for key, value in metadata.items():
        if key.startswith("best_") and isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"Best model ({key[len('best_') :].upper()}: {value:.4f})"
    return "Best model"


def log_model_artifact(
    run: Any,
    model_dir: str | os.PathLike[str],
    *,
    metadata: Mapping[str, Any],
    description: str | None = None,
    aliases: Sequence[str] = ("best", "latest"),
) -> Any:
    """Log the saved model in `model_dir` as `search-model-{run.id}` (type `model`).

    Args:
        run: A wandb run; None uses the active `wandb.run`. Nothing happens when there is none or
            it is disabled.
        model_dir: A directory saved by `SentenceTransformer.save` or `save_pretrained`.
        metadata: E.g. `model_type`, `base_model`, `best_mrr@10`, `best_epoch`, `best_step` and the
            metric values at that step. Numpy / torch scalars are converted.
        description: Defaults to `"Best model (MRR@10: 0.6123)"` from the first `best_*` number.
        aliases: Aliases this version takes (moved from the previous version).

    Returns:
        The logged `wandb.Artifact`, or None when nothing was logged.

    Example:
        >>> import tempfile, wandb
        >>> from sentence_transformers import SentenceTransformer
        >>> run = wandb.init(project="search-model-training", mode="offline", dir=tempfile.mkdtemp())
        >>> best = tempfile.mkdtemp()
        >>> SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2").save(best)
        >>> artifact = log_model_artifact(run, best, metadata={"model_type": "bi-encoder", "best_mrr@10": 0.6123})
        >>> artifact.name == f"search-model-{run.id}", artifact.description
        (True, 'Best model (MRR@10: 0.6123)')
        >>> run.finish()
    """
    run = active_run(run)
    if run is None:
        return None
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"Model directory {model_dir} does not exist: save the model there first.")
    wandb = require_wandb()
    meta = _jsonable(dict(metadata))
    artifact = wandb.Artifact(
        name=model_artifact_name(run.id),
        type="model",
        description=description if description is not None else _default_description(meta),
        metadata=meta,
    )
    before = _staged_files()
    try:
        artifact.add_dir(str(model_dir))
    except OSError:
        _remove_partial_staging(artifact, before)
        raise
    run.log_artifact(artifact, aliases=list(aliases))
    return artifact


def write_jsonl(records: Any, path: str | os.PathLike[str]) -> int:
    """Write `records` to `path` as JSON lines and return how many were written.

    `records` may be a `datasets.Dataset` (written by its own fast writer), a list (or any iterable)
    of dicts, or a `BeirData` split (one line per judged pair: `query_id, query, doc_id, document,
    relevance`).

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "train.jsonl"
        >>> write_jsonl([{"anchor": "q", "positive": "d"}], out)
        1
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(records, Mapping):
        if hasattr(records, "column_names"):
            raise TypeError("Pass one split of a DatasetDict (e.g. `dataset['train']`), not the DatasetDict.")
        raise TypeError("Pass a datasets.Dataset, a list of dicts or a BeirData split, not a dict.")
    if hasattr(records, "to_json") and hasattr(records, "num_rows"):  # datasets.Dataset
        records.to_json(str(path), lines=True, force_ascii=False)
        return int(records.num_rows)
    if hasattr(records, "qrels") and hasattr(records, "corpus") and hasattr(records, "queries"):  # BeirData
        records = _beir_pairs(records)
    if (
        not isinstance(records, (list, tuple))
        and hasattr(records, "__len__")
        and hasattr(records, "__getitem__")
    ):
        records = (records[i] for i in range(len(records)))  # a map-style torch Dataset
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(_jsonable(dict(record)), ensure_ascii=False) + "\n")
            count += 1
    return count


def _beir_pairs(data: Any) -> Iterable[dict[str, Any]]:
    for qid, judged in data.qrels.items():
        for doc_id, grade in judged.items():
            yield {
                "query_id": qid,
                "query": data.queries.get(qid, ""),
                "doc_id": doc_id,
                "document": data.corpus.get(doc_id, ""),
                "relevance": int(grade),
            }


def log_dataset_artifact(
    run: Any,
    *,
    dataset_name: str,
    train: Any,
    val: Any = None,
    metadata: Mapping[str, Any],
    aliases: Sequence[str] = ("latest",),
) -> Any:
    """Log `training-data-{dataset_name}` (type `dataset`) with `train.jsonl` and `val.jsonl`.

    Args:
        run: A wandb run; None uses the active `wandb.run` (no-op when none or disabled).
        dataset_name: E.g. `msmarco`; characters wandb rejects become `-`.
        train: A `datasets.Dataset`, a list of dicts or a `BeirData` split.
        val: The same kinds, or None; a dict of them (several evaluation sets) is written as
            `val-{name}.jsonl` files.
        metadata: E.g. `negative_sampling` (`"bm25_hard"`) and `num_hard_negatives`. `train_size`
            and `val_size` are counted from the files written; `negative_sampling` and
            `num_hard_negatives` default to None.
        aliases: Aliases of this version.

    Returns:
        The logged `wandb.Artifact`, or None when nothing was logged.

    Example:
        >>> import tempfile, wandb
        >>> train = [{"anchor": "what causes diabetes?", "positive": "Insulin resistance ..."}]
        >>> with wandb.init(project="search-model-training", mode="offline", dir=tempfile.mkdtemp()) as run:
        ...     artifact = log_dataset_artifact(run, dataset_name="scifact", train=train,
        ...                                     metadata={"negative_sampling": "bm25_hard", "num_hard_negatives": 5})
        >>> artifact.name, artifact.metadata["train_size"]
        ('training-data-scifact', 1)
    """
    run = active_run(run)
    if run is None:
        return None
    wandb = require_wandb()
    # Written to a temporary folder, not the run's files folder (which `wandb sync` would upload
    # a second time); `add_file` copies each file into wandb's staging area before it is removed.
    with tempfile.TemporaryDirectory(prefix="hf-search-wandb-data-") as tmp:
        files = {"train.jsonl": write_jsonl(train, Path(tmp) / "train.jsonl")}
        if isinstance(val, Mapping):  # several named evaluation sets (SentenceTransformerTrainer allows it)
            for split, records in val.items():
                name = f"val-{_safe_name(str(split))}.jsonl"
                files[name] = write_jsonl(records, Path(tmp) / name)
        elif val is not None:
            files["val.jsonl"] = write_jsonl(val, Path(tmp) / "val.jsonl")
        meta = {"negative_sampling": None, "num_hard_negatives": None, **_jsonable(dict(metadata))}
        meta.update(
            dataset_name=dataset_name,
            train_size=files["train.jsonl"],
            val_size=sum(n for name, n in files.items() if name.startswith("val")),
        )
        artifact = wandb.Artifact(name=dataset_artifact_name(dataset_name), type="dataset", metadata=meta)
        for name in files:
            artifact.add_file(str(Path(tmp) / name), name=name)
        run.log_artifact(artifact, aliases=list(aliases))
    return artifact


def _with_alias(name: str) -> tuple[str, str, str]:
    """(`name:alias`, base name without project, alias); `latest` when no alias is given."""
    head, _, last = name.rpartition("/")
    base, _, alias = last.partition(":")
    alias = alias or "latest"
    full = f"{head}/{base}:{alias}" if head else f"{base}:{alias}"
    return full, base, alias


def _offline_reason(run: Any) -> str | None:
    """Why nothing can be downloaded now (None when a server should answer), without waiting long."""
    if run is not None:
        if getattr(run, "offline", False) or getattr(run, "disabled", False):
            return "wandb runs offline (or disabled) here"
        return None
    choice = resolve_mode()  # no prompt; at most a 2 s connection attempt
    if choice.mode != "online":
        return choice.reason.removesuffix(": logging offline") or f"wandb mode is {choice.mode}"
    return None


def _offline_error(
    name: str,
    reason: str = "wandb runs offline (or disabled) here",
    wandb_dir: str | os.PathLike[str] | None = None,
) -> ArtifactUnavailableError:
    message = (
        f"Cannot download artifact {name!r}: {reason}, and artifacts are "
        "downloaded from a W&B server. Either sync the run that logged it (`wandb sync "
        "./wandb/offline-run-*`) and fetch it again online, or load the model from the local "
        "directory it was saved to (e.g. the trainer's output_dir)."
    )
    staged = find_staged_artifact(name, wandb_dir=wandb_dir)
    if staged is not None:
        message += (
            f" A copy staged by the offline run {staged.run_dir} is still on this machine: "
            f"`restore_staged_artifact({name!r})` rebuilds it as a directory."
        )
    return ArtifactUnavailableError(message)


def fetch_artifact(
    name: str,
    *,
    type: str | None = None,
    root: str | os.PathLike[str] | None = None,
    run: Any = None,
) -> Path:
    """Download the artifact `name` (`search-model-abc123:latest`, `training-data-msmarco:v2`) and
    return its local directory.

    With an active run the artifact is fetched through `run.use_artifact` (so the run records that
    it used it); otherwise through `wandb.Api()`. A name may carry `entity/project/`; without an
    alias `latest` is used.

    Raises:
        ArtifactUnavailableError: offline or disabled mode, no credentials, or the server cannot be
            reached (checked first, within 2 s: never a prompt or a hang); the message says what to
            do instead and points at a copy staged by an offline run when one is found.

    Example:
        Offline (no server; `make test` runs with `WANDB_MODE=offline`), the error says so and what to use
        instead:

        >>> fetch_artifact("search-model-abc123:best", type="model")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hf_search_wandb.tracking.artifacts.ArtifactUnavailableError: ...
    """
    full, _, _ = _with_alias(name)
    wandb = require_wandb()
    active = run if run is not None else getattr(wandb, "run", None)
    reason = _offline_reason(active)
    if reason is not None:
        raise _offline_error(full, reason)
    try:
        if active is not None:
            artifact = active.use_artifact(full, type=type)
        else:
            artifact = wandb.Api(timeout=30).artifact(full, type=type)
        return Path(artifact.download(root=None if root is None else os.fspath(root)))
    except (OSError, ConnectionError, wandb.errors.CommError, wandb.errors.UsageError) as err:
        raise ArtifactUnavailableError(
            f"Could not fetch artifact {full!r} from the W&B server ({err}). Check `wandb login` and "
            "the network, or load the model from its local directory."
        ) from err


def _saved_model_type(path: Path) -> str | None:
    """The `model_type` sentence-transformers saved (`SentenceTransformer`, `SparseEncoder`, ...), if any."""
    config = path / "config_sentence_transformers.json"
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        value = None
    if value:
        return str(value)
    # a CrossEncoder of sentence-transformers 3 to 5 writes no such file: it marks the transformers config
    try:
        hf_config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    marks = ("sentence_transformers", "sbert_ce_default_activation_function")
    if not (path / "modules.json").is_file() and isinstance(hf_config, dict) and any(k in hf_config for k in marks):
        return "CrossEncoder"
    return None


def load_model_from_artifact(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    run: Any = None,
    device: str | None = None,
    **kwargs: Any,
) -> Any:
    """Fetch a model artifact (or take a local directory) and load it.

    A directory saved by sentence-transformers loads as the class that saved it (its
    `config_sentence_transformers.json` `model_type`): a `CrossEncoder`, a `SparseEncoder` (SPLADE), else a
    `SentenceTransformer` (it has `modules.json`); a custom module around a transformers model (saved by the
    callback with `core.model_io.save_model`) as a `PooledEncoder` with the pooling it was evaluated with; any
    other as `transformers.AutoModel` (load its tokenizer with `AutoTokenizer.from_pretrained` on the same
    directory). Each scores the same metrics as the model that was saved. `kwargs` go to the loader.

    Example:
        >>> import tempfile
        >>> from sentence_transformers import SentenceTransformer
        >>> best = tempfile.mkdtemp()
        >>> SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2").save(best)
        >>> model = load_model_from_artifact(best)  # a local directory, no download
        >>> model.encode(["what causes diabetes?"]).shape
        (1, 384)
    """
    local = Path(name)
    path = local if local.is_dir() else fetch_artifact(name, type="model", root=root, run=run)
    if _saved_model_type(path) == "CrossEncoder":
        from sentence_transformers import CrossEncoder

        return CrossEncoder(str(path), device=device, **kwargs)
    if (path / "modules.json").is_file() and _saved_model_type(path) == "SparseEncoder":  # SPLADE: sparse
        compat.require("SparseEncoder", f"loading the SparseEncoder saved in {path}")
        from sentence_transformers.sparse_encoder import SparseEncoder

        return SparseEncoder(str(path), device=device, **kwargs)
    from hf_search_wandb.core.models.save_load import load_model

    return load_model(path, device=device, **kwargs)


@dataclass
class StagedArtifact:
    """An artifact an offline run logged on this machine, with its files still in wandb's staging folder."""

    name: str
    type: str
    aliases: list[str]
    run_dir: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # path in the artifact -> staged copy


def _artifact_records(run_dir: Path) -> list[dict[str, Any]]:
    try:
        done = leet_inspect(run_dir, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return []
    if done.returncode != 0:
        return []
    records = (json.loads(line) for line in done.stdout.splitlines() if line.strip())
    return [r["artifact"] for r in records if r.get("type") == "artifact"]


def find_staged_artifact(
    name: str, *, wandb_dir: str | os.PathLike[str] | None = None, max_runs: int = 20
) -> StagedArtifact | None:
    """The newest copy of `name` (`base:alias`, alias `latest` by default) that an offline run on this
    machine staged and has not yet synced, or None.

    Looks at the newest `max_runs` offline runs under `wandb_dir` (default: `$WANDB_DIR/wandb` and
    `./wandb`). Version aliases such as `v2` are assigned by the server, so only named aliases
    (`latest`, `best`, ...) match.

    Example:
        >>> import tempfile, wandb
        >>> from pathlib import Path
        >>> root, best = tempfile.mkdtemp(), Path(tempfile.mkdtemp())
        >>> (best / "config.json").write_text("{}")
        2
        >>> with wandb.init(project="search-model-training", mode="offline", dir=root) as run:
        ...     _ = log_model_artifact(run, best, metadata={"best_mrr@10": 0.5})
        >>> staged = find_staged_artifact(f"search-model-{run.id}:best", wandb_dir=Path(root) / "wandb")
        >>> sorted(staged.files)
        ['config.json']
    """
    _, base, alias = _with_alias(name)
    roots = (
        [Path(wandb_dir)] if wandb_dir is not None else [Path(os.environ.get("WANDB_DIR", ".")), Path(".")]
    )
    run_dirs: set[Path] = set()
    for root in roots:
        root = root / "wandb" if (root / "wandb").is_dir() else root
        run_dirs.update(p.resolve() for p in root.glob("offline-run-*") if p.is_dir())
    for run_dir in sorted(run_dirs, key=started, reverse=True)[:max_runs]:
        matches = [
            a
            for a in _artifact_records(run_dir)
            if a.get("name") == base and (alias == "latest" or alias in a.get("aliases", []))
        ]
        if not matches:
            continue
        record = matches[-1]
        files = {e["path"]: Path(e["local_path"]) for e in record.get("manifest", {}).get("contents", [])}
        if not all(p.is_file() for p in files.values()):
            continue  # synced (staging cleaned) or removed
        metadata = record.get("metadata") or "{}"
        return StagedArtifact(
            name=base,
            type=str(record.get("type", "")),
            aliases=list(record.get("aliases", [])),
            run_dir=run_dir,
            metadata=json.loads(metadata) if isinstance(metadata, str) else dict(metadata),
            files=files,
        )
    return None


def restore_staged_artifact(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    wandb_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Rebuild the directory of an artifact staged by an offline run (see `find_staged_artifact`).

    Args:
        name: `base:alias`, e.g. `search-model-abc123:best`.
        root: Where to write it; default `./artifacts/{base}-{alias}`.
        wandb_dir: Where the offline runs are.

    Example:
        >>> import tempfile, wandb
        >>> from pathlib import Path
        >>> root, best = tempfile.mkdtemp(), Path(tempfile.mkdtemp())
        >>> (best / "config.json").write_text("{}")
        2
        >>> with wandb.init(project="search-model-training", mode="offline", dir=root) as run:
        ...     _ = log_model_artifact(run, best, metadata={"best_mrr@10": 0.5})
        >>> path = restore_staged_artifact(f"search-model-{run.id}:best", wandb_dir=Path(root) / "wandb",
        ...                                root=Path(root) / "restored")
        >>> sorted(p.name for p in path.iterdir())
        ['config.json']
    """
    _, base, alias = _with_alias(name)
    staged = find_staged_artifact(name, wandb_dir=wandb_dir)
    if staged is None:
        raise FileNotFoundError(
            f"No staged copy of {base}:{alias} found in the offline runs under "
            f"{wandb_dir or 'WANDB_DIR / ./wandb'} (already synced, or logged elsewhere)."
        )
    target = Path(root) if root is not None else Path("artifacts") / f"{base}-{alias}"
    for rel, source in staged.files.items():
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    return target

"""Retrieval data held as Hugging Face `datasets` objects, and the two Hub layouts of BEIR data.

Users often hold queries, corpus and qrels as `datasets.Dataset` / `DatasetDict` with the BEIR Hub columns:
corpus `_id`, `title` (optional), `text`; queries `_id`, `text`; qrels `query-id`, `corpus-id`, `score`.
`to_plain_data` turns them into the plain dicts the evaluator and `score_run` take (plain dicts pass through
unchanged), so the id rules of `core.data` apply to every input the same way.

Two layouts exist on the Hub (`load_beir_hub` reads either, by name or from a local copy of the repository):

* BEIR (`BeIR/scifact`): configs `corpus` and `queries` in `{name}`, the qrels splits in `{name}-qrels`;
* MTEB (`mteb/scifact`): configs `corpus`, `queries` and `default` (or `qrels`) in ONE repository, the
  qrels splits (`train`, `test`, ...) in `default`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hf_search_wandb.core.data.inputs import Qrels, qrels_from_rows
from hf_search_wandb.core.data.records import BeirData, doc_text

CORPUS_COLUMNS = ("_id", "text")  # `title` is optional
QUERY_COLUMNS = ("_id", "text")
QRELS_COLUMNS = ("query-id", "corpus-id", "score")
QRELS_CONFIGS = ("default", "qrels")

__all__ = [
    "is_hf_dataset",
    "load_beir_hub",
    "qrels_from_dataset",
    "texts_from_dataset",
    "to_plain_data",
]


def is_hf_dataset(value: Any) -> bool:
    """True for a `datasets.Dataset`, `IterableDataset`, `DatasetDict` or `IterableDatasetDict`."""
    module = type(value).__module__ or ""
    return module.startswith("datasets.") and hasattr(value, "column_names")


def _is_dict_of_splits(value: Any) -> bool:
    return is_hf_dataset(value) and isinstance(value, Mapping)


def _one_split(value: Any, what: str, preferred: Iterable[str], split: str | None = None) -> Any:
    """The split of a `DatasetDict` to read: `split`, else one named like `preferred`, else the only one."""
    if not _is_dict_of_splits(value):
        return value
    names = list(value)
    if split is not None:
        if split not in value:
            raise ValueError(f"The {what} DatasetDict has no split {split!r} (splits: {names}).")
        return value[split]
    for name in preferred:
        if name in value:
            return value[name]
    if len(names) == 1:
        return value[names[0]]
    raise ValueError(
        f"The {what} DatasetDict has several splits {names}: pass one of them (e.g. {what}[{names[0]!r}])."
    )


def _columns(dataset: Any, required: Iterable[str], what: str) -> list[str]:
    names = list(dataset.column_names or [])
    missing = [c for c in required if c not in names]
    if missing:
        raise ValueError(
            f"The {what} dataset has no column {', '.join(repr(c) for c in missing)} (its columns: {names}). "
            f"BEIR Hub datasets use {what}: {_expected(what)}; rename yours with "
            "dataset.rename_column(old, new)."
        )
    return names


def _expected(what: str) -> str:
    return {
        "corpus": "'_id', 'title' (optional), 'text'",
        "queries": "'_id', 'text'",
        "qrels": "'query-id', 'corpus-id', 'score'",
    }[what]


def _column_values(dataset: Any, names: Iterable[str]) -> dict[str, list[Any]]:
    """Whole columns as Python lists: Arrow's own conversion for a `Dataset`, row iteration otherwise."""
    names = list(names)
    table = getattr(dataset, "data", None)
    indices = getattr(dataset, "_indices", None)
    if table is not None and hasattr(table, "column") and indices is None:
        return {name: table.column(name).to_pylist() for name in names}
    out: dict[str, list[Any]] = {name: [] for name in names}
    for row in dataset:  # an IterableDataset (streaming), or a Dataset after select/shuffle
        for name in names:
            out[name].append(row[name])
    return out


def texts_from_dataset(dataset: Any, what: str = "corpus") -> dict[str, str]:
    """`{id: text}` from a corpus (`_id`, `title`, `text`: title and body joined) or queries (`_id`, `text`).

    Example:
        >>> from datasets import Dataset
        >>> texts_from_dataset(Dataset.from_dict({"_id": [7], "title": ["T"], "text": ["body"]}))
        {'7': 'T body'}
    """
    dataset = _one_split(dataset, what, (what, "train", "test"))
    names = _columns(dataset, CORPUS_COLUMNS if what == "corpus" else QUERY_COLUMNS, what)
    wanted = ["_id", "text", *(["title"] if what == "corpus" and "title" in names else [])]
    values = _column_values(dataset, wanted)
    ids = [str(i) for i in values["_id"]]
    if what == "corpus":
        titles = values.get("title") or [None] * len(ids)
        texts = [doc_text({"title": t, "text": x}) for t, x in zip(titles, values["text"], strict=True)]
    else:
        texts = [str(x if x is not None else "").strip() for x in values["text"]]
    return dict(zip(ids, texts, strict=True))


def qrels_from_dataset(dataset: Any, split: str | None = None) -> Qrels:
    """`{query_id: {doc_id: grade}}` from a qrels dataset (`query-id`, `corpus-id`, `score`).

    Ids and grades are read as a BEIR folder's qrels file is (`inputs.qrels_from_rows`): the same grades are
    refused (fractions, NaN, text that is no number), and so is a pair judged twice.

    Args:
        dataset: a `Dataset`, or a `DatasetDict` of qrels splits (then `split` picks one, e.g. `"test"`).
        split: the split of a `DatasetDict`.

    Example:
        >>> from datasets import Dataset
        >>> qrels_from_dataset(Dataset.from_dict({"query-id": [1], "corpus-id": ["d1"], "score": [1.0]}))
        {'1': {'d1': 1}}
    """
    dataset = _one_split(dataset, "qrels", ("test",) if split is None else (), split)
    _columns(dataset, QRELS_COLUMNS, "qrels")
    values = _column_values(dataset, QRELS_COLUMNS)
    rows = zip(range(1, len(values["score"]) + 1), values["query-id"], values["corpus-id"], values["score"], strict=True)
    return qrels_from_rows(rows, lambda row: f"qrels row {row}", unit="row")


def to_plain_data(
    queries: Any, corpus: Any, qrels: Any, split: str | None = None
) -> tuple[Any, Any, Any]:
    """Convert whichever of queries / corpus / qrels is a `datasets` object to plain dicts; others pass through.

    Example:
        >>> from datasets import Dataset
        >>> q, c, r = to_plain_data(Dataset.from_dict({"_id": ["q1"], "text": ["cells"]}), {"d1": "cell"},
        ...                         {"q1": {"d1": 1}})
        >>> q
        {'q1': 'cells'}
    """
    if is_hf_dataset(queries):
        queries = texts_from_dataset(queries, "queries")
    if is_hf_dataset(corpus):
        corpus = texts_from_dataset(corpus, "corpus")
    if is_hf_dataset(qrels):
        qrels = qrels_from_dataset(qrels, split)
    return queries, corpus, qrels


def _config_names(name: str) -> list[str]:
    from datasets import get_dataset_config_names

    try:
        return list(get_dataset_config_names(name))
    except Exception:  # a script repository, or no listing: fall back to the BEIR layout
        return []


def load_beir_hub(name: str | os.PathLike[str], split: str = "test") -> BeirData:
    """Load one split of a BEIR dataset in either Hub layout (BEIR's or MTEB's), from the Hub or a local copy.

    Args:
        name: a Hub name (`"BeIR/scifact"`, `"mteb/scifact"`) or a local folder laid out like such a
            repository (its README's `configs:` list the parquet / jsonl / tsv files).
        split: the qrels split.

    Raises:
        RuntimeError: the dataset cannot be loaded (offline, unknown name, no such split); says what to do.
        ValueError: a column is missing (named in the message).
    """
    from datasets import load_dataset

    source = os.fspath(name)
    configs = _config_names(source)
    qrels_config = next((c for c in QRELS_CONFIGS if c in configs), None)
    qrels_args: tuple[str, ...]
    if qrels_config is not None and "corpus" in configs:
        qrels_source, qrels_args = source, (qrels_config,)  # MTEB: qrels in the same repository
    else:
        qrels_source, qrels_args = f"{source.rstrip('/')}-qrels", ()  # BEIR: a separate `-qrels` repository
    try:
        corpus_ds = load_dataset(source, "corpus")
        queries_ds = load_dataset(source, "queries")
        qrels_all = load_dataset(qrels_source, *qrels_args)
    except Exception as err:  # offline, unknown name, missing files
        raise RuntimeError(
            f"Could not load {source!r} from the Hugging Face Hub ({type(err).__name__}: {err}). "
            "Offline, pass a local BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or a local "
            "copy of the dataset repository instead."
        ) from err
    if split not in qrels_all:
        raise RuntimeError(f"{qrels_source!r} has no qrels split {split!r} (splits: {list(qrels_all)}).")
    qrels = qrels_from_dataset(qrels_all[split])
    queries = texts_from_dataset(queries_ds, "queries")
    return BeirData(
        corpus=texts_from_dataset(corpus_ds, "corpus"),
        queries={qid: queries[qid] for qid in qrels if qid in queries},
        qrels=qrels,
        name=Path(source.rstrip("/")).name,
    )

"""Load retrieval data in BEIR format: `corpus.jsonl`, `queries.jsonl`, `qrels/{split}.tsv`.

The loaders return plain dicts (`{id: text}` and `{query_id: {doc_id: relevance}}`), the shape the
evaluator and `score_run` take. A BEIR folder is read directly; any other string is a Hugging Face Hub dataset
in BEIR layout (`BeIR/scifact` + `BeIR/scifact-qrels`) or MTEB layout (`mteb/scifact`, qrels in the same
repository), which needs network access, or a local copy of such a repository: `load_beir` hands those to
`core.data.hub_layouts` (imports run one way: this module -> `hub_layouts` -> `records`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from hf_search_wandb.core.data.hub_layouts import load_beir_hub
from hf_search_wandb.core.data.inputs import Qrels, check_text, normalize_id, qrels_from_rows
from hf_search_wandb.core.data.records import BeirData, doc_text


def _jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open("rb") as handle:  # decoded line by line, so a byte that is not UTF-8 is named by its line
        for line_no, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not UTF-8 (byte {raw[err.start]:#04x} at byte {err.start + 1} "
                                 "of the line); re-save the file as UTF-8, e.g. iconv -f latin1 -t utf-8") from None
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no} is not valid JSON ({err.msg}).") from err
            if not isinstance(record, dict) or "_id" not in record:
                raise ValueError(f"{path}:{line_no}: each line must be a JSON object with an `_id` (BEIR format).")
            yield line_no, record


def _records(path: Path, text: Callable[[dict, str], str]) -> dict[str, str]:
    """`{id: text(record)}` of a BEIR JSONL file; a repeated id is refused with both line numbers."""
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line_no, record in _jsonl(path):
        where = f"{path}:{line_no}"
        key = normalize_id(record["_id"], where)
        if key in out:
            raise ValueError(f"{where}: id {key!r} already appears on line {first_line[key]}; give every id once.")
        out[key], first_line[key] = text(record, f"{where} (id {key!r})"), line_no
    return out


def _corpus_text(record: dict, where: str) -> str:
    for field in ("title", "text"):
        if record.get(field) is not None:
            check_text(record[field], f"{where} `{field}`")
    return doc_text(record)


def load_corpus(path: str | Path) -> dict[str, str]:
    """`{doc_id: "title text"}` from a BEIR `corpus.jsonl` (ids as `normalize_id` makes them, each once)."""
    return _records(Path(path), _corpus_text)


def load_queries(path: str | Path) -> dict[str, str]:
    """`{query_id: text}` from a BEIR `queries.jsonl` (its `metadata` is ignored: it may hold labels).
    A missing or non-string `text` and a repeated id are refused with the line number."""
    return _records(Path(path), lambda rec, where: check_text(rec.get("text"), f"{where} `text`").strip())


#: The one header a BEIR qrels file may start with (`-` or `_`, any case); any other first row is data.
QRELS_HEADER = ("query-id", "corpus-id", "score")


def _is_header(row: list[str]) -> bool:
    return [cell.lower().replace("_", "-") for cell in row] == list(QRELS_HEADER)


def load_qrels(path: str | Path) -> Qrels:
    """`{query_id: {doc_id: relevance}}` from a qrels TSV: BEIR's 3 columns (CRLF or LF) or TREC's 4.

    The first row is a header only when it is BEIR's `query-id<TAB>corpus-id<TAB>score`; otherwise it is
    data. Grades must be integers (`inputs.grade`); a malformed row or a (query, doc) pair judged twice
    is refused with its line number.
    """
    return qrels_from_rows(_qrels_rows(path), lambda row_no: f"{path}:{row_no}")


def _qrels_rows(path: str | Path) -> Iterator[tuple[int, str, str, str]]:
    """`(line, query_id, doc_id, grade)` cells of a qrels TSV: blank lines and BEIR's header skipped."""
    first = True
    with Path(path).open(encoding="utf-8", newline="") as handle:
        for row_no, row in enumerate(csv.reader(handle, delimiter="\t"), 1):
            row = [cell.strip() for cell in row]
            if not row or not any(row):
                continue
            if first:
                first = False
                if _is_header(row):
                    continue
            if len(row) == 4:  # TREC style: qid, iteration, docid, rel
                row = [row[0], row[2], row[3]]
            if len(row) != 3:
                hint = (" (it looks space-separated: qrels columns are separated by tabs)"
                        if len(row) == 1 and len(row[0].split()) in (3, 4) else "")
                raise ValueError(f"{path}:{row_no}: expected 3 tab-separated columns (query-id, corpus-id, score) or "
                                 f"TREC's 4, got {len(row)}: {row!r}{hint}")
            yield row_no, row[0], row[1], row[2]


def load_beir(source: str | Path, split: str = "test") -> BeirData:
    """Load one split of a BEIR dataset from a folder, or from the Hub by name.

    Args:
        source: a folder with `corpus.jsonl`, `queries.jsonl` and `qrels/{split}.tsv`; a Hub dataset
            name in BEIR layout (`"BeIR/scifact"`, qrels from `"BeIR/scifact-qrels"`) or MTEB layout
            (`"mteb/scifact"`, qrels in its `default` config); or a local copy of such a repository.
        split: the qrels split (`train`, `dev`, `test`).

    Returns:
        The corpus, the queries judged in `split`, and the qrels.

    Example:
        >>> data = load_beir("data/scifact", "test")  # the SciFact copy of the source repository
        >>> len(data.corpus), len(data.qrels)
        (5183, 300)
    """
    path = Path(source)
    if path.is_dir() and not (path / "corpus.jsonl").exists():
        return load_beir_hub(path, split)  # a local copy of a Hub repository (parquet / jsonl + README configs)
    if path.is_dir():
        qrels_path = path / "qrels" / f"{split}.tsv"
        if not qrels_path.exists():
            available = sorted(p.stem for p in (path / "qrels").glob("*.tsv"))
            raise FileNotFoundError(f"No qrels for split {split!r} in {path}/qrels (available: {available}).")
        qrels = load_qrels(qrels_path)
        queries = load_queries(path / "queries.jsonl")
        return BeirData(
            corpus=load_corpus(path / "corpus.jsonl"),
            queries={qid: queries[qid] for qid in qrels if qid in queries},
            qrels=qrels,
            name=path.name,
        )
    if path.exists() or str(source).startswith((".", "/")):
        raise FileNotFoundError(f"{source} is not a BEIR folder (expected corpus.jsonl, queries.jsonl, qrels/).")
    return load_beir_hub(str(source), split)

"""BEIR loading: the bundled SciFact, CRLF/LF qrels, headers, TREC-style rows, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_search_wandb.core.data.beir import load_beir, load_qrels
from hf_search_wandb.core.data.records import doc_text
from tests.helpers.paths import SCIFACT


def _write_beir(root: Path, qrels_text: str, newline: str = "\n") -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "Title", "text": "Body one."}, {"_id": "d2", "title": "", "text": "Body two."}]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": "q1", "text": " first ", "metadata": {"d1": "label leak"}}, {"_id": "q2", "text": "second"}]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "test.tsv").write_bytes(qrels_text.replace("\n", newline).encode())
    return root


def test_bundled_scifact_has_the_published_counts() -> None:
    test, train = load_beir(SCIFACT, "test"), load_beir(SCIFACT, "train")
    assert (len(test.corpus), len(test.queries), len(test.qrels)) == (5183, 300, 300)
    assert (len(train.queries), sum(len(d) for d in train.qrels.values())) == (809, 919)
    assert not set(test.queries) & set(train.queries)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_crlf_and_lf_qrels_load_the_same(tmp_path: Path, newline: str) -> None:
    data = load_beir(_write_beir(tmp_path, "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t0\n", newline))
    assert data.qrels == {"q1": {"d1": 2}, "q2": {"d2": 0}}
    assert data.corpus == {"d1": "Title Body one.", "d2": "Body two."}
    assert data.queries == {"q1": "first", "q2": "second"}  # metadata (gold labels) never read


def test_trec_style_rows_without_header(tmp_path: Path) -> None:
    path = tmp_path / "qrels.txt"
    path.write_text("q1 0 d1 1\n".replace(" ", "\t"))
    assert load_qrels(path) == {"q1": {"d1": 1}}


def test_bad_rows_and_missing_splits_say_what_is_wrong(tmp_path: Path) -> None:
    root = _write_beir(tmp_path / "beir", "q1\td1\t1\nq2\td2\n")
    with pytest.raises(ValueError, match="expected 3 tab-separated columns"):
        load_beir(root)
    with pytest.raises(FileNotFoundError, match=r"No qrels for split 'dev'.*available: \['test'\]"):
        load_beir(root, "dev")
    with pytest.raises(FileNotFoundError, match="not a BEIR folder"):
        load_beir(tmp_path / "nowhere")


def test_hub_names_fail_fast_offline_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="pass a local BEIR folder"):
        load_beir("BeIR/no-such-dataset-here", "test")


def test_doc_text_joins_title_and_body() -> None:
    assert doc_text({"title": " A ", "text": " b "}) == "A b"
    assert doc_text({"text": "only"}) == "only"

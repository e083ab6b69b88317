"""Data as users hold it: `datasets` objects with the BEIR Hub columns, and both Hub layouts loaded offline
from local copies of the repositories (parquet / tsv files + README configs, read by `datasets.load_dataset`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from hf_search_wandb import RetrievalEvaluator, load_beir
from hf_search_wandb.core.data.hub_layouts import qrels_from_dataset, texts_from_dataset
from tests.helpers.keyword_encoder import KeywordEncoder
from tests.helpers.paths import SCIFACT
from tests.helpers.tiny_models import WORDS

N_DOCS, N_QUERIES = 300, 40


@pytest.fixture(scope="module")
def scifact_small():
    """A slice of SciFact test: the judged docs of 40 queries plus others, as plain dicts."""
    data = load_beir(SCIFACT, "test")
    qids = sorted(data.qrels)[:N_QUERIES]
    qrels = {q: data.qrels[q] for q in qids}
    judged = {d for docs in qrels.values() for d in docs}
    docs = sorted(judged) + sorted(d for d in data.corpus if d not in judged)[: N_DOCS - len(judged)]
    return {q: data.queries[q] for q in qids}, {d: data.corpus[d] for d in docs}, qrels


def _columns(queries, corpus, qrels):
    # the corpus is split back into title / body as the Hub holds it
    corpus_ds = Dataset.from_dict({"_id": list(corpus), "title": [""] * len(corpus), "text": list(corpus.values())})
    queries_ds = Dataset.from_dict({"_id": list(queries), "text": list(queries.values())})
    rows = [(q, d, g) for q, docs in qrels.items() for d, g in docs.items()]
    qrels_ds = Dataset.from_dict(
        {"query-id": [r[0] for r in rows], "corpus-id": [r[1] for r in rows], "score": [float(r[2]) for r in rows]}
    )
    return corpus_ds, queries_ds, qrels_ds


def _readme(path: Path, configs: dict[str, dict[str, str]]) -> None:
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        for split, pattern in splits.items():
            lines += [f"  - split: {split}", f"    path: {pattern}"]
    (path / "README.md").write_text("\n".join([*lines, "---", ""]))


def _mteb_repo(root: Path, corpus_ds, queries_ds, qrels_ds) -> Path:
    """`mteb/<name>`: corpus, queries and the qrels splits (`default`) in one repository."""
    for sub in ("corpus", "queries", "data"):
        (root / sub).mkdir(parents=True)
    corpus_ds.to_parquet(root / "corpus" / "corpus-00000-of-00001.parquet")
    queries_ds.to_parquet(root / "queries" / "queries-00000-of-00001.parquet")
    qrels_ds.to_parquet(root / "data" / "test-00000-of-00001.parquet")
    qrels_ds.select(range(3)).to_parquet(root / "data" / "train-00000-of-00001.parquet")
    _readme(root, {"corpus": {"corpus": "corpus/corpus-*"}, "queries": {"queries": "queries/queries-*"},
                   "default": {"test": "data/test-*", "train": "data/train-*"}})
    return root


def _beir_repos(root: Path, corpus_ds, queries_ds, qrels_ds) -> Path:
    """`BeIR/<name>` (corpus and queries configs) + `BeIR/<name>-qrels` (one TSV per split)."""
    repo, qrels_repo = root / "scifact", root / "scifact-qrels"
    for sub in ("corpus", "queries"):
        (repo / sub).mkdir(parents=True)
    corpus_ds.to_parquet(repo / "corpus" / "corpus-00000-of-00001.parquet")
    queries_ds.to_parquet(repo / "queries" / "queries-00000-of-00001.parquet")
    _readme(repo, {"corpus": {"corpus": "corpus/*"}, "queries": {"queries": "queries/*"}})
    qrels_repo.mkdir()
    lines = ["query-id\tcorpus-id\tscore"] + [
        f"{r['query-id']}\t{r['corpus-id']}\t{int(r['score'])}" for r in qrels_ds
    ]
    (qrels_repo / "test.tsv").write_text("\n".join(lines) + "\n")
    return repo


def test_an_evaluator_from_datasets_scores_like_one_from_dicts(scifact_small) -> None:
    keyword_encoder = KeywordEncoder(WORDS)
    queries, corpus, qrels = scifact_small
    corpus_ds, queries_ds, qrels_ds = _columns(queries, corpus, qrels)
    expected = RetrievalEvaluator(queries, corpus, qrels).evaluate(keyword_encoder).metrics
    direct = RetrievalEvaluator(queries_ds, corpus_ds, qrels_ds)
    assert (direct.queries, direct.corpus, direct.qrels) == (queries, corpus, qrels)
    assert direct.evaluate(keyword_encoder).metrics == expected
    # DatasetDicts as load_dataset returns them (one split each, several qrels splits)
    from_dicts = RetrievalEvaluator.from_datasets(
        DatasetDict(corpus=corpus_ds), DatasetDict(queries=queries_ds),
        DatasetDict(train=qrels_ds.select(range(2)), test=qrels_ds), split="test",
    )
    assert from_dicts.evaluate(keyword_encoder).metrics == expected


@pytest.mark.parametrize("layout", ["mteb", "beir"])
def test_load_beir_reads_both_hub_layouts_from_local_copies(tmp_path, scifact_small, layout) -> None:
    queries, corpus, qrels = scifact_small
    tables = _columns(queries, corpus, qrels)
    repo = _mteb_repo(tmp_path / "mteb-scifact", *tables) if layout == "mteb" else _beir_repos(tmp_path, *tables)
    data = load_beir(repo, "test")
    assert (data.queries, data.corpus, data.qrels) == (queries, corpus, qrels)
    assert data.name == repo.name
    evaluator = RetrievalEvaluator.from_beir(repo, "test", name="hub")
    assert len(evaluator.queries) == N_QUERIES
    if layout == "mteb":
        assert len(load_beir(repo, "train").qrels) >= 1
    with pytest.raises(RuntimeError, match="no qrels split 'dev'"):
        load_beir(repo, "dev")


def test_a_missing_column_is_named() -> None:
    corpus = Dataset.from_dict({"id": ["d1"], "text": ["x"]})
    with pytest.raises(ValueError, match=r"corpus dataset has no column '_id'.*its columns: \['id', 'text'\]"):
        RetrievalEvaluator(Dataset.from_dict({"_id": ["q"], "text": ["q"]}), corpus, {"q": {"d1": 1}})
    qrels = Dataset.from_dict({"query-id": ["q"], "corpus-id": ["d1"], "relevance": [1]})
    with pytest.raises(ValueError, match="qrels dataset has no column 'score'"):
        qrels_from_dataset(qrels)
    with pytest.raises(ValueError, match="queries dataset has no column 'text'"):
        texts_from_dataset(Dataset.from_dict({"_id": ["q"], "query": ["x"]}), "queries")


def test_ambiguous_splits_and_fractional_grades_are_refused() -> None:
    qrels = Dataset.from_dict({"query-id": ["q"], "corpus-id": ["d"], "score": [1]})
    with pytest.raises(ValueError, match=r"several splits \['train', 'dev'\]"):
        qrels_from_dataset(DatasetDict(train=qrels, dev=qrels))
    with pytest.raises(ValueError, match="no split 'test'"):
        qrels_from_dataset(DatasetDict(train=qrels, dev=qrels), "test")
    half = Dataset.from_dict({"query-id": ["q"], "corpus-id": ["d"], "score": [0.5]})
    with pytest.raises(ValueError, match="not a whole number"):
        qrels_from_dataset(half)


def test_non_string_ids_become_strings() -> None:
    corpus = Dataset.from_dict({"_id": [7, 8], "title": ["T", None], "text": ["body", "other"]})
    assert texts_from_dataset(corpus) == {"7": "T body", "8": "other"}
    qrels = Dataset.from_dict({"query-id": [1], "corpus-id": [7], "score": [2]})
    assert qrels_from_dataset(qrels) == {"1": {"7": 2}}


def test_a_datasets_evaluator_logs_through_the_callback(wandb_offline: Path, tiny_bert_dir: Path) -> None:
    from hf_search_wandb.trainer.callback import SearchWandbCallback
    from tests.helpers.training import make_evaluator, only_run, plain_trainer

    reference = make_evaluator()  # the same queries / docs / qrels, held as Hub-style datasets
    corpus_ds, queries_ds, qrels_ds = _columns(reference.queries, reference.corpus, reference.qrels)
    evaluator = RetrievalEvaluator.from_datasets(DatasetDict(corpus=corpus_ds), queries_ds, qrels_ds)
    callback = SearchWandbCallback(evaluator, dataset_name="scifact", log_tables="off", log_histograms=False,
                                   model_artifact="off")
    trainer = plain_trainer(tiny_bert_dir, wandb_offline / "out", callback, max_steps=3)
    trainer.train()
    run = only_run(wandb_offline)
    (mrr,) = run.series("val/mrr@10")
    assert mrr == pytest.approx(reference.evaluate(trainer.model).metrics["mrr@10"], abs=1e-6)

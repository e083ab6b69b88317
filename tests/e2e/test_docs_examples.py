"""Every Python example in README.md and docs/*.md runs as written.

The examples of one page run in order in one interpreter (as a reader goes down the page: a later block may
use names an earlier one defined), from a scratch folder that holds the bundled `data/` folder, with wandb
offline and Hub names resolving offline (see the root conftest). A block that is only a fragment is marked so
on the page: `<!-- fragment -->` on the line before its fence; those are not run.

The pages show real budgets (an epoch, the whole SciFact test split). The test runs them with tiny ones, set
here and nowhere else: every `TrainingArguments` is cut to 2 steps of 4 examples that log, evaluate and save
at each step, and every `RetrievalEvaluator` to 10 queries over their judged documents plus 100 others.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO_ROOT

ROOT = REPO_ROOT
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRAGMENT = "<!-- fragment -->"
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)

_RUNNER = """
import json, sys, traceback

import transformers
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

_post_init = transformers.TrainingArguments.__post_init__


def _tiny_budget(self):
    self.max_steps, self.num_train_epochs = 2, 1
    self.per_device_train_batch_size = min(self.per_device_train_batch_size, 4)
    self.per_device_eval_batch_size = min(self.per_device_eval_batch_size, 4)
    self.logging_steps = self.eval_steps = self.save_steps = 1
    _post_init(self)


transformers.TrainingArguments.__post_init__ = _tiny_budget
_evaluator_init = RetrievalEvaluator.__init__


def _tiny_evaluator(self, *args, **kwargs):
    kwargs["max_queries"] = min(kwargs.get("max_queries") or 10, 10)
    kwargs["corpus_sample"] = min(kwargs.get("corpus_sample") or 100, 100)
    _evaluator_init(self, *args, **kwargs)


RetrievalEvaluator.__init__ = _tiny_evaluator

blocks = json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
for block in blocks:
    try:
        exec(compile(block["code"], block["where"], "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        print("FAILED BLOCK", block["where"], file=sys.stderr)
        sys.exit(1)
"""


def python_blocks(page: Path) -> list[dict[str, str]]:
    """The runnable ```python blocks of `page`, with `page:line` of each."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].strip() == FRAGMENT:
            continue
        line = text.count("\n", 0, match.start()) + 2
        name = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
        blocks.append({"code": match.group(1), "where": f"{name}:{line}"})
    return blocks


def test_fragment_marker_is_honoured(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n\n<!-- fragment -->\n```python\nundefined_name\n```\n")
    assert [b["code"] for b in python_blocks(page)] == ["x = 1\n"]


@pytest.mark.docs
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    (tmp_path / "data").symlink_to(ROOT / "data", target_is_directory=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path),
        "WANDB_SILENT": "true",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(python_blocks(page)),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]

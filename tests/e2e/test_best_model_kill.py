"""SIGKILL at each moment of a best-model save: the previous best (or the new one, once complete) survives.

A child saves best model A, then starts saving B and SIGKILLs itself at one moment of the save: while the files
are written, after the complete copy is renamed `.new-*`, after the previous best is renamed away, after the new
one is renamed in. The test then recovers as the next start does (`recover_best`) and compares the folder with
reference saves of A and B.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hf_search_wandb.trainer.best_model import best_model_dir, save_best
from tests.helpers.paths import REPO_ROOT

CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from transformers import AutoModel, AutoTokenizer
    from hf_search_wandb.trainer import best_model
    out, a, b, moment = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    tokenizer = AutoTokenizer.from_pretrained(a)
    best_model.save_best(AutoModel.from_pretrained(a), out, tokenizer, evaluator=None, trainer=None, say=print)
    second = AutoModel.from_pretrained(b)
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if moment == "writing":
        real_save = best_model.save_model
        def partial(model, directory, *args, **kwargs):
            Path(directory).mkdir(parents=True, exist_ok=True)
            (Path(directory) / "config.json").write_text("{}")  # the first file of the save, then the kill
            die()
        best_model.save_model = partial
    else:
        renames, real_rename = [], os.rename
        kill_after = {"complete": 1, "old-away": 2, "new-in": 3}[moment]
        def rename(src, dst):
            real_rename(src, dst)
            renames.append(dst)
            if len(renames) == kill_after:
                die()
        best_model.os.rename = rename
    best_model.save_best(second, out, tokenizer, evaluator=None, trainer=None, say=print)
""")


def digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


@pytest.mark.parametrize(("moment", "survivor"), [
    ("writing", "a"), ("complete", "b"), ("old-away", "b"), ("new-in", "b"),
])  # fmt: skip
def test_a_kill_at_any_moment_of_a_best_model_save_leaves_one_complete_best(
    tmp_path: Path, moment: str, survivor: str
) -> None:
    from transformers import AutoModel, AutoTokenizer

    from tests.helpers.tiny_models import make_tiny_bert

    models = {name: make_tiny_bert(tmp_path / name, seed=seed) for name, seed in (("a", 0), ("b", 1))}
    reference = {}
    for name, folder in models.items():
        saved = save_best(AutoModel.from_pretrained(str(folder)), tmp_path / f"ref-{name}",
                          AutoTokenizer.from_pretrained(str(folder)), evaluator=None, trainer=None, say=print)  # fmt: skip
        assert saved is not None
        reference[name] = digest(saved)
    out = tmp_path / "out"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), str(models["a"]), str(models["b"]), moment],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    # before: the previous best was deleted first; a kill while writing left config.json alone in the folder
    target = best_model_dir(out)
    if moment == "writing":
        assert digest(target) == reference["a"]  # whole even before any recovery
    from hf_search_wandb.trainer.best_model import recover_best

    assert recover_best(out) == target  # what the next start (or the next save) does
    assert digest(target) == reference[survivor]
    assert [p.name for p in out.iterdir()] == ["wandb-best-model"]

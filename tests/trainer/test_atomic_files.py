"""Atomic files: the best model and the resume record are written beside and renamed in, so the previous one
survives a full disk; leftovers of an interrupted swap are recovered, the complete copy winning.
(Kills at each moment of the swap: tests/e2e/test_best_model_kill.py.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hf_search_wandb.trainer.best_model import best_model_dir, save_best
from hf_search_wandb.trainer.resume import RUN_FILE, write_run_file
from tests.helpers.tmpfs import fill, small_tmpfs


def digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def tiny_model(path: Path, seed: int):  # type: ignore[no-untyped-def]
    from transformers import AutoModel, AutoTokenizer

    from tests.helpers.tiny_models import make_tiny_bert

    folder = make_tiny_bert(path, seed=seed)
    return AutoModel.from_pretrained(str(folder)), AutoTokenizer.from_pretrained(str(folder))


def test_a_full_output_dir_keeps_the_previous_best_model_whole(tmp_path: Path) -> None:
    """Before: the previous best was deleted first; the disk filled up mid-save and the folder held a part."""
    said: list[str] = []
    first, tokenizer = tiny_model(tmp_path / "a", seed=0)
    second, _ = tiny_model(tmp_path / "b", seed=1)
    with small_tmpfs(tmp_path / "out", size="4m") as out:
        target = save_best(first, out, tokenizer, evaluator=None, trainer=None, say=said.append)
        assert target == best_model_dir(out)
        before = digest(target)
        fill(out, leave=20_000)  # room for the small files, not for the weights
        assert save_best(second, out, tokenizer, evaluator=None, trainer=None, say=said.append) is None
        assert digest(target) == before
        assert sorted(p.name for p in out.iterdir()) == ["filler.bin", "wandb-best-model"]  # no partial copy
        assert len(said) == 1 and said[0].startswith(f"could not save the best model to {out} (")
        assert f"the previous best in {target} is kept" in said[0]


def test_the_resume_record_survives_a_full_disk(tmp_path: Path) -> None:
    """Before: `write_text` truncated the record, then failed: a 0-byte wandb_run.json."""
    with small_tmpfs(tmp_path / "out", size="1m") as out:
        write_run_file(out, {"run_id": "abc", "last_logged_step": 4})
        fill(out)
        with pytest.raises(OSError):
            write_run_file(out, {"run_id": "abc", "last_logged_step": 8, "pad": "x" * 10_000})
        assert json.loads((out / RUN_FILE).read_text())["last_logged_step"] == 4
        from hf_search_wandb.trainer.resume import save_run_file

        said: list[str] = []
        assert save_run_file(out, {"run_id": "abc", "last_logged_step": 8}, say=said.append) is None
        assert json.loads((out / RUN_FILE).read_text())["last_logged_step"] == 4
        assert said and "the previous record is kept" in said[0] and "(0 B free)" in said[0]
        assert not list(out.glob(f".{RUN_FILE}.tmp-*"))


@pytest.mark.parametrize(
    ("leftovers", "winner"),
    [
        (["tmp-1"], "best"),  # a save killed while writing: the partial copy goes
        (["old-1", "new-1"], "new-1"),  # killed between renaming the old away and the new in
        (["new-1"], "new-1"),  # killed before renaming the old away: the newer complete copy wins
        (["old-1"], "old-1"),  # killed after the new one moved away (e.g. by hand): the old comes back
        (["old-1"], "best"),  # killed before deleting the old one
    ],
)
def test_leftovers_of_an_interrupted_swap_are_recovered(
    tmp_path: Path, leftovers: list[str], winner: str
) -> None:
    from hf_search_wandb.trainer.best_model import recover_best

    target = best_model_dir(tmp_path)
    has_best = not (set(leftovers) == {"old-1", "new-1"} or winner == "old-1")
    if has_best:
        target.mkdir()
        (target / "who").write_text("best")
    for name in leftovers:
        folder = target.with_name(f"{target.name}.{name}")
        folder.mkdir()
        (folder / "who").write_text(name)
    assert recover_best(tmp_path) == target
    assert (target / "who").read_text() == winner
    assert [p.name for p in tmp_path.iterdir()] == ["wandb-best-model"]

"""Per-query files in a run folder: the byte budget, the round trip, atomic writes, unreadable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hf_search_wandb.tracking.per_query_scores import read_file, read_scores, select, write_scores

IDS = [f"q{i}" for i in range(100)]
VALUES = {m: np.linspace(0, 1, 100) + i for i, m in enumerate(["mrr@10", "ndcg@10", "recall@100", "map"])}


def test_the_primary_is_always_kept_and_the_others_within_the_budget() -> None:
    kept = select(IDS, VALUES, namespace="val", step=3, primary="ndcg@10", budget_bytes=2 * 8 * 100)
    assert list(kept.values) == ["ndcg@10", "mrr@10", "recall@100"] and kept.dropped == ["map"]
    alone = select(IDS, VALUES, namespace="val", step=3, primary="map", budget_bytes=0)
    assert list(alone.values) == ["map"]
    with pytest.raises(KeyError, match="hit@10"):
        select(IDS, VALUES, namespace="val", step=3, primary="hit@10")


def test_round_trip_and_order(tmp_path: Path) -> None:
    files = tmp_path / "run" / "files"
    for step in (20, 0, 10):
        values = {m: np.where(np.arange(100) % 7 == 0, np.nan, v + step) for m, v in VALUES.items()}
        write_scores(files, select(IDS, values, namespace="val", step=step, primary="mrr@10"))
    write_scores(files, select(IDS, VALUES, namespace="test/nf", step=20, primary="map"))
    kept = read_scores(tmp_path / "run")
    assert [(s.namespace, s.step) for s in kept] == [("test/nf", 20), ("val", 0), ("val", 10), ("val", 20)]
    last = kept[-1]
    assert last.query_ids == IDS and last.primary == "mrr@10" and list(last.values) == list(VALUES)
    np.testing.assert_array_equal(np.isnan(last.values["map"]), np.arange(100) % 7 == 0)
    assert last.mean("mrr@10") == pytest.approx(
        np.nanmean(np.where(np.arange(100) % 7 == 0, np.nan, VALUES["mrr@10"] + 20))
    )
    assert [s.step for s in read_scores(files, "val")] == [0, 10, 20]
    assert not list(files.rglob(".per_query-*"))  # written beside and renamed: nothing left over


def test_a_damaged_file_is_skipped_and_named_when_read_alone(tmp_path: Path) -> None:
    write_scores(tmp_path / "files", select(IDS, VALUES, namespace="val", step=0, primary="mrr@10"))
    bad = tmp_path / "files" / "per_query" / "val" / "step-000000005.npz"
    bad.write_bytes(b"PK\x03\x04 cut off")
    assert [s.step for s in read_scores(tmp_path)] == [0]
    with pytest.raises(ValueError, match=r"step-000000005\.npz: not a per-query scores file"):
        read_file(bad)

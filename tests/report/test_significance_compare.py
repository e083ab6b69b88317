"""`hf-search-wandb compare` and the report's significance section, on kept per-query scores: both agree with
ranx (tests/metrics/data/ranx_reference.json) and with each other."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hf_search_wandb.cli import main
from hf_search_wandb.core.metrics.significance import paired_test
from hf_search_wandb.report.significance import report_section
from hf_search_wandb.tracking.per_query_scores import select, write_scores

RANX = {c["name"]: c for c in json.loads((Path(__file__).parents[1] / "metrics" / "data" / "ranx_reference.json")
                                         .read_text())["cases"]}  # fmt: skip


def keep(run: Path, step: int, values: dict[str, np.ndarray], ids: list[str] | None = None) -> None:
    ids = ids or [f"q{i}" for i in range(len(next(iter(values.values()))))]
    write_scores(run / "files", select(ids, values, namespace="val", step=step, primary=next(iter(values))))


def compare_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["compare", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_compare_equals_ranx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = RANX["n300_small_gain"]
    keep(tmp_path / "a", 0, {"ndcg@10": np.array(case["a"])})
    keep(tmp_path / "b", 0, {"ndcg@10": np.array(case["b"])})
    out = compare_json(capsys, str(tmp_path / "a"), str(tmp_path / "b"), "--permutations", "100000")
    (row,) = out["measures"]
    assert row["p_ttest"] == pytest.approx(case["p_ttest"], rel=1e-10)
    p, n = case["p_fisher"], case["fisher_permutations"]
    assert abs(row["p_randomization"] - p) <= 4 * math.sqrt(p * (1 - p) * 2 / n) + 2 / n
    assert row["delta"] == pytest.approx(np.mean(case["b"]) - np.mean(case["a"]))
    assert out["paired"] == 300


def test_compare_picks_steps_pairs_by_id_and_tests_every_measure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    start = {"mrr@10": rng.random(40), "hit@10": (rng.random(40) < 0.5).astype(float)}
    better = {m: np.clip(v + 0.3, 0, 1) for m, v in start.items()}
    worse = {m: v * 0.5 for m, v in start.items()}
    run = tmp_path / "run"
    keep(run, 0, start)
    keep(run, 10, better)
    keep(run, 20, worse)
    other = tmp_path / "other"  # another run on a reordered, partly different query set
    ids = [f"q{i}" for i in range(40)]
    keep(other, 5, {m: v[::-1][:30] for m, v in worse.items()}, ids[::-1][:30])

    out = compare_json(capsys, str(run), str(run), "--step-a", "start")  # B: best = step 10
    assert (out["a"]["step"], out["b"]["step"]) == (0, 10)
    assert [r["measure"] for r in out["measures"]] == ["mrr@10", "hit@10"]
    expected = paired_test(start["mrr@10"], better["mrr@10"])
    first = out["measures"][0]
    assert first["p_randomization"] == pytest.approx(expected.p_randomization)
    assert first["p_ttest"] == pytest.approx(expected.p_ttest)
    assert (first["wins"], first["losses"], first["ties"]) == (expected.wins, expected.losses, expected.ties)
    assert first["p_holm"] >= first["p_randomization"] and first["significant"] is True

    out = compare_json(
        capsys, str(run), str(other), "--step-a", "20", "--step-b", "last", "--metrics", "mrr@10"
    )
    assert (out["paired"], out["only_a"], out["only_b"]) == (30, 10, 0)
    (row,) = out["measures"]
    assert row["delta"] == pytest.approx(0.0) and row["ties"] == 30 and row["p_randomization"] == 1.0

    assert main(["compare", str(run), str(run), "--step-b", "7"]) == 2
    assert "no evaluation at step 7 (steps kept: 0, 10, 20)" in capsys.readouterr().err
    assert main(["compare", str(run), str(tmp_path)]) == 2
    assert "keeps no per-query scores" in capsys.readouterr().err
    assert main(["compare", str(run), str(run), "--metrics", "ndcg@10"]) == 2
    assert "ndcg@10 not kept by both" in capsys.readouterr().err


def test_the_report_section_holds_what_compare_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(1)
    start = {"ndcg@10": rng.random(50)}
    keep(tmp_path / "r1", 0, start)
    keep(tmp_path / "r1", 4, {"ndcg@10": np.clip(start["ndcg@10"] + rng.normal(0.1, 0.1, 50), 0, 1)})
    keep(tmp_path / "r2", 4, {"ndcg@10": start["ndcg@10"] * 0.9})
    section = report_section([tmp_path / "r1", tmp_path / "r2", tmp_path / "none"], ["r1", "r2", "none"])
    assert section is not None
    assert [(o["run"], o["role"], o["step"]) for o in section["options"]] == [
        (0, "start", 0),
        (0, "best", 4),
        (1, "best", 4),
    ]
    assert sorted(section["pairs"]) == ["0-1", "0-2", "1-2"]
    pair = section["pairs"]["1-2"]  # r2 (B) against r1's best (A)
    out = compare_json(capsys, str(tmp_path / "r1"), str(tmp_path / "r2"))
    row, printed = pair["rows"][0], out["measures"][0]
    assert row[0] == printed["measure"] == "ndcg@10"
    assert row[1:] == [printed[c] for c in section["columns"][1:]]  # the same numbers, to the last bit
    assert sum(pair["histogram"]["counts"]) == 50
    assert all(r[3] < 0 for r in pair["regressed"]) and len(pair["regressed"]) == 10
    assert report_section([tmp_path / "none"], ["none"]) is None

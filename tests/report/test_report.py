"""`hf-search-wandb report`: finding runs, reading them with wandb's reader, and the page's data.

The runs are real offline training runs (`report_runs`, tiny model + `SearchWandbCallback`) and a real
offline sweep; what the page holds is checked against what the tests' own reader
(`tests.wandb_records`, `wandb leet inspect --json`) and wandb's media files say. The page in a browser:
`test_report_browser.py`.
"""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_search_wandb.cli import main
from hf_search_wandb.report import ReportInputError, build_page_data, read_runs, resolve_paths
from hf_search_wandb.report.render import render_html
from tests.helpers.wandb_records import RunRecords, read_run

pytest.importorskip("plotly")


def decode(enc: dict[str, Any], arrays: list[dict[str, Any]] | None = None) -> list[float]:
    """An array of the page data: base64 float64 (`f8`) or int32 (`i4`), or a `ref` into its shared `arrays`."""
    if "ref" in enc:
        assert arrays is not None
        return decode(arrays[enc["ref"]])
    if "i4" in enc:
        return [float(v) for v in np.frombuffer(base64.b64decode(enc["i4"]), dtype="<i4")]
    return np.frombuffer(base64.b64decode(enc["f8"]), dtype="<f8").tolist()


@pytest.fixture(scope="module")
def page_data(report_runs: list[Path]) -> dict[str, Any]:
    sources = resolve_paths([report_runs[0].parent])
    return build_page_data(read_runs(sources.run_dirs))


@pytest.fixture(scope="module")
def records(report_runs: list[Path]) -> list[RunRecords]:
    return [read_run(d) for d in report_runs]


# ------------------------------------------------------------------------------------------ finding runs


def test_paths_name_run_folders_wandb_folders_and_log_files(report_runs: list[Path]) -> None:
    wandb_dir = report_runs[0].parent
    assert resolve_paths([wandb_dir]).run_dirs == [d.resolve() for d in report_runs]  # oldest first
    assert resolve_paths([wandb_dir.parent]).run_dirs == [d.resolve() for d in report_runs]  # project folder
    log_file = next(report_runs[1].glob("run-*.wandb"))
    both = resolve_paths([report_runs[1], log_file, wandb_dir]).run_dirs  # repeats dropped, order kept
    assert both == [report_runs[1].resolve(), report_runs[0].resolve()]


def test_runs_started_in_one_second_are_listed_in_start_order(tmp_path: Path) -> None:
    # wandb's folder names hold the second, then a random id: the later run's id sorts first here
    for name, created in (("offline-run-20261203_005515-zzzzzzzz", "2026-12-03 00:55:15,100"),
                          ("offline-run-20261203_005515-aaaaaaaa", "2026-12-03 00:55:15,900"),
                          ("run-20261203_005514-mmmmmmmm", "2026-12-03 00:55:14,999")):  # fmt: skip
        (tmp_path / name / "logs").mkdir(parents=True)
        (tmp_path / name / f"run-{name[-8:]}.wandb").write_bytes(b"")
        (tmp_path / name / "logs" / "debug.log").write_text(
            f"{created} INFO    MainThread:1 [wandb_init.py:setup_run_log_directory():740] Logging user logs to "
            f"{tmp_path / name / 'logs' / 'debug.log'}\n", encoding="utf-8")
    assert [p.name[-8:] for p in resolve_paths([tmp_path]).run_dirs] == ["mmmmmmmm", "zzzzzzzz", "aaaaaaaa"]


def test_reading_through_wandb_core_equals_the_wandb_command(report_runs: list[Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader runs `wandb leet inspect`'s own program directly (half the time); it must print exactly what
    the `wandb` command prints, and the command must still be used where the program is not found."""
    from hf_search_wandb.report import reader
    from hf_search_wandb.tracking import leet
    from tests.helpers.wandb_records import _wandb_cli

    run_dir = report_runs[0]
    assert leet.wandb_core() is not None
    for summary in (False, True):
        direct = leet.leet_inspect(run_dir, summary=summary, timeout=120)
        via_cli = subprocess.run([_wandb_cli(), "leet", "inspect", *(["--summary"] if summary else []), "--json",
                                  str(run_dir)], capture_output=True, text=True, check=True, timeout=120).stdout
        assert direct.command[0] == str(leet.wandb_core()) and direct.returncode == 0
        assert direct.stdout == via_cli and via_cli.strip()
    fast = reader.read_run(run_dir)
    monkeypatch.setattr(leet, "wandb_core", lambda: None)
    assert leet.leet_inspect(run_dir, timeout=120).command[0] == leet.wandb_cli()[0]
    assert reader.read_run(run_dir) == fast
    with pytest.raises(ReportInputError, match="wandb leet inspect"):  # the command's error, as before
        reader.read_run(run_dir / "logs")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "absent", "no such file or folder"),
        (lambda tmp: tmp, "neither a wandb run folder"),
        (lambda tmp: "sqlite:///" + str(tmp / "none.db"), "no such SQLite file"),
    ],
)
def test_bad_paths_say_what_to_pass(tmp_path: Path, make: Any, message: str) -> None:
    with pytest.raises(ReportInputError, match=message):
        resolve_paths([make(tmp_path)])


def test_cli_rejects_a_folder_without_runs_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "neither a wandb run folder" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


# ------------------------------------------------------------------------------------------ page data


def test_every_logged_series_is_a_curve_with_every_point(page_data: dict[str, Any],
                                                         records: list[RunRecords]) -> None:
    curves = {c["key"]: c for c in page_data["curves"]}
    for index, run in enumerate(records):
        media = {k[: -len("._type")] for row in run.history for k in row if k.endswith("._type")}
        keys = {k for row in run.history for k, v in row.items()
                if not k.startswith("_") and k != "train/global_step" and not isinstance(v, (bool, str, list))
                and k.split(".")[0] not in media}
        assert {"train/loss", "train/lr", "train/epoch_loss", "val/mrr@10", "val/ndcg@10",
                "system/throughput"} <= keys
        for key in keys:
            series = next(s for s in curves[key]["series"] if s["run"] == index)
            rows = [row for row in run.history if key in row]
            assert decode(series["y"]) == pytest.approx([float(row[key]) for row in rows], nan_ok=True)
            assert decode(series["x"], page_data["arrays"]) == [float(row["train/global_step"]) for row in rows]
        # keys logged in the same rows share one x array on the page
        x_of = {key: next(s for s in curves[key]["series"] if s["run"] == index)["x"] for key in keys}
        assert x_of["train/loss"] == x_of["train/lr"] != x_of["val/mrr@10"]
    assert [c["group"] for c in page_data["curves"]][:1] == ["train"]  # train/, val/, system/ in that order
    groups = [c["group"] for c in page_data["curves"]]
    assert groups.index("val") < groups.index("system")


def test_histograms_and_tables_per_evaluation(page_data: dict[str, Any], records: list[RunRecords]) -> None:
    for entry, run in zip(page_data["runs"], records, strict=True):
        media_rows = [row for row in run.history if "score_distribution._type" in row]
        assert len(media_rows) == 3  # evaluations at steps 0, 3 and 6
        for key in ("score_distribution", "positive_scores", "negative_scores"):
            got = entry["histograms"][key]
            assert [h["step"] for h in got] == [row["train/global_step"] for row in media_rows]
            assert [h["values"] for h in got] == [row[f"{key}.values"] for row in media_rows]
        for key in ("retrieval_examples", "error_analysis"):
            logged = [row for row in run.history if f"{key}._type" in row]
            assert len(entry["tables"][key]) == len(logged) >= 1
            for version, row in zip(entry["tables"][key], logged, strict=True):
                stored = json.loads((run.run_dir / "files" / row[f"{key}.path"]).read_text())
                assert version["columns"] == stored["columns"]
                assert len(version["rows"]) == len(stored["data"]) == row[f"{key}.nrows"]
        assert entry["tables"]["retrieval_examples"][0]["columns"] == ["query", "rank", "document", "score", "relevant"]


def test_config_environment_artifacts_and_best_values(page_data: dict[str, Any], records: list[RunRecords]) -> None:
    for entry, run in zip(page_data["runs"], records, strict=True):
        assert entry["config"]["learning_rate"] == run.config["learning_rate"]
        assert "torch_version" not in entry["config"] and entry["environment"]["torch_version"] == run.config["torch_version"]
        assert entry["environment"]["wandb.python"].startswith("CPython")
        names = [(a["name"], a["type"]) for a in entry["artifacts"]]
        assert (f"search-model-{run.summary_view['run_id']}", "model") in names
        assert ("training-data-scifact", "dataset") in names
        model = [a for a in entry["artifacts"] if a["type"] == "model"]
        assert "best" in model[-1]["aliases"] and "best_mrr@10=" in model[-1]["metadata"]
        best = {(b["metric"], b["how"]): b for b in entry["best"]}
        mrr = run.series("val/mrr@10")
        assert best[("val/mrr@10", "max")]["value"] == pytest.approx(max(mrr))
        steps = [row["train/global_step"] for row in run.history if "val/mrr@10" in row]
        assert best[("val/mrr@10", "max")]["step"] == steps[mrr.index(max(mrr))]
        assert best[("best/mrr@10", "callback")]["value"] == pytest.approx(run.summary["best/mrr@10"])


def test_comparison_and_parallel_coordinates(page_data: dict[str, Any], records: list[RunRecords]) -> None:
    comparison = page_data["comparison"]
    assert page_data["eval_metric"] == {"key": "val/mrr@10", "goal": "maximize"}
    assert "learning_rate" in comparison["columns"] and "torch_version" not in comparison["columns"]
    column = comparison["columns"].index("best val/mrr@10")
    assert [row[column] for row in comparison["rows"]] == pytest.approx([max(r.series("val/mrr@10")) for r in records])
    parallel = comparison["parallel"]
    labels = [d["label"] for d in parallel["dimensions"]]
    assert "learning_rate" in labels and labels[-1] == "best val/mrr@10"
    assert parallel["dimensions"][labels.index("learning_rate")]["values"] == [1e-3, 1e-4]


def test_non_finite_values_and_html_in_cells_stay_inert(tmp_path: Path, wandb_offline: Path) -> None:
    import wandb

    run = wandb.init(project="p", config={"note": "</script><script>alert(1)</script>"})
    run.define_metric("train/global_step")
    run.define_metric("*", step_metric="train/global_step")
    run.log({"train/global_step": 1, "train/loss": float("nan")})
    run.log({"train/global_step": 2, "train/loss": float("inf")})
    run.log({"train/global_step": 3, "train/loss": 0.5})
    run_dir = Path(run.dir).parent
    run.finish()
    data = build_page_data(read_runs([run_dir]))
    series = data["curves"][0]["series"][0]
    values = decode(series["y"])
    assert math.isnan(values[0]) and values[1:] == [math.inf, 0.5]
    page = render_html(data, generated="now")
    assert "<script>alert(1)" not in page
    # every script is inline: no src=, no stylesheet link, nothing loaded from elsewhere
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=|<link[^>]*href=", page, flags=re.IGNORECASE)
    assert "default-src 'none'" in page


# ------------------------------------------------------------------------------------------ sweeps


def test_sweep_storage_lists_each_trial_run(tmp_path: Path, wandb_offline: Path) -> None:
    from hf_search_wandb.sweeps.local import run_local_sweep

    def program(config: dict[str, Any], callbacks: list[Any]) -> dict[str, float]:
        import wandb

        value = 1.0 - abs(config["x"] - 0.3)  # > 0, so the best of value * step / 2 over steps 1, 2 is value
        wandb.run.define_metric("train/global_step")
        wandb.run.define_metric("*", step_metric="train/global_step")
        for step in (1, 2):
            wandb.log({"train/global_step": step, "val/mrr@10": value * step / 2})
        return {"eval_val_mrr@10": value}

    sweep = {"name": "tiny", "method": "random", "count": 3, "metric": {"name": "val/mrr@10", "goal": "maximize"},
             "parameters": {"x": {"min": 0.0, "max": 1.0}, "loss": {"values": ["a", "b"]}}}
    result = run_local_sweep(sweep, program, output_dir=tmp_path / "sweep")
    sources = resolve_paths([result.storage])
    assert len(sources.run_dirs) == 3
    assert sorted(d.name.rsplit("-", 1)[-1] for d in sources.run_dirs) == sorted(
        t.user_attrs["wandb_run_id"] for t in result.trials)
    assert sources.sweep_metrics == {"tiny": ("val/mrr@10", "maximize")}
    data = build_page_data(read_runs(sources.run_dirs), trials=sources.trials, sweep_metrics=sources.sweep_metrics)
    comparison = data["comparison"]
    assert {"trial", "trial_state", "x", "loss"} <= set(comparison["columns"])
    by_trial = {row[comparison["columns"].index("trial")]: row for row in comparison["rows"]}
    for trial in result.trials:
        row = by_trial[trial.number]
        assert row[comparison["columns"].index("x")] == trial.params["x"]
        assert row[comparison["columns"].index("best val/mrr@10")] == pytest.approx(trial.value)
    labels = [d["label"] for d in comparison["parallel"]["dimensions"]]
    assert labels == ["loss", "x", "best val/mrr@10"]
    with pytest.raises(ReportInputError, match="no study 'other'"):
        resolve_paths([result.storage], study="other")


def test_cli_writes_the_report(report_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deep" / "report.html"
    assert main(["report", str(report_runs[0]), "-o", str(out), "--title", "my run"]) == 0
    assert str(out.resolve()) in capsys.readouterr().out
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<title>my run" in page
    data = json.loads(re.search(r'<script id="report-data" type="application/json">(.*?)</script>', page, re.S)[1])
    assert [r["id"] for r in data["runs"]] == [report_runs[0].name.rsplit("-", 1)[-1]]


# ------------------------------------------------------------------------------------------ damaged runs


@pytest.fixture(scope="module")
def damaged(report_runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.report.damaged_runs import damaged_copies

    return damaged_copies(report_runs, tmp_path_factory.mktemp("damaged"))


def test_damaged_runs_are_left_out_or_flagged_and_the_page_shows_the_rest(
    damaged: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One unreadable `.wandb` among good runs used to stop the whole report (exit 2, no page); a truncated
    run was drawn as if it were complete. Now: the page shows every run wandb can read, and says what is
    wrong with the others, as the command's stderr does."""
    out = tmp_path / "report.html"
    assert main(["report", str(damaged["good"].parent), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "report of 4 run(s), 2 left out (unreadable)" in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    by_run = {label: [w for w in warnings if f"{path}: " in w] for label, path in damaged.items()}
    assert by_run["good"] == []
    (garbage,) = by_run["garbage"]
    assert "left out: wandb cannot read this run's log" in garbage and "is damaged or was not written by wandb" in garbage
    (empty,) = by_run["empty"]
    assert "left out: the log holds no run record (0 bytes" in empty
    (truncated,) = by_run["truncated"]
    assert "truncated: the log ends in the middle of a record" in truncated
    assert any("corrupt: wandb skipped unreadable data" in w for w in by_run["corrupt"])
    (unfinished,) = by_run["unfinished"]  # cut cleanly between records: nothing is half-written, the end is missing
    assert "no exit record: the run is still running, or its process was killed" in unfinished
    assert len(warnings) == sum(len(w) for w in by_run.values())

    data = json.loads(re.search(r'<script id="report-data" type="application/json">(.*?)</script>', out.read_text(),
                                re.S)[1])
    runs = {Path(r["dir"]).name.rsplit("-", 1)[-1]: r for r in data["runs"]}
    assert sorted(runs) == ["corrupt", "good", "truncated", "unfinished"]
    assert runs["good"]["problems"] == []
    assert runs["truncated"]["problems"][0].startswith("truncated:")
    assert [p.split(":")[0] for p in runs["unfinished"]["problems"]] == ["no exit record"]
    assert any(p.startswith("corrupt:") for p in runs["corrupt"]["problems"])
    assert sorted(Path(s["dir"]).name.rsplit("-", 1)[-1] for s in data["skipped"]) == ["empty", "garbage"]
    # what was read is drawn: the truncated run holds the rows before the cut, fewer than the whole run
    assert 0 < runs["truncated"]["history_rows"] < runs["good"]["history_rows"]


def test_a_report_of_only_unreadable_runs_exits_2_with_one_line(
    damaged: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(damaged["garbage"]), str(damaged["empty"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: none of the 2 run(s) can be read: ")
    assert str(damaged["garbage"]) in err[0] and str(damaged["empty"]) in err[0]
    assert not out.exists()


def test_the_strict_reader_still_raises_and_the_lenient_one_says_why(damaged: dict[str, Path]) -> None:
    from hf_search_wandb.report import UnreadableRunError, read_available_runs

    order = [damaged[k] for k in ("good", "garbage", "truncated")]
    with pytest.raises(UnreadableRunError, match="wandb cannot read this run's log"):
        read_runs(order)
    runs, skipped = read_available_runs(order)
    assert [r.run_dir for r in runs] == [damaged["good"], damaged["truncated"]]  # order kept
    assert [s.run_dir for s in skipped] == [damaged["garbage"]] and "bad header" in skipped[0].reason

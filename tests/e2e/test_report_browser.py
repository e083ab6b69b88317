"""The report page in a real headless Chromium (Debian's `chromium` + `chromedriver`, through Selenium).

The page of two real training runs (`report_runs`) is opened once; the tests check what a user sees:
no console error, no network request, every chart drawn with every data point, the tables with the
rows wandb stored, filtering and sorting, the run picker, and a saved screenshot. Where chromium is
missing the tests are skipped, except on CI (`CI=true`), where `.ci/run` installs it and a missing
browser is a failure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hf_search_wandb.report import build_report
from tests.helpers.browser import PageSession, find_browser, open_page
from tests.helpers.wandb_records import RunRecords, read_run

pytest.importorskip("plotly")
pytest.importorskip("selenium")
if find_browser() is None:
    if os.environ.get("CI"):
        raise RuntimeError("chromium and chromedriver are missing on CI: .ci/run must apt-get install them")
    pytest.skip("chromium and chromedriver are needed: apt-get install -y chromium chromium-driver",
                allow_module_level=True)


@pytest.fixture(scope="module")
def page(report_runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageSession]:
    out = tmp_path_factory.mktemp("report-page") / "report.html"
    build_report([report_runs[0].parent], out)
    with open_page(out) as session:
        session.wait_ready(timeout=300)
        yield session


@pytest.fixture(scope="module")
def records(report_runs: list[Path]) -> list[RunRecords]:
    return [read_run(d) for d in report_runs]


def charts(page: PageSession, kind: str) -> list[dict[str, Any]]:
    """Each drawn Plotly chart of `kind`: its title and, per trace, the points Plotly holds and draws."""
    return page.js("""
        return window.__report.charts.filter(c => c.kind === arguments[0]).map(c => {
          const div = document.getElementById(c.id);
          return {key: c.key, full: c.traces.map(t => t.points),
                  plotted: (div.data || []).map(t => (t.x || t.dimensions[0].values).length),
                  drawn: div.querySelectorAll('.scatterlayer .trace, canvas').length,
                  runs: (div.data || []).map(t => t.meta ? t.meta.run : null)};
        });""", kind)


def test_page_loads_without_errors_or_network(page: PageSession) -> None:
    assert page.errors() == []
    requested = page.page_requests()
    assert requested[:1] == [page.url]  # the browser's network log works: it saw the page itself
    assert page.outside_requests() == []


def test_every_curve_holds_and_draws_every_logged_value(page: PageSession, records: list[RunRecords]) -> None:
    drawn = {c["key"]: c for c in charts(page, "curve")}
    for index, run in enumerate(records):
        for key in ("train/loss", "train/lr", "train/grad_norm", "train/epoch_loss", "val/mrr@10", "val/ndcg@10",
                    "val/map", "val/recall@100", "val/hit@10", "system/throughput"):
            chart = drawn[key]
            trace = chart["runs"].index(index)
            assert chart["plotted"][trace] == chart["full"][trace] == len(run.series(key)) > 0, key
            assert chart["drawn"] == len(chart["runs"])
    stats = charts(page, "stat")
    assert stats and all(min(c["plotted"]) > 0 for c in stats)


def test_histograms_one_line_per_evaluation(page: PageSession, records: list[RunRecords]) -> None:
    shown = {c["key"]: c for c in charts(page, "histogram")}
    run = records[0]  # the run shown first in "Run details"
    rows = [row for row in run.history if "score_distribution._type" in row]
    for key in ("score_distribution", "positive_scores", "negative_scores"):
        assert shown[key]["plotted"] == [len(row[f"{key}.values"]) for row in rows]
        assert shown[key]["drawn"] == len(rows)


def test_parallel_coordinates_has_a_line_per_run(page: PageSession) -> None:
    (parallel,) = charts(page, "parallel")
    assert parallel["plotted"] == [2] and parallel["drawn"] >= 1


def table_state(page: PageSession, name: str) -> dict[str, Any]:
    return page.js("""
        const t = [...document.querySelectorAll('table.data')].find(t => t.dataset.name === arguments[0]);
        return {total: +t.dataset.rowsTotal, matching: +t.dataset.rowsMatching,
                rows: [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.textContent))};""", name)


def test_tables_have_the_stored_rows_and_filter_and_sort(page: PageSession, records: list[RunRecords]) -> None:
    from selenium.webdriver.common.by import By

    run = records[0]
    for key in ("retrieval_examples", "error_analysis"):
        last = [row for row in run.history if f"{key}._type" in row][-1]
        stored = json.loads((run.run_dir / "files" / last[f"{key}.path"]).read_text())
        state = table_state(page, key)
        assert state["total"] == state["matching"] == len(state["rows"]) == len(stored["data"])
        assert state["rows"][0][0] == stored["data"][0][0]

    stored = json.loads((run.run_dir / "files" / [r for r in run.history if "retrieval_examples._type" in r][-1]
                         ["retrieval_examples.path"]).read_text())
    query = stored["data"][0][0]
    box = page.driver.find_element(By.CSS_SELECTOR, 'input[aria-label="filter retrieval_examples"]')
    box.send_keys(query)
    state = table_state(page, "retrieval_examples")
    expected = [r for r in stored["data"] if query.lower() in " ".join(map(str, r)).lower()]
    assert 0 < state["matching"] == len(state["rows"]) == len(expected) < len(stored["data"])
    assert all(r[0] == query for r in state["rows"])

    score = page.driver.find_element(
        By.XPATH, '//table[@data-name="retrieval_examples"]//th[text()="score"]')
    score.click()
    score.click()  # descending
    scores = [float(r[3]) for r in table_state(page, "retrieval_examples")["rows"]]
    assert scores == sorted(scores, reverse=True)
    box.clear()
    box.send_keys("no such text anywhere")
    assert table_state(page, "retrieval_examples")["matching"] == 0


def test_run_picker_hides_a_run_everywhere(page: PageSession) -> None:
    from selenium.webdriver.common.by import By

    page.driver.find_element(By.CSS_SELECTOR, '#run-picker input[data-run="1"]').click()
    visible = page.js("""
        return window.__report.charts.filter(c => c.kind === 'curve').map(c =>
          document.getElementById(c.id).data.filter(t => t.meta.run === 1).map(t => t.visible));""")
    assert visible and all(v == [False] for v in visible if v)
    page.driver.find_element(By.CSS_SELECTOR, '#run-picker input[data-run="1"]').click()
    assert page.errors() == []


def test_screenshot_is_saved(page: PageSession, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    assert page.driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_a_long_curve_is_one_line_not_a_node_per_point(tmp_path: Path, wandb_offline: Path) -> None:
    """A run of 3,000 steps: every value is held and plotted, and drawn as one SVG path per trace; a marker
    per point made the browser build a DOM node per value (10 runs x 10,000 steps: 26.7 s to draw, 3.4 s now)."""
    import wandb

    run = wandb.init(project="long", dir=str(wandb_offline))
    run.define_metric("train/global_step")
    run.define_metric("*", step_metric="train/global_step")
    for step in range(1, 3001):
        run.log({"train/global_step": step, "train/loss": 1.0 / step})
    run.log({"train/global_step": 3000, "val/mrr@10": 0.5})
    run_dir = Path(run.dir).parent
    run.finish()
    out = tmp_path / "long.html"
    build_report([run_dir], out)
    with open_page(out) as session:
        session.wait_ready(timeout=300)
        shown = {c["key"]: c for c in charts(session, "curve")}
        nodes = session.js("""
            const out = {};
            for (const c of window.__report.charts.filter(c => c.kind === "curve"))
              out[c.key] = document.getElementById(c.id).querySelectorAll('.scatterlayer .point').length;
            return out;""")
        assert session.errors() == []
    assert shown["train/loss"]["plotted"] == shown["train/loss"]["full"] == [3000]
    assert shown["train/loss"]["drawn"] == 1 and nodes["train/loss"] == 0
    assert nodes["val/mrr@10"] == 1  # a one-point curve keeps its marker, or it would not show


def test_damaged_runs_are_said_at_the_top_of_the_page_and_in_their_details(report_runs: list[Path],
                                                                          tmp_path: Path) -> None:
    """Unreadable runs are listed as left out, a truncated or corrupt one is flagged where it is drawn: in a
    banner above everything, by a mark in the run picker, and at the top of its details."""
    from tests.report.damaged_runs import damaged_copies

    damaged = damaged_copies(report_runs, tmp_path / "runs")
    out = tmp_path / "damaged.html"
    build_report([damaged["good"].parent], out)
    with open_page(out) as session:
        session.wait_ready(timeout=300)
        seen = session.js("""
            const banner = document.getElementById("problems");
            const box = banner.getBoundingClientRect();
            const picked = document.getElementById("run-select");
            const details = [];
            for (const option of picked.options) {
              picked.value = option.value; picked.dispatchEvent(new Event("change"));
              const warn = document.querySelector("#run-body .run-problems");
              details.push([option.text, warn ? warn.innerText : null]);
            }
            return {first: document.querySelector("main").firstElementChild.id, visible: box.height > 0 && box.top < innerHeight,
                    text: banner.innerText, flags: [...document.querySelectorAll("#run-picker .flag")].length, details};""")
        assert session.errors() == []
    assert seen["first"] == "problems" and seen["visible"]
    assert "2 run folders could not be read and are not shown" in seen["text"]
    assert "3 runs are drawn from a damaged or unfinished log" in seen["text"]
    assert str(damaged["garbage"]) in seen["text"] and str(damaged["empty"]) in seen["text"]
    assert "truncated: the log ends in the middle of a record" in seen["text"]
    assert seen["flags"] == 3
    flagged = [text for _, text in seen["details"] if text]
    assert len(flagged) == 3 and any("truncated:" in t for t in flagged) and any("corrupt:" in t for t in flagged)
    assert any("no exit record" in t for t in flagged)


def test_significance_section_shows_what_compare_computes(page: PageSession, report_runs: list[Path]) -> None:
    """Two evaluations query by query (issue 26): each run's start and best offered, the table of the default pair
    equal to `compare`'s, the delta histogram over every paired query, and the other order drawn with the signs
    turned."""
    from hf_search_wandb.report.significance import compare, evaluations, pick

    read = """
        const table = window.__report.tables.filter(t => t.name === 'significance').pop();
        const rows = [...document.getElementById(table.id).querySelectorAll('tbody tr')]
          .map(r => [...r.children].map(c => c.textContent));
        return {rows, options: JSON.parse(document.getElementById('report-data').textContent).significance.options,
                a: document.getElementById('sig-a').value, b: document.getElementById('sig-b').value,
                hist: Array.from(document.getElementById('sig-hist').data[0].y)};"""
    shown = page.js(read)
    options = shown["options"]
    runs = sorted(report_runs)
    assert {o["role"] for o in options} <= {"start", "best"} and 2 <= len(options) <= 4
    assert {o["run"] for o in options} == {0, 1}  # both runs offered
    a, b = options[int(shown["a"])], options[int(shown["b"])]
    assert (int(shown["a"]), int(shown["b"])) == (0, 1)
    page_runs = [Path(r["dir"]) for r in page.js(
        "return JSON.parse(document.getElementById('report-data').textContent).runs")]  # fmt: skip
    expected = compare(pick(evaluations(page_runs[a["run"]]), a["step"]), pick(evaluations(page_runs[b["run"]]), b["step"]))
    assert sorted(page_runs) == runs
    assert [r[0] for r in shown["rows"]] == [t.metric for t in expected.tests]
    assert [[int(x) for x in r[7:10]] for r in shown["rows"]] == [[t.wins, t.losses, t.ties] for t in expected.tests]
    assert [float(r[3]) for r in shown["rows"]] == pytest.approx([t.delta for t in expected.tests], abs=1e-5)
    assert sum(shown["hist"]) == len(expected.query_ids)

    page.js("""const a = document.getElementById('sig-a'), b = document.getElementById('sig-b');
               a.value = '1'; b.value = '0'; a.dispatchEvent(new Event('change'));""")
    swapped = page.js(read)
    assert [[int(x) for x in r[7:10]] for r in swapped["rows"]] == [[t.losses, t.wins, t.ties] for t in expected.tests]
    assert [float(r[3]) for r in swapped["rows"]] == pytest.approx([-t.delta for t in expected.tests], abs=1e-5)

"""Benchmark `hf-search-wandb report`: time to build the page, and its load time in a real headless Chromium.

Two cases, each on runs synthesised offline with wandb itself (no training; the runs hold what
`SearchWandbCallback` logs, on the `train/global_step` axis):

* 1 run of `--points` history rows (default 10,000);
* `--runs` runs (default 100) of `--points` rows each — a sweep's worth of long runs.

Each run logs `train/loss`, `train/lr` and `train/grad_norm` every step, `val/mrr@10`, `val/ndcg@10` and
`val/loss` plus the three score histograms at 10 evaluations, `system/throughput` at the end, and
`retrieval_examples` (20 queries x 5) and `error_analysis` tables at its last evaluation, with a
config drawn from the recommended sweep space. Synthesised runs are kept under `--runs-dir` and reused.

Reported per case: reading the runs with `wandb leet inspect` (s), building + writing the page (s),
page size (MB), and in Chromium (`--headless --disable-gpu`, software rendering): time from navigation
start until every chart is drawn (the page's own `performance.now()`), median of `--loads` loads.

    python benchmarks/bench_report.py                       # both cases
    python benchmarks/bench_report.py --runs 10 --points 2000 --loads 1   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

EVALUATIONS = 10
HIST_BINS = 64


def synth_run(args: tuple[Path, int, int]) -> str:
    """Write one offline run of `points` steps under `root`; returns its run folder."""
    root, index, points = args
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    import numpy as np
    import wandb

    rng = random.Random(index)
    config = {
        "learning_rate": 10 ** rng.uniform(-6, math.log10(5e-5)), "batch_size": rng.choice([32, 64, 128]),
        "warmup_ratio": rng.choice([0.05, 0.1, 0.2]), "weight_decay": rng.choice([0.0, 0.01, 0.1]),
        "loss_function": rng.choice(["MultipleNegativesRankingLoss", "TripletLoss", "CosineSimilarityLoss"]),
        "pooling_mode": rng.choice(["mean", "cls", "max"]), "eval_metric": "mrr@10", "model_type": "bi-encoder",
    }
    run = wandb.init(project="bench-report", dir=str(root), name=f"bench-{index:03d}", config=config,
                     group="bench", settings=wandb.Settings(x_disable_stats=True))
    run.define_metric("train/global_step")
    run.define_metric("*", step_metric="train/global_step", step_sync=True)
    run.define_metric("val/mrr@10", summary="max")
    run.define_metric("val/ndcg@10", summary="max")
    run.define_metric("val/loss", summary="min")
    quality = 0.3 + 0.5 * (math.log10(config["learning_rate"]) + 6) / 1.7
    gen = np.random.default_rng(index)
    noise = gen.normal(0, 0.05, points)
    eval_every = max(1, points // EVALUATIONS)
    for step in range(1, points + 1):
        progress = step / points
        row = {"train/global_step": step, "train/loss": float(2.0 * math.exp(-3 * progress) + 0.1 + noise[step - 1]),
               "train/lr": config["learning_rate"] * (1 - progress), "train/grad_norm": float(5 + noise[step - 1] * 20)}
        run.log(row)
        if step % eval_every == 0:
            mrr = quality * (0.6 + 0.4 * progress) + float(gen.normal(0, 0.01))
            run.log({"train/global_step": step, "val/mrr@10": mrr, "val/ndcg@10": mrr + 0.03,
                     "val/loss": 1.5 - mrr})
            pos, neg = gen.normal(0.6 * mrr + 0.2, 0.1, 200), gen.normal(0.2, 0.1, 4000)
            media = {
                "train/global_step": step,
                "positive_scores": wandb.Histogram(np_histogram=np.histogram(pos, bins=HIST_BINS)),
                "negative_scores": wandb.Histogram(np_histogram=np.histogram(neg, bins=HIST_BINS)),
                "score_distribution": wandb.Histogram(np_histogram=np.histogram(np.concatenate([pos, neg]), bins=HIST_BINS)),
            }
            if step == eval_every * EVALUATIONS:
                media["retrieval_examples"] = wandb.Table(
                    columns=["query", "rank", "document", "score", "relevant"],
                    data=[[f"query {q}", r, f"document {q}-{r} " + "lorem ipsum " * 12, float(1 - 0.1 * r), r == 1]
                          for q in range(20) for r in range(1, 6)])
                media["error_analysis"] = wandb.Table(
                    columns=["query", "expected_doc", "top1_doc", "top1_score", "expected_rank"],
                    data=[[f"query {q}", f"doc {q}", f"doc {q + 1}", 0.5, str(10 + q)] for q in range(5)])
            run.log(media)
    run.log({"train/global_step": points, "system/throughput": 100.0 + index})
    run_dir = str(Path(run.dir).parent)
    run.finish()
    return run_dir


def ensure_runs(root: Path, count: int, points: int, workers: int) -> list[Path]:
    """`count` synthesised runs of `points` steps under `root` (made once, then reused)."""
    done = root / "runs.json"
    if done.exists():
        listed = [Path(p) for p in json.loads(done.read_text())]
        if len(listed) == count and all(p.is_dir() for p in listed):
            return listed
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        dirs = list(pool.map(synth_run, [(root, i, points) for i in range(count)]))
    print(f"synthesised {count} run(s) x {points:,} steps in {time.perf_counter() - t0:.0f} s under {root}")
    done.write_text(json.dumps(dirs))
    return [Path(d) for d in dirs]


def measure(name: str, run_dirs: list[Path], out: Path, loads: int) -> dict[str, float | str]:
    from hf_search_wandb.report import build_report
    from tests.helpers.browser import find_browser, open_page

    result = build_report(run_dirs, out, title=name)
    row: dict[str, float | str] = {"case": name, "runs": result.runs, "read_s": result.read_s,
                                   "build_s": result.build_s, "size_mb": result.size_bytes / 1e6}
    if find_browser() is None:
        print("chromium/chromedriver missing: no load time (apt-get install chromium chromium-driver)")
        return row
    times = []
    for _ in range(loads):
        with open_page(out) as page:
            times.append(page.wait_ready(timeout=900))
            errors, outside = page.errors(), page.outside_requests()
            charts = page.js("return window.__report.charts.length")
        if errors or outside:
            raise RuntimeError(f"{name}: console errors {errors[:3]} / requests {outside[:3]}")
    row.update(load_s=statistics.median(times), charts=charts)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--points", type=int, default=10_000)
    p.add_argument("--loads", type=int, default=3, help="page loads per case (median reported)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes synthesising runs")
    p.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "outputs" / "bench-report")
    args = p.parse_args()
    many = ensure_runs(args.runs_dir / f"{args.runs}x{args.points}", args.runs, args.points, args.workers)
    rows = [
        measure(f"1 run x {args.points:,} steps", many[:1], args.runs_dir / "one.html", args.loads),
        measure(f"{args.runs} runs x {args.points:,} steps", many, args.runs_dir / "many.html", args.loads),
    ]
    print(f"machine: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} (shared machine: figures are noisy)")
    print("| case | read runs (wandb leet inspect) | build + write page | page size | load in Chromium | charts |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        load = f"{r['load_s']:.2f} s" if "load_s" in r else "n/a"
        print(f"| {r['case']} | {r['read_s']:.1f} s | {r['build_s']:.2f} s | {r['size_mb']:.1f} MB | {load} | "
              f"{r.get('charts', 'n/a')} |")


if __name__ == "__main__":
    main()

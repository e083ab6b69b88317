"""Run RetrievalEvaluator on a SparseEncoder or a MultiVectorEncoder in every process and dump what each rank got
(used by test_sparse_distributed and test_multi_vector_distributed).

Usage: `accelerate launch --multi_gpu --num_processes 2 tests/scripts/family_evaluator_ddp.py FAMILY MODEL_DIR OUT_DIR`
with FAMILY `sparse` or `multi_vector` (`Accelerator(cpu=True)`: gloo on CPU). Each rank evaluates sharded over both
processes, then alone with `distributed=False` (the 1-process reference), and writes OUT_DIR/rank{r}.json. A
multi-vector model is also run through `RerankingEvaluator` (BM25's top 20 re-scored by MaxSim), both ways.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

#: family -> (module, model class, the per-text counts its result adds)
FAMILIES = {
    "sparse": ("sentence_transformers.sparse_encoder", "SparseEncoder", ("doc_active_dims", "query_active_dims")),
    "multi_vector": ("sentence_transformers", "MultiVectorEncoder", ("doc_tokens", "query_tokens")),
}


def main(family: str, model_dir: str, out_dir: str) -> None:
    from accelerate import Accelerator

    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
    from tests.helpers.synthetic import synthetic_data
    from tests.helpers.tiny_models import WORDS

    module, class_name, counts = FAMILIES[family]
    model_class = getattr(importlib.import_module(module), class_name)
    torch.set_num_threads(1)  # same kernels in the 1- and 2-process runs
    accelerator = Accelerator(cpu=True)
    queries, corpus, qrels = synthetic_data(WORDS)
    evaluators = {"": (RetrievalEvaluator(queries, corpus, qrels, max_batch_size=16), counts)}
    if family == "multi_vector":  # the same model re-scoring BM25's top 20 (RerankingEvaluator), sharded and alone
        from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator

        rescoring = RerankingEvaluator(queries, corpus, qrels, depth=20, rerank_all=True, max_batch_size=16)
        evaluators["rescored_"] = (rescoring, ())
    model = model_class(model_dir, device="cpu")
    out: dict = {"world_size": accelerator.num_processes}
    for prefix, (evaluator, figures) in evaluators.items():
        for suffix, distributed in (("sharded", None), ("local", False)):
            evaluator.distributed = distributed
            result = evaluator.evaluate(model)
            out[prefix + suffix] = {
                "metrics": result.metrics,
                "top_indices": result.top_indices.tolist(),
                "top_scores": result.top_scores.tolist(),
                "relevant_ranks": result.relevant_ranks,
                **{name: getattr(result, name).tolist() for name in figures},
            }
    path = Path(out_dir) / f"rank{accelerator.process_index}.json"
    path.write_text(json.dumps(out))
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    from tests.helpers.launch import end_process_group

    main(sys.argv[1], sys.argv[2], sys.argv[3])
    end_process_group()

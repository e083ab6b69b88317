"""Run RetrievalEvaluator in every process and dump what each rank got (used by test_evaluator_distributed).

Usage: `accelerate launch --multi_gpu --num_processes 2 tests/scripts/evaluator_ddp.py TINY_BERT_DIR OUT_DIR`
(the script builds `Accelerator(cpu=True)`: gloo on CPU). Each rank evaluates every model twice — sharded over
both processes, then alone with `distributed=False` (the 1-process reference) — and writes OUT_DIR/rank{r}.json.
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
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    from hf_search_wandb.core import compat
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
    from tests.helpers.keyword_encoder import KeywordEncoder
    from tests.helpers.synthetic import synthetic_data
    from tests.helpers.tiny_models import WORDS

    torch.set_num_threads(1)  # same kernels in the 1- and 2-process runs
    accelerator = Accelerator(cpu=True)
    queries, corpus, qrels = synthetic_data(WORDS)
    evaluator = RetrievalEvaluator(queries, corpus, qrels)

    modules = compat.st_modules()
    word = modules.Transformer(model_dir, max_seq_length=64)
    st_model = SentenceTransformer(
        modules=[word, modules.Pooling(compat.embedding_dimension(word), "mean")], device="cpu"
    )
    hf_model = accelerator.prepare(AutoModel.from_pretrained(model_dir))  # DDP-wrapped when 2 processes
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if len(tokenizer) < len(
        WORDS
    ):  # transformers 5 ignores BertTokenizerFast(vocab_file=...): reload the vocab
        from transformers import BertTokenizer

        tokenizer = BertTokenizer(vocab=str(Path(model_dir) / "vocab.txt"), do_lower_case=True)
    word.processor = tokenizer
    vocab = WORDS[10:40]

    out = {"world_size": accelerator.num_processes, "wrapped": type(hf_model).__name__}
    for name, model in (("st", st_model), ("hf", hf_model), ("keyword", KeywordEncoder(vocab))):
        evaluator.tokenizer = tokenizer if name == "hf" else None
        # sharded over the process group (when there is one), then this process alone: the 1-process reference
        for suffix, distributed in (("", None), ("_local", False)):
            evaluator.distributed = distributed
            result = evaluator.evaluate(model)
            out[name + suffix] = {
                "metrics": result.metrics,
                "top_indices": result.top_indices.tolist(),
                "top_scores": result.top_scores.tolist(),
                "relevant_ranks": result.relevant_ranks,
                "positive_scores": result.positive_scores.tolist(),
            }
    path = Path(out_dir) / f"rank{accelerator.process_index}.json"
    path.write_text(json.dumps(out))
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    from tests.helpers.launch import end_process_group

    main(sys.argv[1], sys.argv[2])
    end_process_group()

"""Encoder adapters: same embeddings as the model's own encode(), pooling by hand, as_encoder dispatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hf_search_wandb.core import compat
from hf_search_wandb.core.evaluation.batching import plan_batches
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.core.models.base import features_to_device, unwrap_model
from hf_search_wandb.core.models.dense import HFEncoder, SentenceTransformerEncoder
from hf_search_wandb.core.models.factory import as_encoder
from tests.helpers.tiny_models import WORDS

TEXTS = [
    "cell growth in the brain",
    "the tumor cells increase with dose",
    "gene",
    "patients with diabetes and obesity have high insulin levels in blood",
    "sleep memory neurons",
]


def load_tokenizer(path: Path):
    """The tiny BERT's tokenizer with its real vocabulary (transformers 5 drops `vocab_file=` on save)."""
    from transformers import AutoTokenizer, BertTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if len(tokenizer) < len(WORDS):
        tokenizer = BertTokenizer(vocab=str(path / "vocab.txt"), do_lower_case=True)
    return tokenizer


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir: Path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_bert_dir).eval(), load_tokenizer(tiny_bert_dir)


def embed_in_length_sorted_batches(encoder, texts, kind, batch_tokens=40):
    """The evaluator's own path: tokenise once, token-budget batches over length-sorted texts."""
    tokens = encoder.tokenize(texts, kind, encoder.default_prompt(kind))
    out = torch.empty(len(texts), 0)
    rows = []
    parts = []
    with torch.inference_mode():
        for batch in plan_batches(tokens.lengths, batch_tokens, 64):
            parts.append(encoder.forward(features_to_device(tokens, batch, torch.device("cpu")), kind))
            rows.append(batch)
    out = torch.cat(parts)[np.argsort(np.concatenate(rows))]
    return out


def test_sentence_transformer_embeddings_equal_its_encode_with_prompts(minilm_path: Path):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path), device="cpu")
    model.prompts = {"query": "query: ", "document": "passage: "}
    encoder = as_encoder(model)
    assert isinstance(encoder, SentenceTransformerEncoder) and encoder.similarity == "cosine"
    for kind, reference in (
        ("query", compat.encode_queries(model, TEXTS, convert_to_tensor=True)),
        ("document", compat.encode_documents(model, TEXTS, convert_to_tensor=True)),
    ):
        ours = embed_in_length_sorted_batches(encoder, TEXTS, kind)
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)
    # the prompts matter: without them the query embeddings differ
    assert not torch.allclose(
        embed_in_length_sorted_batches(encoder, TEXTS, "query"),
        model.encode(TEXTS, convert_to_tensor=True),
        atol=1e-4,
    )


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_hf_encoder_pooling_by_hand(tiny, pooling):
    model, tokenizer = tiny
    encoder = as_encoder(model, tokenizer, pooling=pooling)
    assert isinstance(encoder, HFEncoder) and encoder.pooling == pooling
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).bool()
    expected = {
        "mean": (hidden * mask).sum(1) / mask.sum(1),
        "cls": hidden[:, 0],
        "max": hidden.masked_fill(~mask, -1e9).amax(1),
    }[pooling]
    torch.testing.assert_close(
        embed_in_length_sorted_batches(encoder, TEXTS, "document"), expected, atol=1e-5, rtol=1e-4
    )


def test_hf_encoder_normalize_and_max_length(tiny):
    model, tokenizer = tiny
    encoder = HFEncoder(model, tokenizer, normalize=True, max_length=4)
    emb = encoder.encode_texts(TEXTS, "query")
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(TEXTS)))
    assert encoder.tokenize(TEXTS, "query").lengths.max() == 4


def test_custom_module_with_encoder_attribute_and_its_pooling(tiny):
    model, tokenizer = tiny

    class BiEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = model
            self.pooling = "cls"

    wrapper = BiEncoder()
    encoder = as_encoder(wrapper, tokenizer)
    assert isinstance(encoder, HFEncoder)
    assert encoder.pooling == "cls" and encoder.model is model and encoder.module is wrapper
    assert encoder.pooling_source == "BiEncoder.pooling"
    # the evaluator puts the whole wrapper in eval mode and restores its training mode
    wrapper.train()
    evaluator = RetrievalEvaluator(
        {"q": "cell"},
        {"a": "cell growth", "b": "brain"},
        {"q": {"a": 1}},
        metrics=["mrr@2"],
        depth=2,
        primary_metric="mrr@2",
        tokenizer=tokenizer,
    )
    evaluator.evaluate(wrapper)
    assert wrapper.training and model.training
    model.eval()


def test_plain_model_without_tokenizer_loads_it_from_its_folder(tiny_bert_dir: Path):
    from transformers import AutoModel

    encoder = as_encoder(AutoModel.from_pretrained(tiny_bert_dir))
    assert isinstance(encoder, HFEncoder) and encoder.max_length == 128


def test_wrapped_models_are_unwrapped(tiny):
    model, tokenizer = tiny
    assert unwrap_model(torch.nn.DataParallel(model)) is model
    assert as_encoder(torch.nn.DataParallel(model), tokenizer).model is model


def test_sharded_models_get_a_clear_error():
    class FullyShardedDataParallel(torch.nn.Module):  # the class FSDP(1) wraps a model in
        pass

    with pytest.raises(NotImplementedError, match="FSDP or DeepSpeed"):
        as_encoder(FullyShardedDataParallel())


def test_unknown_objects_get_a_clear_type_error():
    with pytest.raises(TypeError, match="SentenceTransformer, a transformers PreTrainedModel"):
        as_encoder(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="encode_texts"):
        as_encoder("bert-base-uncased")


def test_similarity_follows_the_sentence_transformer(tmp_path):
    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    model = make_tiny_sentence_transformer(tmp_path)
    model.similarity_fn_name = "dot"
    assert as_encoder(model).similarity == "dot"
    model.similarity_fn_name = "euclidean"
    with pytest.raises(ValueError, match="similarity='cosine' or 'dot'"):
        as_encoder(model)


def _dtype_seen(model, run) -> torch.dtype:
    seen = []
    hook = model.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda m, i, o: seen.append(o.dtype)
    )
    try:
        run()
    finally:
        hook.remove()
    return seen[0]


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_autocasts_on_cpu(tiny, precision, dtype):
    model, tokenizer = tiny
    evaluator = RetrievalEvaluator(
        {"q": "cell"},
        {"a": "cell growth", "b": "brain"},
        {"q": {"a": 1}},
        metrics=["mrr@2"],
        depth=2,
        primary_metric="mrr@2",
        tokenizer=tokenizer,
        precision=precision,
    )
    assert _dtype_seen(model, lambda: evaluator.evaluate(model)) == dtype
    assert evaluator.last_result.top_scores.dtype == np.float32


def test_auto_precision_follows_accelerate_mixed_precision(tiny, monkeypatch):
    from accelerate.state import AcceleratorState

    model, tokenizer = tiny
    evaluator = RetrievalEvaluator(
        {"q": "cell"},
        {"a": "cell growth", "b": "brain"},
        {"q": {"a": 1}},
        metrics=["mrr@2"],
        depth=2,
        primary_metric="mrr@2",
        tokenizer=tokenizer,
    )
    assert _dtype_seen(model, lambda: evaluator.evaluate(model)) == torch.float32
    monkeypatch.setitem(
        AcceleratorState._shared_state, "_mixed_precision", "bf16"
    )  # as inside a bf16 Trainer
    assert _dtype_seen(model, lambda: evaluator.evaluate(model)) == torch.bfloat16


def test_auto_precision_follows_an_enclosing_autocast(tiny):
    model, tokenizer = tiny
    evaluator = RetrievalEvaluator(
        {"q": "cell"},
        {"a": "cell growth", "b": "brain"},
        {"q": {"a": 1}},
        metrics=["mrr@2"],
        depth=2,
        primary_metric="mrr@2",
        tokenizer=tokenizer,
    )

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            evaluator.evaluate(model)

    assert _dtype_seen(model, run) == torch.bfloat16


def test_evaluation_max_length_overrides_a_sentence_transformers_training_length(tmp_path) -> None:
    """A model trained at 16 tokens is still evaluated at the length the evaluator asks for, and the
    model's own `max_seq_length` is left as training set it."""
    from hf_search_wandb.core.models.dense import SentenceTransformerEncoder
    from tests.helpers.tiny_models import make_tiny_sentence_transformer

    st = make_tiny_sentence_transformer(tmp_path)
    st.max_seq_length = 16
    long_text = " ".join(["cancer cells grow"] * 60)
    short = SentenceTransformerEncoder(st).tokenize([long_text], "document")
    full = SentenceTransformerEncoder(st, max_length=64).tokenize([long_text], "document")
    assert short.lengths.tolist() == [16]
    assert full.lengths.tolist() == [64]
    assert st.max_seq_length == 16
    capped = SentenceTransformerEncoder(st, max_length=10_000).tokenize([long_text], "document")
    assert capped.lengths.tolist() == [128]  # never past the tiny BERT's 128 position embeddings

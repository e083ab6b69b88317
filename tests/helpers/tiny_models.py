"""Tiny random BERT models built from a config and a small vocabulary: fast, offline, deterministic."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from hf_search_wandb.core import compat

WORDS = ["the", "a", "of", "and", "in", "to", "is", "for", "with", "on", "by", "cell", "cells", "gene", "genes", "protein", "cancer", "tumor", "risk", "dose", "drug", "patients", "mice", "brain", "blood", "heart", "virus", "immune", "response", "increase", "decrease", "reduces", "causes", "treatment", "therapy", "study", "trial", "effect", "expression", "levels", "high", "low", "human", "disease", "infection", "vaccine", "insulin", "diabetes", "obesity", "mutation", "dna", "rna", "receptor", "signal", "pathway", "growth", "death", "stem", "neurons", "memory", "sleep"]


def _vocab() -> list[str]:
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *[f"w{i}" for i in range(60)]]


def make_tiny_bert(directory: str | Path, *, seed: int = 0, hidden_size: int = 32) -> Path:
    """Save a random 2-layer BERT and its WordPiece tokenizer to `directory` and return it."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(_vocab()) + "\n")
    # positional: the vocabulary file is `vocab=` in transformers 5 (which ignores `vocab_file=`: the tokenizer
    # would hold 5 tokens and map every word to [UNK]) and `vocab_file=` in transformers 4.
    tokenizer = BertTokenizerFast(str(vocab_file), do_lower_case=True)
    tokenizer.model_max_length = 128
    config = BertConfig(
        vocab_size=len(_vocab()),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_tiny_sentence_transformer(directory: str | Path, *, seed: int = 0, pooling: str = "mean"):
    """A SentenceTransformer (tiny BERT + pooling) saved in `directory`."""
    from sentence_transformers import SentenceTransformer

    modules = compat.st_modules()
    path = make_tiny_bert(Path(directory) / "bert", seed=seed)
    word = modules.Transformer(str(path), max_seq_length=64)
    pool = modules.Pooling(compat.embedding_dimension(word), pooling_mode=pooling)
    return SentenceTransformer(modules=[word, pool], device="cpu")


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def make_tiny_mlm(directory: str | Path, *, seed: int = 0, hidden_size: int = 32) -> Path:
    """Save a random 2-layer `BertForMaskedLM` (MLM head over the tiny vocabulary) and its tokenizer.

    SPLADE on it is sparse like a trained model (about 43 of 126 dims active per doc, 18 per query).
    """
    from transformers import BertForMaskedLM

    directory = make_tiny_bert(directory, seed=seed, hidden_size=hidden_size)
    config = BertForMaskedLM.config_class.from_pretrained(directory)
    torch.manual_seed(seed)
    model = BertForMaskedLM(config)
    with torch.no_grad():  # a negative output bias: ~1/3 of the vocabulary active per doc, ~1/7 per query
        model.cls.predictions.bias.fill_(-0.2)
    model.save_pretrained(directory)
    return directory


def make_tiny_sparse_encoder(
    directory: str | Path, *, seed: int = 0, pooling: str = "max", activation: str = "relu"
):
    """A SPLADE `SparseEncoder` (tiny random BERT MLM + `SpladePooling`), vocabulary-sized sparse outputs."""
    compat.require("SparseEncoder")
    from sentence_transformers.sparse_encoder import SparseEncoder

    path = make_tiny_mlm(Path(directory) / "mlm", seed=seed)
    word = compat.mlm_transformer(str(path), max_seq_length=64)
    pool = compat.sparse_modules().SpladePooling(pooling_strategy=pooling, activation_function=activation)
    return SparseEncoder(modules=[word, pool], device="cpu")


def make_tiny_cross_encoder(directory: str | Path, *, seed: int = 0, num_labels: int = 1):
    """A CrossEncoder (tiny BERT + a sequence-classification head with `num_labels`) on CPU.

    The head is re-initialised with unit variance so scores spread out (BERT's 0.02 makes them all ~0.5).
    """
    return cross_encoder_from_bert(make_tiny_bert(Path(directory) / "bert", seed=seed), seed=seed, num_labels=num_labels)


def cross_encoder_from_bert(path: str | Path, *, seed: int = 0, num_labels: int = 1):
    """A CrossEncoder on a saved tiny BERT (`make_tiny_bert`), its head drawn from `seed`."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(path), num_labels=num_labels, max_length=64, device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head = model.model.classifier
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator))
        head.bias.zero_()
    return model


def make_tiny_multi_vector(
    directory: str | Path,
    *,
    seed: int = 0,
    query_expansion: dict | None = None,
    skiplist_words: list[str] | None = None,
    normalize: bool = True,
    similarity: str = "maxsim",
    document_length: int | None = None,
):
    """A ColBERT-style `MultiVectorEncoder` on a tiny random BERT: `Transformer` -> `MultiVectorMask` (->
    a token `Normalize`), one 32-dim vector per scored token."""
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    path = make_tiny_bert(Path(directory) / "bert", seed=seed)
    word = Transformer(
        str(path), max_seq_length=64, query_expansion=query_expansion, document_length=document_length
    )
    modules = [word, MultiVectorMask(skiplist_words=skiplist_words)]
    if normalize:
        modules.append(Normalize(module_input_name="token_embeddings"))
    return MultiVectorEncoder(modules=modules, device="cpu", similarity_fn_name=similarity)

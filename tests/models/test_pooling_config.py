"""Pooling from the model: a plain transformers model is pooled as its sentence-transformers config, its own
config or its module say, an explicit pooling that disagrees is a warning, and the run config and the saved
model follow the same rule."""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

import pytest
import torch

from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from hf_search_wandb.core.models import pooling_config
from hf_search_wandb.core.models.dense import HFEncoder, pool
from hf_search_wandb.core.models.factory import as_encoder
from hf_search_wandb.core.models.pooling_config import POOLING_MODES, declared_pooling, model_pooling
from hf_search_wandb.core.models.save_load import ENCODER_FILE, load_model, save_model
from tests.helpers.tiny_models import WORDS, make_tiny_bert

METRICS = ["mrr@10", "ndcg@10", "recall@10", "hit@10", "precision@10"]
ST_KEYS = {"mrr@10": "mrr@10", "ndcg@10": "ndcg@10", "recall@10": "recall@10", "hit@10": "accuracy@10",
           "precision@10": "precision@10"}  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test hears every message: `say_once` remembers what it said in this process."""
    monkeypatch.setattr(pooling_config, "_SAID", set())


def save_sentence_transformer(directory: Path, pooling: str, *, normalize: bool) -> Path:
    """A tiny random BERT saved as a SentenceTransformer (Transformer at the root, Pooling, maybe Normalize)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    word = Transformer(str(make_tiny_bert(directory / "bert")), max_seq_length=64)
    modules = [word, Pooling(word.get_embedding_dimension(), pooling_mode=pooling)]
    SentenceTransformer(modules=[*modules, Normalize()] if normalize else modules, device="cpu").save(
        str(directory / "st")
    )
    return directory / "st"


@pytest.fixture(scope="module")
def cls_normalize_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_sentence_transformer(tmp_path_factory.mktemp("bge-like"), "cls", normalize=True)


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """40 distinct docs and 12 queries over the tiny vocabulary, 1-3 relevant docs each (no ties in scores)."""
    rng = random.Random(7)
    corpus: dict[str, str] = {}
    while len(corpus) < 40:
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        if text not in corpus.values():
            corpus[f"d{len(corpus)}"] = text
    queries = {f"q{i}": " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))) for i in range(12)}
    qrels = {q: {d: 1 for d in rng.sample(sorted(corpus), rng.randint(1, 3))} for q in queries}
    return queries, corpus, qrels


def evaluator(data, **kwargs) -> RetrievalEvaluator:
    queries, corpus, qrels = data
    return RetrievalEvaluator(
        queries, corpus, qrels, metrics=METRICS, depth=10, primary_metric="mrr@10", **kwargs
    )


def auto_model(path: Path | str):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(path)).eval()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_auto_model_of_a_cls_normalize_sentence_transformer_is_pooled_as_it(cls_normalize_dir, data, caplog):
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    except ImportError:  # pragma: no cover - sentence-transformers < 6
        from sentence_transformers.evaluation import InformationRetrievalEvaluator

    ours = evaluator(data)
    with caplog.at_level(logging.INFO):
        metrics = ours.evaluate(auto_model(cls_normalize_dir)).metrics
    assert (ours.pooling_used, ours.normalize_used) == ("cls", True)
    assert not warnings_of(caplog)
    assert any("evaluated with cls pooling" in r.getMessage() for r in caplog.records)

    queries, corpus, qrels = data
    st = SentenceTransformer(str(cls_normalize_dir), device="cpu")
    theirs = InformationRetrievalEvaluator(
        queries, corpus, {q: set(docs) for q, docs in qrels.items()}, mrr_at_k=[10], ndcg_at_k=[10],
        accuracy_at_k=[10], precision_recall_at_k=[10], map_at_k=[10], write_csv=False,
    )(st)  # fmt: skip
    for name in METRICS:
        assert metrics[name] == pytest.approx(theirs[f"cosine_{ST_KEYS[name]}"], abs=1e-6), name
    # and the embeddings themselves are the SentenceTransformer's
    texts = list(corpus.values())[:8]
    encoder = as_encoder(auto_model(cls_normalize_dir))
    assert isinstance(encoder, HFEncoder) and encoder.pooling_source.endswith("1_Pooling/config.json")
    torch.testing.assert_close(
        encoder.encode_texts(texts, "document"),
        st.encode(texts, convert_to_tensor=True),
        atol=1e-5,
        rtol=1e-4,
    )


def test_an_explicit_pooling_that_disagrees_warns_and_is_used(cls_normalize_dir, data, caplog):
    ours = evaluator(data, pooling="mean", normalize=False)
    model = auto_model(cls_normalize_dir)
    with caplog.at_level(logging.INFO):
        ours.evaluate(model)
        ours.evaluate(model)  # every evaluation adapts the model again: still one warning each
    assert (ours.pooling_used, ours.normalize_used) == ("mean", False)
    said = warnings_of(caplog)
    assert len(said) == 2, said
    assert "pooling='mean' was given but the model says 'cls'" in said[0] and "using 'mean'" in said[0]
    assert "1_Pooling/config.json" in said[0]
    assert "normalize=False was given but the model says normalize=True" in said[1]
    # agreeing explicit values are silent
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        evaluator(data, pooling="cls", normalize=True).evaluate(model)
    assert not warnings_of(caplog)


def test_a_bare_model_is_mean_pooled_without_a_warning(tmp_path, data, caplog):
    path = make_tiny_bert(tmp_path / "bare")
    ours = evaluator(data)
    with caplog.at_level(logging.INFO):
        ours.evaluate(auto_model(path))
    assert (ours.pooling_used, ours.normalize_used) == ("mean", False)
    assert not warnings_of(caplog)
    infos = [r.getMessage() for r in caplog.records if "no pooling found" in r.getMessage()]
    assert len(infos) == 1 and infos[0].startswith(str(path))


@pytest.mark.parametrize(
    ("attributes", "pooling", "normalize"),
    [
        ({"pooling_mode": "cls"}, "cls", False),
        ({"sentence_pooling_method": "last_token", "normalized": True}, "lasttoken", True),
        ({"pooler_type": "avg"}, "mean", False),
    ],
)
def test_a_hint_in_the_model_config_is_followed(tmp_path, attributes, pooling, normalize):
    from transformers import AutoConfig

    path = make_tiny_bert(tmp_path / "hinted")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, **attributes}))
    assert all(getattr(AutoConfig.from_pretrained(str(path)), k) == v for k, v in attributes.items())
    ours = evaluator(({"q": "cell"}, {"a": "cell growth", "b": "brain"}, {"q": {"a": 1}}))
    ours.evaluate(auto_model(path))
    assert (ours.pooling_used, ours.normalize_used) == (pooling, normalize)


def test_an_unknown_pooling_in_the_config_is_a_warning_and_mean(tmp_path, caplog):
    path = make_tiny_bert(tmp_path / "odd")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "pooler_type": "avg_first_last"}))
    with caplog.at_level(logging.WARNING):
        encoder = as_encoder(auto_model(path))
    assert isinstance(encoder, HFEncoder) and encoder.pooling == "mean"
    assert any("pooler_type='avg_first_last'" in m for m in warnings_of(caplog))


def test_legacy_pooling_flags_and_modules_a_plain_model_cannot_apply(tmp_path, caplog):
    path = save_sentence_transformer(tmp_path, "mean", normalize=False)
    (path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False,
         "pooling_mode_lasttoken": True}
    ))  # fmt: skip
    said = declared_pooling(auto_model(path))
    assert (said.pooling, said.normalize, said.problems) == ("lasttoken", False, ())
    modules = json.loads((path / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (path / "modules.json").write_text(json.dumps(modules))
    with caplog.at_level(logging.WARNING):
        encoder = as_encoder(auto_model(path))
    assert isinstance(encoder, HFEncoder) and encoder.pooling == "lasttoken"
    assert any("include Dense" in m and "SentenceTransformer(" in m for m in warnings_of(caplog))


def test_the_hub_cache_layout_is_read_without_network(cls_normalize_dir, tmp_path, monkeypatch):
    """`org/bge-tiny` is only in a local hub cache (`models--org--bge-tiny/snapshots/<commit>`), as a model
    downloaded earlier and loaded by its hub id with HF_HUB_OFFLINE=1."""
    import huggingface_hub.constants
    from transformers import AutoModel

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--org--bge-tiny"
    shutil.copytree(cls_normalize_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model = AutoModel.from_pretrained("org/bge-tiny", cache_dir=str(tmp_path / "hub"), local_files_only=True)
    assert model.config._name_or_path == "org/bge-tiny"
    said = declared_pooling(model)
    assert (said.pooling, said.normalize) == ("cls", True)
    assert str(repo / "snapshots" / commit) in str(said.pooling_source)


@pytest.mark.parametrize("mode", POOLING_MODES)
@pytest.mark.parametrize("side", ["right", "left"])
def test_pool_computes_every_sentence_transformers_mode(mode, side):
    from sentence_transformers.sentence_transformer.modules import Pooling

    torch.manual_seed(0)
    hidden = torch.randn(3, 6, 8)
    lengths = [6, 4, 1]
    mask = torch.zeros(3, 6, dtype=torch.int64)
    for row, n in enumerate(lengths):
        if side == "right":
            mask[row, :n] = 1
        else:
            mask[row, 6 - n :] = 1
    theirs = Pooling(8, pooling_mode=mode)({"token_embeddings": hidden, "attention_mask": mask})
    torch.testing.assert_close(pool(hidden, mask, mode), theirs["sentence_embedding"], atol=1e-6, rtol=1e-5)


def test_a_custom_module_s_own_pooling_is_the_model_s_word(tiny_bert_dir, caplog):
    class BiEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = auto_model(tiny_bert_dir)
            self.pooling, self.normalize = "max", True

    with caplog.at_level(logging.WARNING):
        quiet = as_encoder(BiEncoder())
        loud = as_encoder(BiEncoder(), pooling="cls")
    assert isinstance(quiet, HFEncoder) and (quiet.pooling, quiet.normalize) == ("max", True)
    assert isinstance(loud, HFEncoder) and (loud.pooling, loud.normalize) == ("cls", True)
    assert warnings_of(caplog) == [
        "BiEncoder: pooling='cls' was given but the model says 'max' (BiEncoder.pooling); using 'cls', the one given."
    ]


def test_a_toolkit_bi_encoder_module_is_pooled_as_it_trains(tiny_bert_dir, data, caplog):
    """A FlagEmbedding-style module: the AutoModel as `.model`, `sentence_pooling_method`, `normlized` (sic)."""

    class BiEncoderModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = auto_model(tiny_bert_dir)
            self.sentence_pooling_method, self.normlized, self.temperature = "cls", True, 0.02

    module = BiEncoderModel()
    ours = evaluator(data)
    with caplog.at_level(logging.WARNING):
        metrics = ours.evaluate(module).metrics
    assert (ours.pooling_used, ours.normalize_used) == ("cls", True)
    assert not warnings_of(caplog)
    by_hand = evaluator(data, pooling="cls", normalize=True).evaluate(module.model).metrics
    assert metrics == pytest.approx(by_hand, abs=1e-9)
    assert by_hand != pytest.approx(evaluator(data).evaluate(module.model).metrics, abs=1e-6)


def test_a_sentence_transformer_keeps_its_pooling_and_says_so(tmp_path, caplog):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(save_sentence_transformer(tmp_path, "cls", normalize=True)), device="cpu")
    ours = RetrievalEvaluator({"q": "cell"}, {"a": "cell growth", "b": "brain"}, {"q": {"a": 1}},
                              metrics=["mrr@2"], depth=2, primary_metric="mrr@2", pooling="max")  # fmt: skip
    with caplog.at_level(logging.WARNING):
        ours.evaluate(st)
    assert (ours.pooling_used, ours.normalize_used) == ("cls", True)
    assert any("pools with its own Pooling module ('cls')" in m for m in warnings_of(caplog))


def test_bad_pooling_options_are_refused():
    with pytest.raises(ValueError, match=r"pooling must be one of .* or None"):
        RetrievalEvaluator({"q": "cell"}, {"a": "cell"}, {"q": {"a": 1}}, pooling="avg")
    with pytest.raises(ValueError, match="normalize must be True, False or None"):
        RetrievalEvaluator({"q": "cell"}, {"a": "cell"}, {"q": {"a": 1}}, normalize="yes")  # type: ignore[arg-type]


def test_the_saved_model_keeps_the_pooling_it_was_evaluated_with(cls_normalize_dir, data, tmp_path):
    from transformers import AutoTokenizer

    model = auto_model(cls_normalize_dir)
    before = evaluator(data).evaluate(model).metrics
    save_model(model, tmp_path / "best", AutoTokenizer.from_pretrained(str(cls_normalize_dir)))
    assert json.loads((tmp_path / "best" / ENCODER_FILE).read_text()) == {
        "format": "pretrained", "pooling": "cls", "normalize": True,
    }  # fmt: skip
    assert not (tmp_path / "best" / "modules.json").exists()
    reloaded = load_model(tmp_path / "best")
    again = evaluator(data)
    assert again.evaluate(reloaded).metrics == pytest.approx(before, abs=1e-6)
    assert (again.pooling_used, again.normalize_used) == ("cls", True)
    # a bare model saves no pooling file (mean is what a reloaded model gets anyway), and a stale one goes
    save_model(auto_model(make_tiny_bert(tmp_path / "bare")), tmp_path / "best")
    assert not (tmp_path / "best" / ENCODER_FILE).exists()


def test_the_run_config_records_the_pooling_the_evaluator_applies(cls_normalize_dir, data, tiny_bert_dir):
    from transformers import TrainingArguments

    from hf_search_wandb.tracking.run_setup import collect_config

    args = TrainingArguments("out", report_to="none")
    model = auto_model(cls_normalize_dir)
    assert collect_config(args, model=model, evaluator=evaluator(data))["pooling_mode"] == "cls"
    assert (
        collect_config(args, model=model, evaluator=evaluator(data, pooling="max"))["pooling_mode"] == "max"
    )
    assert (
        collect_config(args, model=auto_model(tiny_bert_dir), evaluator=evaluator(data))["pooling_mode"]
        == "mean"
    )
    assert model_pooling(torch.nn.Linear(2, 2)) is None


def test_minilm_as_an_auto_model_is_mean_pooled_and_normalised(minilm_path: Path):
    from sentence_transformers import SentenceTransformer

    encoder = as_encoder(auto_model(minilm_path))
    assert isinstance(encoder, HFEncoder)
    assert (encoder.pooling, encoder.normalize) == ("mean", True)
    assert encoder.pooling_source.endswith("1_Pooling/config.json")
    assert encoder.normalize_source.endswith("modules.json")
    # by its Hub id, from the offline Hub cache the root conftest lays out
    by_id = as_encoder(auto_model("sentence-transformers/all-MiniLM-L6-v2"))
    assert isinstance(by_id, HFEncoder) and (by_id.pooling, by_id.normalize) == ("mean", True)
    assert "models--sentence-transformers--all-MiniLM-L6-v2" in by_id.pooling_source
    texts = ["cell growth in the brain", "insulin levels of patients with diabetes"]
    st = SentenceTransformer(str(minilm_path), device="cpu")
    torch.testing.assert_close(
        encoder.encode_texts(texts, "document"),
        st.encode(texts, convert_to_tensor=True),
        atol=1e-5,
        rtol=1e-4,
    )

"""The one precision rule (`core.evaluation.precision`): hardware detection, `auto`'s order of precedence, every
evaluator family on tiny models, and the precision recorded on the result and in the run config.

The suite runs with HF_SEARCH_WANDB_NATIVE_BF16=0 (conftest.py); these tests set the hardware's answer
themselves (the environment variable, or torch's checks monkeypatched), so they hold on any CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hf_search_wandb.core.evaluation import precision as rule
from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
from tests.helpers.tiny_models import (
    make_tiny_bert,
    make_tiny_cross_encoder,
    make_tiny_multi_vector,
    make_tiny_sentence_transformer,
    make_tiny_sparse_encoder,
)

CPU = torch.device("cpu")
WORDS = [
    "cell",
    "growth",
    "insulin",
    "dose",
    "brain",
    "tumour",
    "virus",
    "gene",
    "protein",
    "blood",
    "heart",
    "lung",
]


@pytest.fixture
def native(monkeypatch: pytest.MonkeyPatch):
    """`native(True)`: this CPU counts as computing bf16 natively; `native(False)`: as one that does not."""

    def set_native(value: bool) -> None:
        monkeypatch.setenv(rule.NATIVE_BF16_ENV, "1" if value else "0")

    return set_native


@pytest.fixture
def no_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    """No trainer's mixed precision in accelerate's state (another test may have left one)."""
    from accelerate.state import AcceleratorState

    monkeypatch.delitem(AcceleratorState._shared_state, "_mixed_precision", raising=False)


# ---------------------------------------------------------------- detection
@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"), [(True, False, True), (False, True, True), (False, False, False)]
)
def test_the_cpu_check_asks_torch_once(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, expected: bool
):
    calls: list[str] = []

    def check(name: str, answer: bool):
        return lambda: calls.append(name) or answer

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", check("avx512", avx512_bf16), raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", check("amx", amx), raising=False)
    rule.cpu_computes_bf16.cache_clear()
    try:
        assert rule.cpu_computes_bf16() is expected
        asked = len(calls)
        assert rule.cpu_computes_bf16() is expected and len(calls) == asked  # cached: asked once
    finally:
        rule.cpu_computes_bf16.cache_clear()


def test_without_torchs_checks_the_cpuinfo_flags_decide(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_tile amx_bf16\n")
    assert rule.cpu_flags(str(cpuinfo)) >= {"amx_bf16", "avx512f"}
    assert rule.cpu_flags(str(tmp_path / "missing")) == frozenset()
    for flags, expected in ((rule.cpu_flags(str(cpuinfo)), True), (frozenset({"avx512f", "sse2"}), False)):
        monkeypatch.setattr(rule, "cpu_flags", lambda flags=flags: flags)
        rule.cpu_computes_bf16.cache_clear()
        try:
            assert rule.cpu_computes_bf16() is expected
        finally:
            rule.cpu_computes_bf16.cache_clear()


def test_the_environment_variable_overrides_the_hardware(monkeypatch: pytest.MonkeyPatch, native):
    native(True)
    assert rule.native_bf16("cpu") and rule.auto_precision("cpu") == "bf16"
    native(False)
    assert not rule.native_bf16("cpu") and rule.auto_precision("cpu") == "fp32"
    monkeypatch.setenv(rule.NATIVE_BF16_ENV, "")  # empty: the hardware's own answer
    assert rule.native_bf16("cpu") is rule.cpu_computes_bf16()
    assert rule.native_bf16("meta") is False  # neither a CPU nor a GPU: never native


# ---------------------------------------------------------------- the rule's order
def test_auto_is_bf16_where_native_and_fp32_where_not(native, no_trainer):
    native(True)
    assert rule.evaluation_dtype("auto", torch.float32, CPU) == torch.bfloat16
    native(False)
    assert rule.evaluation_dtype("auto", torch.float32, CPU) is None


def test_a_family_that_missed_the_accuracy_guard_keeps_fp32(
    monkeypatch: pytest.MonkeyPatch, native, no_trainer
):
    native(True)
    monkeypatch.setitem(rule.AUTO_BF16, "sparse", False)
    assert rule.evaluation_dtype("auto", torch.float32, CPU, "sparse") is None
    assert rule.evaluation_dtype("auto", torch.float32, CPU, "dense") == torch.bfloat16
    assert rule.auto_precision("cpu", "sparse") == "fp32"
    assert (
        rule.evaluation_dtype("bf16", torch.float32, CPU, "sparse") == torch.bfloat16
    )  # explicit still wins


def test_an_enclosing_autocast_and_the_trainers_precision_win(
    monkeypatch: pytest.MonkeyPatch, native, no_trainer
):
    from accelerate.state import AcceleratorState

    native(False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert rule.evaluation_dtype("auto", torch.float32, CPU) == torch.bfloat16
    native(True)
    monkeypatch.setitem(AcceleratorState._shared_state, "_mixed_precision", "fp16")  # inside an fp16 trainer
    assert rule.evaluation_dtype("auto", torch.float32, CPU) == torch.float16
    monkeypatch.setitem(
        AcceleratorState._shared_state, "_mixed_precision", "no"
    )  # a trainer in fp32: the hardware
    assert rule.evaluation_dtype("auto", torch.float32, CPU) == torch.bfloat16


def test_half_weights_run_as_they_are_and_explicit_fp32_never_autocasts(native, no_trainer):
    native(True)
    assert rule.evaluation_dtype("auto", torch.float16, CPU) is None
    assert rule.resolved_precision("auto", torch.float16, CPU) == "fp16"
    assert rule.resolved_precision("auto", torch.bfloat16, CPU) == "bf16"
    assert rule.evaluation_dtype("fp32", torch.float32, CPU) is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert rule.evaluation_dtype("fp32", torch.float32, CPU) is None  # explicit wins over autocast too


@pytest.mark.parametrize("family", ["dense", "sparse", "reranking", "multi_vector"])
def test_fp32_inside_an_enclosing_autocast_runs_in_fp32(families, family: str, native, no_trainer, dtypes_by_pass):
    """Before: `precision="fp32"` said fp32 while a user's `torch.autocast(bf16)` around the call ran the model in
    bf16; now the enclosing autocast is switched off for the forward pass, and the metrics are fp32's exactly."""
    model, make = families[family]
    native(False)
    reference = make("fp32").evaluate(model)
    evaluator = make("fp32")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        seen = dtypes_by_pass(model, lambda: evaluator.evaluate(model))
    assert {dtype for dtypes in seen.values() for dtype in dtypes} == {torch.float32}
    assert evaluator.last_result.precision == "fp32" and evaluator.last_result.metrics == reference.metrics
    follower = make("auto")  # auto follows the caller's autocast for the forward passes, and says so
    with torch.autocast("cpu", dtype=torch.bfloat16):
        seen = dtypes_by_pass(model, lambda: follower.evaluate(model))
    assert torch.bfloat16 in seen.get("document", seen.get("pair", set())) and follower.last_result.precision == "bf16"


# ---------------------------------------------------------------- every family on tiny models
def _data() -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    rng = np.random.default_rng(0)
    corpus = {f"d{i}": " ".join(rng.choice(WORDS, 12)) for i in range(30)}
    queries = {f"q{i}": " ".join(rng.choice(WORDS, 3)) for i in range(8)}
    qrels = {q: {f"d{(3 * i) % 30}": 1, f"d{(3 * i + 7) % 30}": 2} for i, q in enumerate(queries)}
    return queries, corpus, qrels


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Any]]:
    """family -> (model, evaluator factory taking `precision`)."""
    queries, corpus, qrels = _data()
    root = tmp_path_factory.mktemp("precision-models")

    def retrieval(precision: str) -> RetrievalEvaluator:
        return RetrievalEvaluator(
            queries, corpus, qrels, metrics=["ndcg@10", "mrr@10"], depth=10, precision=precision
        )

    def reranking(precision: str) -> RerankingEvaluator:
        return RerankingEvaluator(queries, corpus, qrels, depth=10, metrics=["ndcg@10", "mrr@10"], precision=precision,
                                  rerank_all=True)  # fmt: skip

    return {
        "dense": (make_tiny_sentence_transformer(root / "dense"), retrieval),
        "sparse": (make_tiny_sparse_encoder(root / "sparse"), retrieval),
        "reranking": (make_tiny_cross_encoder(root / "reranking"), reranking),
        "multi_vector": (make_tiny_multi_vector(root / "multi_vector"), retrieval),
        "multi_vector_rescoring": (make_tiny_multi_vector(root / "multi_vector_rescoring"), reranking),
    }


@pytest.fixture
def dtypes_by_pass(monkeypatch: pytest.MonkeyPatch):
    """`dtypes_by_pass(model, run)`: `{"query" / "document" / "pair": output dtypes of the model's Linear layers}`
    during `run()`, by the kind of the batch loop's pass (each backend's `run_batches` is wrapped)."""
    from hf_search_wandb.core.evaluation import batching, dense, multi_vector, reranking, sparse

    current: dict[str, str] = {}

    def recording(forward, batches, **kwargs):  # type: ignore[no-untyped-def]
        def tagged(batch):  # type: ignore[no-untyped-def]
            current["kind"] = kwargs["kind"]
            return forward(batch)

        return batching.run_batches(tagged, batches, **kwargs)

    for module in (dense, sparse, multi_vector, reranking):
        monkeypatch.setattr(module, "run_batches", recording)

    def measure(model: Any, run) -> dict[str, set[torch.dtype]]:  # type: ignore[no-untyped-def]
        seen: dict[str, set[torch.dtype]] = {}
        hooks = [m.register_forward_hook(lambda _m, _i, out: seen.setdefault(current["kind"], set()).add(out.dtype))
                 for m in model.modules() if isinstance(m, torch.nn.Linear)]  # fmt: skip
        try:
            run()
        finally:
            for hook in hooks:
                hook.remove()
        return seen

    return measure


@pytest.mark.parametrize("family", ["dense", "sparse", "reranking", "multi_vector", "multi_vector_rescoring"])
def test_every_family_follows_the_rule_and_records_it(
    families, family: str, native, no_trainer, dtypes_by_pass
):
    model, make = families[family]
    native(False)
    fp32 = make("fp32").evaluate(model)
    auto_fp32 = make("auto").evaluate(model)
    native(True)
    evaluator = make("auto")
    seen = dtypes_by_pass(model, lambda: evaluator.evaluate(model))
    auto_bf16 = evaluator.last_result
    explicit_fp32 = make("fp32").evaluate(model)

    assert (fp32.precision, auto_fp32.precision, auto_bf16.precision, explicit_fp32.precision) == (
        "fp32", "fp32", "bf16", "fp32",
    )  # fmt: skip
    # the forward pass really ran in bf16: the documents (a reranker's pairs) in bf16, the queries exact
    # (`precision.query_dtype`)
    if family == "reranking":
        assert seen == {"pair": {torch.bfloat16}}
    else:
        assert seen == {"document": {torch.bfloat16}, "query": {torch.float32}}
    # fp32 (explicit, or auto where bf16 is not native) is exactly the fp32 evaluation: same metrics, same scores
    for other in (auto_fp32, explicit_fp32):
        assert other.metrics == fp32.metrics
        np.testing.assert_array_equal(other.top_scores, fp32.top_scores)
    assert not np.array_equal(auto_bf16.top_scores, fp32.top_scores)  # bf16 rounding shows in the scores
    np.testing.assert_allclose(auto_bf16.top_scores, fp32.top_scores, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("family", ["dense", "reranking"])
def test_the_trainers_mixed_precision_wins_in_every_family(monkeypatch, families, family: str, native, dtypes_by_pass):
    from accelerate.state import AcceleratorState

    model, make = families[family]
    native(True)
    monkeypatch.setitem(AcceleratorState._shared_state, "_mixed_precision", "fp16")
    evaluator = make("auto")
    seen = dtypes_by_pass(model, lambda: evaluator.evaluate(model))
    assert seen.get("document", seen.get("pair")) == {torch.float16} and evaluator.last_result.precision == "fp16"
    assert seen.get("query", {torch.float32}) == {torch.float32}  # queries exact (precision.query_dtype)


# ---------------------------------------------------------------- the run config
def test_the_run_config_states_the_evaluation_precision(tmp_path: Path, native, no_trainer):
    from transformers import TrainingArguments

    from hf_search_wandb.tracking.run_setup import collect_config

    model = make_tiny_sentence_transformer(tmp_path / "model")
    queries, corpus, qrels = _data()
    args = TrainingArguments(str(tmp_path / "out"), use_cpu=True, report_to="none")
    native(True)
    auto = RetrievalEvaluator(queries, corpus, qrels, depth=10)
    fp32 = RetrievalEvaluator(queries, corpus, qrels, depth=10, precision="fp32")
    assert collect_config(args, model=model, evaluator=auto)["eval_precision"] == "bf16"
    assert collect_config(args, model=model, evaluator=fp32)["eval_precision"] == "fp32"
    native(False)
    assert collect_config(args, model=model, evaluator=auto)["eval_precision"] == "fp32"
    assert (
        collect_config(args, model=model)["eval_precision"] is None
    )  # no evaluator of ours: nothing to state


@pytest.mark.parametrize("family", ["dense", "sparse", "reranking", "multi_vector", "multi_vector_rescoring"])
@pytest.mark.parametrize("is_native", [True, False])
def test_the_run_config_states_what_the_evaluation_runs_in_for_every_family(
    tmp_path: Path, families, family: str, is_native: bool, native, no_trainer
):
    """`eval_precision` in the config is what the evaluator then runs in, whatever the family's `AUTO_BF16`
    (before: a multi-vector run said bf16 while its evaluations ran in fp32)."""
    from transformers import TrainingArguments

    from hf_search_wandb.tracking.run_setup import collect_config

    model, make = families[family]
    native(is_native)
    evaluator = make("auto")
    args = TrainingArguments(str(tmp_path / "out"), use_cpu=True, report_to="none")
    stated = collect_config(args, model=model, evaluator=evaluator)["eval_precision"]
    assert stated == evaluator.evaluate(model).precision


def test_a_training_run_logs_the_precision_its_evaluations_ran_in(
    tmp_path: Path, wandb_offline: Path, native
):
    """A real (tiny) training with the callback: the run config says bf16, and so do the evaluations."""
    from hf_search_wandb.trainer.callback import SearchWandbCallback
    from tests.helpers.training import make_evaluator, only_run, plain_trainer

    native(True)
    evaluator = make_evaluator()
    callback = SearchWandbCallback(evaluator, mode="offline", log_tables="off", model_artifact="off")
    trainer = plain_trainer(
        make_tiny_bert(tmp_path / "bert"), tmp_path / "out", callback, max_steps=2, eval_steps=2
    )
    trainer.train()
    run = only_run(wandb_offline)
    assert run.config["eval_precision"] == "bf16" and run.config["amp_dtype"] == "fp32"
    assert evaluator.last_result is not None and evaluator.last_result.precision == "bf16"
    assert run.series("val/ndcg@10")

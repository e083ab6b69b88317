"""hf_search_wandb: train and watch retrieval models with HuggingFace Trainer and Weights & Biases.

`trainer.add_callback(SearchWandbCallback(evaluator))` logs IR metrics that equal trec_eval, retrieval
tables, score histograms, and the best model as an artifact; `RetrievalEvaluator` (bi-encoders, SPLADE) and
`RerankingEvaluator` (cross-encoders) are the fast evaluators behind it. Importing this package has no side
effects and does not import wandb.

The public API, in one screen (everything else lives in sub-namespaces):

| what | names |
|---|---|
| the callback | `SearchWandbCallback`, `SearchWandbConfig` |
| evaluators and what they keep | `RetrievalEvaluator`, `RerankingEvaluator`, `SearchEvaluator` (their base), `RetrievalResult`, `SparseRetrievalResult`, `RerankingResult` |
| data | `load_beir`, `BeirData`, `mine_bm25_negatives`, `mine_dense_negatives`, `HardNegatives` |
| metrics of a run | `score_run`, `DEFAULT_METRICS` |
| artifacts | `load_model_from_artifact`, `fetch_artifact`, `ArtifactUnavailableError` |
| report, sweeps, `evaluate` | `build_report`, `run_local_sweep`, `run_online_sweep`, `load_sweep_config`, `load_evaluate_metric`, `evaluate_module_path` |

Sub-namespaces: `hf_search_wandb.core.metrics` (the table of measures, `parse_metric`, `score_ranked`),
`hf_search_wandb.core.models` (`as_encoder`, `HFEncoder`, `SparseRows`, `PairScorer`),
`hf_search_wandb.core.search` (`search`, `sparse_search`), `hf_search_wandb.core.data`,
`hf_search_wandb.core.evaluation`, `hf_search_wandb.tracking` (tables, histograms, artifacts),
`hf_search_wandb.sweeps`, `hf_search_wandb.report`.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from hf_search_wandb._version import __version__

if TYPE_CHECKING:
    from hf_search_wandb.core.data.beir import load_beir
    from hf_search_wandb.core.data.hard_negatives import (
        HardNegatives,
        mine_bm25_negatives,
        mine_dense_negatives,
    )
    from hf_search_wandb.core.data.records import BeirData
    from hf_search_wandb.core.evaluation.base import SearchEvaluator
    from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
    from hf_search_wandb.core.evaluation.results import (
        RerankingResult,
        RetrievalResult,
        SparseRetrievalResult,
    )
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
    from hf_search_wandb.core.metrics.scoring import DEFAULT_METRICS, score_run
    from hf_search_wandb.integrations.evaluate_module import evaluate_module_path, load_evaluate_metric
    from hf_search_wandb.report.build import build_report
    from hf_search_wandb.sweeps.config import load_sweep_config
    from hf_search_wandb.sweeps.local import run_local_sweep
    from hf_search_wandb.sweeps.online import run_online_sweep
    from hf_search_wandb.tracking.artifacts import (
        ArtifactUnavailableError,
        fetch_artifact,
        load_model_from_artifact,
    )
    from hf_search_wandb.trainer.callback import SearchWandbCallback
    from hf_search_wandb.trainer.options import SearchWandbConfig

# public name -> the module that defines it; imported on first use (PEP 562), so `import hf_search_wandb`
# loads no layer it does not need and a `core` module can be imported without `tracking` or `trainer`.
_EXPORTS: dict[str, str] = {
    "ArtifactUnavailableError": "hf_search_wandb.tracking.artifacts",
    "BeirData": "hf_search_wandb.core.data.records",
    "DEFAULT_METRICS": "hf_search_wandb.core.metrics.scoring",
    "HardNegatives": "hf_search_wandb.core.data.hard_negatives",
    "RerankingEvaluator": "hf_search_wandb.core.evaluation.reranking",
    "RerankingResult": "hf_search_wandb.core.evaluation.results",
    "RetrievalEvaluator": "hf_search_wandb.core.evaluation.retrieval",
    "RetrievalResult": "hf_search_wandb.core.evaluation.results",
    "SearchEvaluator": "hf_search_wandb.core.evaluation.base",
    "SearchWandbCallback": "hf_search_wandb.trainer.callback",
    "SearchWandbConfig": "hf_search_wandb.trainer.options",
    "SparseRetrievalResult": "hf_search_wandb.core.evaluation.results",
    "build_report": "hf_search_wandb.report.build",
    "evaluate_module_path": "hf_search_wandb.integrations.evaluate_module",
    "fetch_artifact": "hf_search_wandb.tracking.artifacts",
    "load_beir": "hf_search_wandb.core.data.beir",
    "load_evaluate_metric": "hf_search_wandb.integrations.evaluate_module",
    "load_model_from_artifact": "hf_search_wandb.tracking.artifacts",
    "load_sweep_config": "hf_search_wandb.sweeps.config",
    "mine_bm25_negatives": "hf_search_wandb.core.data.hard_negatives",
    "mine_dense_negatives": "hf_search_wandb.core.data.hard_negatives",
    "run_local_sweep": "hf_search_wandb.sweeps.local",
    "run_online_sweep": "hf_search_wandb.sweeps.online",
    "score_run": "hf_search_wandb.core.metrics.scoring",
}

# names that were top-level before the API was cut to one screen -> the namespace that holds them now; the
# old spelling still works, with a DeprecationWarning naming the new import
_MOVED: dict[str, str] = {
    "MEASURES": "hf_search_wandb.core.metrics",
    "Measure": "hf_search_wandb.core.metrics",
    "MetricReport": "hf_search_wandb.core.metrics",
    "parse_metric": "hf_search_wandb.core.metrics",
    "parse_metrics": "hf_search_wandb.core.metrics",
    "score_ranked": "hf_search_wandb.core.metrics",
    "HFEncoder": "hf_search_wandb.core.models",
    "as_encoder": "hf_search_wandb.core.models",
    "SparseRows": "hf_search_wandb.core.models",
    "sparse_search": "hf_search_wandb.core.search",
    "error_analysis_table": "hf_search_wandb.tracking",
    "log_evaluation_media": "hf_search_wandb.tracking",
    "log_retrieval_examples": "hf_search_wandb.tracking",
    "retrieval_examples_table": "hf_search_wandb.tracking",
    "score_histograms": "hf_search_wandb.tracking",
    "log_model_artifact": "hf_search_wandb.tracking",
    "log_dataset_artifact": "hf_search_wandb.tracking",
}

__all__ = [
    "DEFAULT_METRICS",
    "ArtifactUnavailableError",
    "BeirData",
    "HardNegatives",
    "RerankingEvaluator",
    "RerankingResult",
    "RetrievalEvaluator",
    "RetrievalResult",
    "SearchEvaluator",
    "SearchWandbCallback",
    "SearchWandbConfig",
    "SparseRetrievalResult",
    "__version__",
    "build_report",
    "evaluate_module_path",
    "fetch_artifact",
    "load_beir",
    "load_evaluate_metric",
    "load_model_from_artifact",
    "load_sweep_config",
    "mine_bm25_negatives",
    "mine_dense_negatives",
    "run_local_sweep",
    "run_online_sweep",
    "score_run",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None and name in _MOVED:
        warnings.warn(
            f"hf_search_wandb.{name} moved to {_MOVED[name]}.{name}; import it from there "
            f"(`from {_MOVED[name]} import {name}`). The old name will be removed in a future release.",
            DeprecationWarning,
            stacklevel=2,
        )
        module = _MOVED[name]
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    if name in _EXPORTS:
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

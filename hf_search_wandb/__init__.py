"""hf_search_wandb: train and watch retrieval models with HuggingFace Trainer and Weights & Biases.

`trainer.add_callback(SearchWandbCallback(evaluator))` logs IR metrics that equal trec_eval, retrieval
tables, score histograms, and the best model as an artifact; `RetrievalEvaluator` is the fast evaluator
behind it. Importing this package has no side effects and does not import wandb.
"""

from __future__ import annotations

import importlib
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
    from hf_search_wandb.core.evaluation.reranking import RerankingEvaluator
    from hf_search_wandb.core.evaluation.results import (
        RerankingResult,
        RetrievalResult,
        SparseRetrievalResult,
    )
    from hf_search_wandb.core.evaluation.retrieval import RetrievalEvaluator
    from hf_search_wandb.core.metrics.measures import MEASURES, Measure, parse_metric, parse_metrics
    from hf_search_wandb.core.metrics.scoring import DEFAULT_METRICS, MetricReport, score_ranked, score_run
    from hf_search_wandb.core.models.dense import HFEncoder
    from hf_search_wandb.core.models.factory import as_encoder
    from hf_search_wandb.core.models.sparse import SparseRows
    from hf_search_wandb.core.search.sparse import sparse_search
    from hf_search_wandb.hf_evaluate import evaluate_module_path, load_evaluate_metric
    from hf_search_wandb.report.build import build_report
    from hf_search_wandb.tracking.artifacts import (
        ArtifactUnavailableError,
        fetch_artifact,
        load_model_from_artifact,
        log_dataset_artifact,
        log_model_artifact,
    )
    from hf_search_wandb.tracking.tables import (
        error_analysis_table,
        log_evaluation_media,
        log_retrieval_examples,
        retrieval_examples_table,
        score_histograms,
    )
    from hf_search_wandb.trainer.callback import SearchWandbCallback
    from hf_search_wandb.trainer.options import SearchWandbConfig

# public name -> the module that defines it; imported on first use (PEP 562), so `import hf_search_wandb`
# loads no layer it does not need and a `core` module can be imported without `tracking` or `trainer`.
_EXPORTS: dict[str, str] = {
    "ArtifactUnavailableError": "hf_search_wandb.tracking.artifacts",
    "BeirData": "hf_search_wandb.core.data.records",
    "DEFAULT_METRICS": "hf_search_wandb.core.metrics.scoring",
    "HFEncoder": "hf_search_wandb.core.models.dense",
    "HardNegatives": "hf_search_wandb.core.data.hard_negatives",
    "MEASURES": "hf_search_wandb.core.metrics.measures",
    "Measure": "hf_search_wandb.core.metrics.measures",
    "MetricReport": "hf_search_wandb.core.metrics.scoring",
    "RerankingEvaluator": "hf_search_wandb.core.evaluation.reranking",
    "RerankingResult": "hf_search_wandb.core.evaluation.results",
    "RetrievalEvaluator": "hf_search_wandb.core.evaluation.retrieval",
    "RetrievalResult": "hf_search_wandb.core.evaluation.results",
    "SearchWandbCallback": "hf_search_wandb.trainer.callback",
    "SearchWandbConfig": "hf_search_wandb.trainer.options",
    "SparseRetrievalResult": "hf_search_wandb.core.evaluation.results",
    "SparseRows": "hf_search_wandb.core.models.sparse",
    "as_encoder": "hf_search_wandb.core.models.factory",
    "build_report": "hf_search_wandb.report.build",
    "error_analysis_table": "hf_search_wandb.tracking.tables",
    "evaluate_module_path": "hf_search_wandb.hf_evaluate",
    "fetch_artifact": "hf_search_wandb.tracking.artifacts",
    "load_beir": "hf_search_wandb.core.data.beir",
    "load_evaluate_metric": "hf_search_wandb.hf_evaluate",
    "load_model_from_artifact": "hf_search_wandb.tracking.artifacts",
    "log_dataset_artifact": "hf_search_wandb.tracking.artifacts",
    "log_evaluation_media": "hf_search_wandb.tracking.tables",
    "log_model_artifact": "hf_search_wandb.tracking.artifacts",
    "log_retrieval_examples": "hf_search_wandb.tracking.tables",
    "mine_bm25_negatives": "hf_search_wandb.core.data.hard_negatives",
    "mine_dense_negatives": "hf_search_wandb.core.data.hard_negatives",
    "parse_metric": "hf_search_wandb.core.metrics.measures",
    "parse_metrics": "hf_search_wandb.core.metrics.measures",
    "retrieval_examples_table": "hf_search_wandb.tracking.tables",
    "score_histograms": "hf_search_wandb.tracking.tables",
    "score_ranked": "hf_search_wandb.core.metrics.scoring",
    "score_run": "hf_search_wandb.core.metrics.scoring",
    "sparse_search": "hf_search_wandb.core.search.sparse",
}

__all__ = [
    "DEFAULT_METRICS",
    "MEASURES",
    "ArtifactUnavailableError",
    "BeirData",
    "HFEncoder",
    "HardNegatives",
    "Measure",
    "MetricReport",
    "RerankingEvaluator",
    "RerankingResult",
    "RetrievalEvaluator",
    "RetrievalResult",
    "SearchWandbCallback",
    "SearchWandbConfig",
    "SparseRetrievalResult",
    "SparseRows",
    "__version__",
    "as_encoder",
    "build_report",
    "error_analysis_table",
    "evaluate_module_path",
    "fetch_artifact",
    "load_beir",
    "load_evaluate_metric",
    "load_model_from_artifact",
    "log_dataset_artifact",
    "log_evaluation_media",
    "log_model_artifact",
    "log_retrieval_examples",
    "mine_bm25_negatives",
    "mine_dense_negatives",
    "parse_metric",
    "parse_metrics",
    "retrieval_examples_table",
    "score_histograms",
    "score_ranked",
    "score_run",
    "sparse_search",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""hf_search_wandb: train and watch retrieval models with HuggingFace Trainer and Weights & Biases.

`trainer.add_callback(SearchWandbCallback(evaluator))` logs IR metrics that equal trec_eval, retrieval
tables, score histograms, and the best model as an artifact; `RetrievalEvaluator` is the fast evaluator
behind it. Importing this package has no side effects and does not import wandb.
"""

from hf_search_wandb._version import __version__
from hf_search_wandb.core.data import BeirData, load_beir
from hf_search_wandb.core.encoders import HFEncoder, as_encoder
from hf_search_wandb.core.evaluator import RetrievalEvaluator
from hf_search_wandb.core.hard_negatives import HardNegatives, mine_bm25_negatives, mine_dense_negatives
from hf_search_wandb.core.metrics import (
    DEFAULT_METRICS,
    MetricReport,
    parse_metric,
    parse_metrics,
    score_ranked,
    score_run,
)
from hf_search_wandb.core.results import RetrievalResult
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

__all__ = [
    "DEFAULT_METRICS",
    "ArtifactUnavailableError",
    "BeirData",
    "HFEncoder",
    "HardNegatives",
    "MetricReport",
    "RetrievalEvaluator",
    "RetrievalResult",
    "SearchWandbCallback",
    "SearchWandbConfig",
    "__version__",
    "as_encoder",
    "error_analysis_table",
    "fetch_artifact",
    "load_beir",
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
]

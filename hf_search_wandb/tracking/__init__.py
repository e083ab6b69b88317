"""The wandb layer: everything that writes to a wandb run, through the run's one owner (`tracking.run.TrackedRun`)
and the one key schema (`tracking.log_keys`). wandb itself is imported lazily (`tracking.wandb_api.require_wandb`).
Imports `core`, never `trainer`.

Public here: the retrieval tables and histograms built from a kept result, and the model and dataset
artifacts. Nothing is imported until first use.
"""

from __future__ import annotations

from hf_search_wandb.core.exports import lazy_exports

# public name -> the module that defines it; imported on first use
_EXPORTS = {
    "error_analysis_table": "hf_search_wandb.tracking.tables",
    "log_evaluation_media": "hf_search_wandb.tracking.tables",
    "log_retrieval_examples": "hf_search_wandb.tracking.tables",
    "retrieval_examples_table": "hf_search_wandb.tracking.tables",
    "score_histograms": "hf_search_wandb.tracking.tables",
    "ArtifactUnavailableError": "hf_search_wandb.tracking.artifacts",
    "fetch_artifact": "hf_search_wandb.tracking.artifacts",
    "load_model_from_artifact": "hf_search_wandb.tracking.artifacts",
    "log_dataset_artifact": "hf_search_wandb.tracking.artifacts",
    "log_model_artifact": "hf_search_wandb.tracking.artifacts",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

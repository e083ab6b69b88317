"""Metrics: the table of measures, the ranked hits they read, trec_eval-exact scoring of runs and rankings."""

from __future__ import annotations

from hf_search_wandb.core.exports import lazy_exports

# public name -> the module that defines it; imported on first use
_EXPORTS = {
    "MEASURES": "hf_search_wandb.core.metrics.measures",
    "Measure": "hf_search_wandb.core.metrics.measures",
    "Metric": "hf_search_wandb.core.metrics.measures",
    "SPARSITY_METRICS": "hf_search_wandb.core.metrics.measures",
    "parse_metric": "hf_search_wandb.core.metrics.measures",
    "parse_metrics": "hf_search_wandb.core.metrics.measures",
    "DEFAULT_METRICS": "hf_search_wandb.core.metrics.scoring",
    "MetricReport": "hf_search_wandb.core.metrics.scoring",
    "score_ranked": "hf_search_wandb.core.metrics.scoring",
    "score_run": "hf_search_wandb.core.metrics.scoring",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

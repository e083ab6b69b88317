"""Where the `evaluate` metric module of this package lives, and a loader for it (imports `evaluate` lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["evaluate_module_path", "load_evaluate_metric"]


def evaluate_module_path() -> str:
    """The path of `retrieval_metrics.py` inside the installed package, for `evaluate.load(path)`.

    Example:
        >>> Path(evaluate_module_path()).name
        'retrieval_metrics.py'
    """
    return str(Path(__file__).resolve().with_name("retrieval_metrics.py"))


def load_evaluate_metric(**kwargs: Any) -> Any:
    """`evaluate.load(evaluate_module_path(), **kwargs)`: the IR metrics as an `evaluate` module, offline.

    Example:
        >>> metric = load_evaluate_metric()
        >>> metric.compute(predictions={"q1": {"d1": 0.9, "d2": 0.1}}, references={"q1": {"d2": 1}},
        ...                metrics=["mrr@10", "hit@1"])
        {'mrr@10': 0.5, 'hit@1': 0.0}
    """
    import evaluate

    return evaluate.load(evaluate_module_path(), **kwargs)

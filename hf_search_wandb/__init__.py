"""hf_search_wandb: train and watch retrieval models with HuggingFace Trainer and Weights & Biases."""

from hf_search_wandb._version import __version__

__all__ = ["__version__"]

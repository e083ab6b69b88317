"""The wandb layer: everything that writes to a wandb run. wandb itself is imported lazily
(`tracking.wandb_api.require_wandb`). Imports `core`, never `trainer`.
"""

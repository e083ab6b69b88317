"""The computing layer: metrics, search, encoders, the evaluator, data loading, distributed helpers.

Nothing here imports wandb or the `tracking` / `trainer` layers.
"""

"""The wandb layer: everything that writes to a wandb run, through the run's one owner (`tracking.run.TrackedRun`)
and the one key schema (`tracking.log_keys`). wandb itself is imported lazily (`tracking.wandb_api.require_wandb`).
Imports `core`, never `trainer`.
"""

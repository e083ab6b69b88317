"""The trainer layer: the `TrainerCallback` that orchestrates `core` and `tracking` from the Trainer's events."""

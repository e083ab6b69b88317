"""Models: one adapter per model family behind the encoder protocols, and save/load."""

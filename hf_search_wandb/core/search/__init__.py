"""Search: exact top-k over dense and sparse embeddings with one deterministic tie rule."""

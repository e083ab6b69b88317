"""Evaluation: the evaluation base, one backend per model family, and what an evaluation keeps."""

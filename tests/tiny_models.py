"""Kept for the doctest of `hf_search_wandb/core/models/encoders.py`, which imports `tests.tiny_models`; the
module is `tests/helpers/tiny_models.py` (point that doctest there and delete this file)."""

from tests.helpers.tiny_models import *  # noqa: F403
from tests.helpers.tiny_models import make_tiny_bert  # noqa: F401

"""A sampler that never draws a parameter set the sweep already holds, whichever agent draws and when.

Optuna's `RandomSampler(seed)` and `TPESampler(seed)` replay their sequence from the start each time they are
built: an agent restarted with the same `--seed` (or started again with a larger `--count`) drew the same
parameters as before, so the sweep trained the same sets twice. `DistinctSampler` fixes both causes:

- **seeded per trial, not per agent**: trial `n` is drawn by a fresh base sampler seeded with `(seed, n)`, so a
  fresh sweep with a seed is reproducible (trial `n` gets the same parameters whichever agent runs it), and a
  restart or an extension, whose trials have new numbers, draws new values;
- **a set already in the sweep is drawn again**: the whole set is drawn at the trial's first parameter and
  compared (by effective value, `search_space.params_key`) with every trial of the study, all states and all
  agents; up to `MAX_DRAWS` draws of the base sampler, then, for a space of categorical and integer parameters,
  one of the sets not drawn yet at random; for other spaces `MAX_DRAWS` uniform draws more. A space whose sets
  are all drawn is exhausted: agents stop, as with a finished grid.

Two agents drawing the same set at the same moment are caught after the draw (`local._Objective` closes the later
one unrun); a stale trial's retry (`failed_trial`) reuses its parameters on purpose and is not a draw.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from optuna.samplers import BaseSampler, RandomSampler

from hf_search_wandb.sweeps import search_space
from hf_search_wandb.sweeps.config import SweepConfig
from hf_search_wandb.sweeps.search_space import SearchSpaceUsedUp

logger = logging.getLogger(__name__)

#: Draws of the base sampler (then of a uniform one) before the sampler looks for a set it has not drawn.
MAX_DRAWS = 64
#: Largest space listed to find the sets not drawn yet.
ENUMERATION_LIMIT = 200_000


def trial_seed(seed: int, number: int, salt: int = 0) -> int:
    """The seed of trial `number`'s draws in a sweep seeded with `seed`.

    Example:
        >>> trial_seed(0, 3) == trial_seed(0, 3) != trial_seed(0, 4)
        True
    """
    return int(np.random.SeedSequence([seed % 2**32, number, salt]).generate_state(1)[0])


class DistinctSampler(BaseSampler):
    """Wraps `make(seed)` (a `RandomSampler` or `TPESampler` factory) so that each trial draws a parameter set the
    sweep does not hold yet (see the module docstring).

    Example:
        >>> import optuna
        >>> from hf_search_wandb.sweeps.config import load_sweep_config
        >>> cfg = load_sweep_config({"method": "random", "count": 6, "metric": {"name": "val/mrr@10",
        ...     "goal": "maximize"}, "parameters": {"a": {"values": [1, 2]}, "b": {"values": ["x", "y", "z"]}}})
        >>> study = optuna.create_study(sampler=DistinctSampler(lambda s: optuna.samplers.RandomSampler(s), cfg, 0))
        >>> for _ in range(6):
        ...     trial = study.ask()
        ...     a, b = trial.suggest_categorical("a", [1, 2]), trial.suggest_categorical("b", ["x", "y", "z"])
        ...     _ = study.tell(trial, 0.0)
        >>> len({tuple(t.params.items()) for t in study.trials}), study.sampler.is_exhausted(study)
        (6, True)
    """

    def __init__(self, make: Callable[[int], BaseSampler], cfg: SweepConfig, seed: int) -> None:
        self._make, self._cfg, self._seed = make, cfg, seed
        self._space = search_space.distributions(cfg)
        self._values = search_space.enumerable_values(cfg)
        self._size = search_space.space_size(cfg)
        self._base = make(seed)
        self._number: int | None = None
        self._drawn: dict[str, Any] | None = None
        self.used_up: str | None = None

    # -- Optuna's sampler interface -------------------------------------------------------------------------
    def before_trial(self, study: Any, trial: Any) -> None:
        self._number, self._drawn = trial.number, None
        self._base = self._make(trial_seed(self._seed, trial.number))
        self._base.before_trial(study, trial)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {}  # every parameter comes from `sample_independent`, drawn together as one set

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        if param_name not in self._space or self._space[param_name] != param_distribution:
            return self._base.sample_independent(study, trial, param_name, param_distribution)
        if self._drawn is None or self._number != trial.number:
            self._number, self._drawn = trial.number, self._draw(study, trial)
        return self._drawn[param_name]

    def after_trial(self, study: Any, trial: Any, state: Any, values: Sequence[float] | None) -> None:
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()

    def is_exhausted(self, study: Any) -> bool:
        """Whether every parameter set of a finite space has been drawn (or no new one could be found)."""
        if self.used_up is not None:
            return True
        return self._size is not None and len(self._taken(study, None)) >= self._size

    # -- drawing --------------------------------------------------------------------------------------------
    def _taken(self, study: Any, number: int | None) -> set[tuple[tuple[str, Any], ...]]:
        """The parameter sets of every trial of the study (a hyperband bracket's view sees only its bracket,
        so the storage is asked directly), other than trial `number`."""
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        names = set(self._space)
        return {
            search_space.params_key(self._cfg, t.params)
            for t in trials
            if t.number != number and names <= set(t.params)
        }

    def _draw(self, study: Any, trial: Any) -> dict[str, Any]:
        taken = self._taken(study, trial.number)
        for sampler in (self._base, RandomSampler(trial_seed(self._seed, trial.number, 1))):
            for _ in range(MAX_DRAWS):
                params = {
                    name: sampler.sample_independent(study, trial, name, dist)
                    for name, dist in self._space.items()
                }
                if search_space.params_key(self._cfg, params) not in taken:
                    return params
            if self._size is not None and self._size <= ENUMERATION_LIMIT:
                return self._not_drawn_yet(taken, trial.number)
        self.used_up = (
            f"no parameter set the sweep has not drawn was found in {2 * MAX_DRAWS} draws "
            f"({len(taken)} sets drawn): the search space looks used up; widen its ranges"
        )
        raise SearchSpaceUsedUp(self.used_up)

    def _not_drawn_yet(self, taken: set[Any], number: int) -> dict[str, Any]:
        assert self._values is not None
        names = list(self._values)
        left = [
            combo
            for combo in itertools.product(*self._values.values())
            if search_space.params_key(self._cfg, dict(zip(names, combo, strict=True))) not in taken
        ]
        if not left:
            self.used_up = f"all {self._size} parameter sets of the search space have been drawn"
            raise SearchSpaceUsedUp(self.used_up)
        return dict(zip(names, random.Random(trial_seed(self._seed, number, 2)).choice(left), strict=True))

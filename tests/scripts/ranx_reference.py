"""Write ranx's p-values on fixed per-query scores to tests/metrics/data/ranx_reference.json.

Run it in an environment that has ranx (it is not a dependency of this project; numba comes with it):

    python -m venv /tmp/ranx && /tmp/ranx/bin/pip install ranx==0.3.21
    /tmp/ranx/bin/python tests/scripts/ranx_reference.py [extra.json ...]

Each case is a pair of per-query arrays (control A, treatment B) and what ranx computes on them: its paired
Student t-test (`scipy.stats.ttest_rel`) and its Fisher randomization test at 100,000 permutations, seed 42
(ranx's permutations run in numba threads, so they cannot be reproduced here: tests/metrics/test_significance.py
compares within Monte-Carlo error). Extra cases come from JSON files `{"name": ..., "a": [...], "b": [...]}`
(e.g. two evaluations of a real run, `docs/significance.md`).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
from ranx.statistical_tests import fisher_randomization_test, paired_student_t_test

OUT = Path(__file__).resolve().parents[1] / "metrics" / "data" / "ranx_reference.json"
PERMUTATIONS = 100_000


def cases() -> list[dict[str, object]]:
    rng = np.random.default_rng(2026)
    out = []
    a = rng.beta(2, 2, 300)
    out.append({"name": "n300_small_gain", "a": a, "b": np.clip(a + rng.normal(0.02, 0.15, 300), 0, 1)})
    a = rng.beta(2, 3, 50)
    out.append({"name": "n50_large_gain", "a": a, "b": np.clip(a + rng.normal(0.1, 0.2, 50), 0, 1)})
    a = (rng.random(300) < 0.7).astype(float)
    b = a.copy()
    flip = rng.choice(300, 25, replace=False)
    b[flip] = 1 - b[flip]
    out.append({"name": "n300_binary_ties", "a": a, "b": b})
    a = 1 / rng.integers(1, 11, 40)
    b = a.copy()
    b[:12] = 1 / rng.integers(1, 11, 12)
    out.append({"name": "n40_reciprocal_ranks", "a": a, "b": b})
    for path in sys.argv[1:]:
        out.extend(json.loads(Path(path).read_text()))
    return out


def main() -> None:
    rows = []
    for case in cases():
        a, b = np.asarray(case["a"], dtype=np.float64), np.asarray(case["b"], dtype=np.float64)
        p_t, _ = paired_student_t_test(a, b)
        p_f, _ = fisher_randomization_test(a, b, PERMUTATIONS, 0.01, 42)
        rows.append(
            {
                "name": case["name"],
                "a": a.tolist(),
                "b": b.tolist(),
                "p_ttest": float(p_t),
                "p_fisher": float(p_f),
                "fisher_permutations": PERMUTATIONS,
            }
        )
        print(f"{case['name']}: n={a.size} t-test p={p_t:.6g} fisher p={p_f:.6g}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"ranx_version": version("ranx"), "cases": rows}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

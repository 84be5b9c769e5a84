"""95% intervals over training seeds and test trials, and the "beats" rule.

A row's score is the mean over datasets of the mean over seeds of the metric on all test trials. Each
bootstrap replicate resamples, per dataset, the test trials (the same trial indices for every row, so
differences between rows are paired over trials) and, per row, the seeds (with replacement). The 95%
interval is the 2.5-97.5 percentile of the replicates; a model beats a baseline only when the interval
of the difference excludes zero.

>>> import numpy as np
>>> from spikefm.eval.candidates import TrialScores
>>> rng = np.random.default_rng(0)
>>> y = rng.normal(size=(40, 10, 1)); ones = np.ones((40, 10), bool)
>>> good = [[TrialScores("decode R2", y + 0.1 * rng.normal(size=y.shape), y, ones) for _ in range(3)]]
>>> bad = [[TrialScores("decode R2", y + 1.0 * rng.normal(size=y.shape), y, ones)]]
>>> reps = bootstrap({"model": good, "baseline": bad}, n_boot=200, seed=0)
>>> compare(reps["model"], reps["baseline"])["beats"]
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikefm.eval.candidates import TrialScores

__all__ = ["point_score", "bootstrap", "interval", "compare"]

RowScores = list[list[TrialScores]]  # [dataset][seed]


def point_score(row: RowScores) -> float:
    """Mean over datasets of the mean over seeds of the metric on all test trials."""
    return float(np.mean([np.mean([scores.score() for scores in seeds]) for seeds in row]))


def bootstrap(rows: dict[str, RowScores], *, n_boot: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``{row: [n_boot] replicate scores}``, trials resampled jointly across rows, seeds per row."""
    if not rows:
        return {}
    n_trials = [seeds[0].n for seeds in next(iter(rows.values()))]
    for name, row in rows.items():
        sizes = [seeds[0].n for seeds in row]
        if sizes != n_trials or any(s.n != seeds[0].n for seeds in row for s in seeds):
            raise ValueError(f"row {name!r} has {sizes} test trials per dataset, others have {n_trials}")
    rng = np.random.default_rng(seed)
    out = {name: np.empty(n_boot) for name in rows}
    for b in range(n_boot):
        index = [rng.integers(0, k, k) for k in n_trials]
        for name, row in rows.items():
            per_data = []
            for d, seeds in enumerate(row):
                values = np.array([s.score(index[d]) for s in seeds])
                per_data.append(values[rng.integers(0, values.size, values.size)].mean())
            out[name][b] = np.mean(per_data)
    return out


def interval(replicates: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap replicates."""
    lo, hi = np.nanpercentile(replicates, [2.5, 97.5])
    return float(lo), float(hi)


def compare(model: np.ndarray, baseline: np.ndarray) -> dict[str, Any]:
    """Difference model - baseline: its mean over replicates, 95% interval, and whether it excludes zero above."""
    diff = model - baseline
    lo, hi = interval(diff)
    return {"difference": float(np.nanmean(diff)), "interval": [lo, hi], "beats": bool(lo > 0)}

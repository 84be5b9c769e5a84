"""The encoding baseline: each unit's counts from the behaviour around each bin, a Poisson GLM.

NEDS's encoding mode predicts every unit's spikes from the behaviour with every spike hidden; this baseline gets
the same information: the behaviour at offsets up to ``half_width`` bins either side of each bin (zeros beyond the
trial), and nothing of the spikes. Knobs: ``half_width`` (bins; the widest choice spans the model's window) and the
GLM's ``alpha``, chosen on validation like every baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikefm.eval.baselines.count_glm import CountGLM
from spikefm.eval.baselines.tuning import Choice, Knob
from spikefm.eval.baselines.wiener import lagged_features
from spikefm.eval.metrics import ENC_BPS

__all__ = ["BehaviorGLM", "behavior_features"]

HALF_WIDTHS = (0, 1, 2, 4, 8, 16, 32, 64)
ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1)


def behavior_features(behavior: np.ndarray, half_width: int) -> np.ndarray:
    """Behaviour ``[K, T, D]`` at offsets ``-half_width .. +half_width`` bins: ``[K * T, D * (2 h + 1)]``."""
    return lagged_features(behavior, half_width + 1, leads=half_width)


class BehaviorGLM(CountGLM):
    """Poisson GLM per unit from the behaviour within ``half_width`` bins of each bin; pooled bits per spike."""

    name = "behaviour GLM"
    causal = False
    metric = ENC_BPS

    def __init__(self, *, half_widths: tuple[int, ...] = HALF_WIDTHS, alphas: tuple[float, ...] = ALPHAS,
                 window_bins: int | None = None) -> None:
        """``window_bins``: the compared model's window in bins; the half widths stop at the one that lets every
        bin read the whole window (``window_bins - 1``), which is then always a choice."""
        if min(half_widths) < 0:
            raise ValueError(f"half widths must be >= 0, got {half_widths}")
        widths = {int(h) for h in half_widths}
        if window_bins is not None:
            widths = {h for h in widths if h < window_bins} | {max(window_bins - 1, 0)}
        self.half_widths, self.alphas = tuple(sorted(widths)), tuple(alphas)
        self.glm = None
        self.params: dict[str, Any] = {}

    def search_space(self) -> dict[str, Knob]:
        return {"half_width": Choice(self.half_widths), "alpha": Choice(self.alphas)}

    def _features(self, data: Any) -> np.ndarray:
        if data.behavior is None:
            raise ValueError("the behaviour GLM needs behaviour in the data")
        return behavior_features(np.asarray(data.behavior, np.float64), int(self.params["half_width"]))

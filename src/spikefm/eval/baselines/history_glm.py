"""A Poisson GLM on the true past spikes and the behaviour: the baseline for Neuroformer's generation.

Neuroformer predicts the spikes of a chunk conditioned on the true spikes before it and on the trial's behaviour
(:mod:`spikefm.eval.generation`). A condition-PSTH sees neither, so it is not a fair comparison. This baseline is
given the same conditioning: each bin's counts of every neuron are predicted by one Poisson GLM (log link, L2
penalty) from ``log(1 + counts)`` of all neurons in the ``history`` bins before it (starting ``min_lag`` bins
back) and the behaviour at that bin. It is scored by bits per spike (NLB pooled) over all neurons. Trials are
kept apart: history before a trial's first bin is zero.

Shape legend: ``B`` trials, ``T`` bins, ``N`` neurons, ``D`` behaviour dims.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikefm.eval.baselines.count_glm import CountGLM
from spikefm.eval.baselines.tuning import Choice, Knob
from spikefm.eval.metrics import BITS_PER_SPIKE

__all__ = ["HistoryGLM", "history_features"]

#: History lengths (bins) and GLM penalties a search may pick.
HISTORY_BINS = (1, 2, 3, 5, 8)
HISTORY_ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1)


def history_features(
    counts: np.ndarray, behaviour: np.ndarray | None, *, history: int, min_lag: int = 1
) -> np.ndarray:
    """``[B * T, N * history + D]``: ``log1p`` counts of bins ``t - min_lag .. t - min_lag - history + 1``, then the
    behaviour at ``t`` (NaN behaviour becomes 0).

    Args:
        counts: ``[B, T, N]``.
        behaviour: ``[B, T, D]`` or None.
        history: bins of spike history (>= 1).
        min_lag: the most recent bin read is ``t - min_lag`` (>= 1: never the predicted bin).
    """
    if history < 1 or min_lag < 1:
        raise ValueError(f"history and min_lag must be >= 1, got history={history}, min_lag={min_lag}")
    x = np.log1p(np.asarray(counts, np.float64))
    b, t, n = x.shape
    feats = np.zeros((b, t, n * history))
    for h in range(history):
        lag = min_lag + h
        if lag < t:
            feats[:, lag:, h * n : (h + 1) * n] = x[:, : t - lag]
    parts = [feats.reshape(b * t, -1)]
    if behaviour is not None:
        parts.append(np.nan_to_num(np.asarray(behaviour, np.float64)).reshape(b * t, -1))
    return np.concatenate(parts, axis=1)


class HistoryGLM(CountGLM):
    """Poisson GLM on the true spike history and behaviour, as a tunable baseline: ``bits/spike``, all neurons.

    Knobs: ``history`` (bins) and ``alpha`` (L2 penalty). Causal: bin ``t`` reads spikes before ``t`` and the
    behaviour at ``t`` (the behaviour Neuroformer's chunk conditions on).

    Args:
        min_lag: the first history bin is ``t - min_lag``. 1 conditions on every earlier bin (teacher forcing
            inside the chunk); Neuroformer's free-running chunk of ``c`` bins sees true spikes only up to its
            start, so ``min_lag = c`` is the stricter match.
        use_behavior: condition on the behaviour (True, as Neuroformer's generation does).
        history, alphas: the choices a search may make.
    """

    name = "history GLM"
    causal = True
    metric = BITS_PER_SPIKE

    def __init__(
        self,
        *,
        min_lag: int = 1,
        use_behavior: bool = True,
        history: tuple[int, ...] = HISTORY_BINS,
        alphas: tuple[float, ...] = HISTORY_ALPHAS,
    ) -> None:
        if min_lag < 1:
            raise ValueError(f"min_lag must be >= 1, got {min_lag}")
        self.min_lag, self.use_behavior = int(min_lag), bool(use_behavior)
        self.history, self.alphas = tuple(history), tuple(alphas)
        self.glm = None
        self.params: dict[str, Any] = {}

    def search_space(self) -> dict[str, Knob]:
        return {"history": Choice(self.history), "alpha": Choice(self.alphas)}

    def _features(self, data: Any) -> np.ndarray:
        if self.use_behavior and data.behavior is None:
            raise ValueError("HistoryGLM(use_behavior=True) needs behaviour in the data")
        behaviour = data.behavior if self.use_behavior else None
        return history_features(data.counts, behaviour, history=int(self.params["history"]), min_lag=self.min_lag)

"""A tunable baseline that predicts every unit's counts per bin with one Poisson GLM from features of the data.

Subclasses say what a bin's features are (:meth:`CountGLM._features`); fitting, predicting and the pooled bits per
spike score are shared (:class:`~spikefm.eval.baselines.HistoryGLM`, :class:`~spikefm.eval.baselines.BehaviorGLM`).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Mapping

import numpy as np

from spikefm.eval.baselines.poisson_glm import PoissonGLM
from spikefm.eval.baselines.tuning import Baseline
from spikefm.eval.metrics import bits_per_spike

__all__ = ["CountGLM"]


class CountGLM(Baseline):
    """Poisson GLM per unit on :meth:`_features`; its knobs include ``alpha`` (the L2 penalty)."""

    glm: PoissonGLM | None = None

    @abstractmethod
    def _features(self, data: Any) -> np.ndarray:
        """``[K * T, F]`` features of every bin of ``data`` (a :class:`~spikefm.eval.trials.TrialArrays`)."""

    def fit(self, train: Any, params: Mapping[str, Any]) -> "CountGLM":
        self.params = self._check_params(params)
        y = np.asarray(train.counts, np.float64)
        self.glm = PoissonGLM(alpha=float(self.params["alpha"])).fit(self._features(train), y.reshape(-1, y.shape[2]))
        return self

    def predict(self, data: Any) -> np.ndarray:
        """Expected counts per bin of every neuron, ``[K, T, N]``."""
        if self.glm is None:
            raise RuntimeError(f"{type(self).__name__}.predict called before fit")
        k, t, n = data.counts.shape
        return self.glm.predict(self._features(data)).reshape(k, t, n)

    def score(self, data: Any) -> float:
        return bits_per_spike(self.predict(data), data.counts)

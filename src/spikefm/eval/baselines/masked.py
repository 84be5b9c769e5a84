"""Baselines for MtM's four masked-prediction tasks, tuned like every other baseline.

MtM hides part of the held-in activity and predicts it (:mod:`spikefm.eval.mtm_tasks`). Each baseline here reads
exactly what the model reads for its task and predicts the same entries, with NLB's smoothing recipe (Gaussian
kernel -> log -> Poisson GLM) and its knobs (kernel width, GLM penalty) chosen on validation:

* :class:`MaskedSmoothing` ``"neuron_pred"``: each held-in unit from every other held-in unit; held-out units from
  all held-in units (the NLB co-smoothing setting).
* ``"intra_region"``: each unit from the other held-in units of its own region only.
* ``"inter_region"``: each region's units from the held-in units of every other region.
* :class:`ForwardGLM` (``forward_pred``): the last ``n_forward`` bins of every unit from the smoothed counts of the
  held-in units up to the last visible bin (causal kernel), one Poisson GLM per step ahead (MtM hides held-out units
  in every pass, so neither reads them).

Entries scored (``predict_entries``): rates and counts ``[K, T', N']``, the same entries the MtM task scores.
Shape legend: ``K`` trials, ``T`` bins, ``N`` units.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from spikefm.eval.baselines.poisson_glm import PoissonGLM
from spikefm.eval.baselines.smoothing import SMOOTHING_ALPHAS, SMOOTHING_KERNEL_SDS, SmoothingBaseline, smooth_spikes
from spikefm.eval.baselines.tuning import Baseline, Choice, Knob
from spikefm.eval.metrics import bits_per_spike

__all__ = ["MASKED_TASKS", "GLMTask", "MaskedSmoothing", "ForwardGLM", "forward_bins"]

MASKED_TASKS = ("neuron_pred", "intra_region", "inter_region")
FORWARD_SECONDS = 0.2  # forward prediction window (NLB's fp-bps window; MtM's default)


def forward_bins(bin_size: float) -> int:
    """Bins of forward prediction at ``bin_size``: 200 ms."""
    return max(1, int(round(FORWARD_SECONDS / bin_size)))


class GLMTask:
    """Smoothing + Poisson GLM fits from chosen input units to chosen target units (train counts -> test rates)."""

    def __init__(self, train: np.ndarray, heldout: np.ndarray, bin_size: float, *, kernel_sd: float = 0.05,
                 alpha: float = 0.01) -> None:
        self.train, self.heldout, self.bin_size = np.asarray(train), np.asarray(heldout, bool), bin_size
        self.kernel_sd, self.alpha = float(kernel_sd), float(alpha)

    def predict(self, test: np.ndarray, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Rates ``[K, T, n_targets]`` of ``targets`` (bool [N]) on ``test`` from ``inputs`` (bool [N])."""
        if not inputs.any():  # nothing to read: each target's mean train count
            mean = self.train[..., targets].mean(axis=(0, 1))
            return np.broadcast_to(mean, (*test.shape[:2], int(targets.sum()))).copy()
        model = SmoothingBaseline(bin_size=self.bin_size, kernel_sd=self.kernel_sd, alpha=self.alpha)
        model.fit(self.train[..., inputs], self.train[..., targets])
        return model.predict(test[..., inputs])[1]

    def one_by_one(self, test: np.ndarray, context: np.ndarray) -> np.ndarray:
        """Rates ``[K, T, N]``: each held-in unit of ``context`` from the others, its held-out units from all."""
        rates = np.zeros(test.shape)
        heldin = context & ~self.heldout
        for unit in np.flatnonzero(heldin):
            others = heldin.copy()
            others[unit] = False
            target = np.zeros_like(heldin)
            target[unit] = True
            rates[..., unit] = self.predict(test, others, target)[..., 0]
        held = context & self.heldout
        if held.any():
            rates[..., held] = self.predict(test, heldin, held)
        return rates

    def task_rates(self, task: str, test: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rates [K, T, N], scored units bool [N])`` of one of :data:`MASKED_TASKS`."""
        labelled = labels != ""
        regions = sorted(set(labels.tolist()) - {""})
        if task == "neuron_pred":
            everyone = np.ones_like(self.heldout)
            return self.one_by_one(test, everyone), everyone
        if task not in MASKED_TASKS:
            raise ValueError(f"unknown masked task {task!r}; choose from {MASKED_TASKS}")
        if len(regions) < (1 if task == "intra_region" else 2):
            raise ValueError(f"{task} needs {'a labelled region' if task == 'intra_region' else 'two regions'}, "
                             f"the recording has {regions}")
        rates = np.zeros(test.shape)
        for region in regions:
            members = labels == region
            if task == "intra_region":
                rates[..., members] = self.one_by_one(test, members)[..., members]
            else:
                rates[..., members] = self.predict(test, ~members & ~self.heldout, members)
        return rates, labelled

    def score(self, rates: np.ndarray, test: np.ndarray, units: np.ndarray) -> float:
        return bits_per_spike(rates[..., units], test[..., units].astype(float))


def _labels(data: Any) -> np.ndarray:
    n = data.counts.shape[-1]
    return np.full(n, "") if getattr(data, "regions", None) is None else np.asarray(data.regions).astype(str)


class MaskedSmoothing(Baseline):
    """NLB smoothing restricted to what one MtM task shows the model; knobs ``kernel_sd`` and ``alpha``.

    Args:
        task: one of :data:`MASKED_TASKS`.
        kernel_sds, alphas: the choices a search may make (those of :class:`~spikefm.eval.baselines.Smoothing`).
    """

    causal = False

    def __init__(self, task: str, *, kernel_sds: tuple[float, ...] = SMOOTHING_KERNEL_SDS,
                 alphas: tuple[float, ...] = SMOOTHING_ALPHAS) -> None:
        if task not in MASKED_TASKS:
            raise ValueError(f"unknown masked task {task!r}; choose from {MASKED_TASKS}")
        self.task, self.name, self.metric = task, f"smoothing {task}", f"{task} bps"
        self.kernel_sds, self.alphas = tuple(kernel_sds), tuple(alphas)
        self.glm: GLMTask | None = None

    def search_space(self) -> dict[str, Knob]:
        return {"kernel_sd": Choice(self.kernel_sds), "alpha": Choice(self.alphas)}

    def fit(self, train: Any, params: Mapping[str, Any]) -> "MaskedSmoothing":
        params = self._check_params(params)
        self.glm = GLMTask(train.counts, train.heldout, train.bin_size, kernel_sd=float(params["kernel_sd"]),
                           alpha=float(params["alpha"]))
        return self

    def predict_entries(self, data: Any) -> tuple[np.ndarray, np.ndarray]:
        """Rates and counts ``[K, T, N']`` of the task's scored units."""
        if self.glm is None:
            raise RuntimeError(f"{self.name}.predict called before fit")
        rates, units = self.glm.task_rates(self.task, data.counts, _labels(data))
        return rates[..., units], data.counts[..., units].astype(float)

    def predict(self, data: Any) -> np.ndarray:
        return self.predict_entries(data)[0]

    def score(self, data: Any) -> float:
        return bits_per_spike(*self.predict_entries(data))


#: GLM penalties the forward baseline may pick (one sample per trial and step ahead: heavier than smoothing's).
FORWARD_ALPHAS = (1e-2, 1e-1, 1.0, 10.0, 100.0)


class ForwardGLM(Baseline):
    """Forward prediction: the last ``n_forward`` bins of every unit, from the held-in units' causally smoothed
    counts at the last visible bin; one Poisson GLM per step ahead (its intercept is that step's mean rate). Knobs
    ``kernel_sd`` (s) and ``alpha``. Causal: it reads only the bins MtM's forward-prediction prompt shows."""

    name = "forward GLM"
    causal = True
    metric = "forward_pred bps"

    def __init__(self, *, kernel_sds: tuple[float, ...] = SMOOTHING_KERNEL_SDS,
                 alphas: tuple[float, ...] = FORWARD_ALPHAS) -> None:
        self.kernel_sds, self.alphas = tuple(kernel_sds), tuple(alphas)
        self.glms: list[PoissonGLM] = []
        self.params: dict[str, Any] = {}

    def search_space(self) -> dict[str, Knob]:
        return {"kernel_sd": Choice(self.kernel_sds), "alpha": Choice(self.alphas)}

    def _features(self, data: Any) -> tuple[np.ndarray, int]:
        counts = np.asarray(data.counts, np.float64)
        n_forward = forward_bins(data.bin_size)
        if counts.shape[1] <= n_forward:
            raise ValueError(f"forward prediction needs more than {n_forward} bins per trial, got {counts.shape[1]}")
        visible = counts[:, : counts.shape[1] - n_forward][..., ~np.asarray(data.heldout, bool)]
        smoothed = smooth_spikes(visible, data.bin_size, float(self.params["kernel_sd"]), causal=True)
        return np.log(smoothed[:, -1] + 1e-4), n_forward

    def fit(self, train: Any, params: Mapping[str, Any]) -> "ForwardGLM":
        self.params = self._check_params(params)
        x, n_forward = self._features(train)
        future = np.asarray(train.counts, np.float64)[:, -n_forward:]  # [K, n_forward, N]
        self.glms = [PoissonGLM(alpha=float(self.params["alpha"])).fit(x, future[:, h]) for h in range(n_forward)]
        return self

    def predict_entries(self, data: Any) -> tuple[np.ndarray, np.ndarray]:
        if not self.glms:
            raise RuntimeError("ForwardGLM.predict called before fit")
        x, n_forward = self._features(data)
        rates = np.stack([glm.predict(x) for glm in self.glms], axis=1)  # [K, n_forward, N]
        return rates, np.asarray(data.counts, np.float64)[:, -n_forward:]

    def predict(self, data: Any) -> np.ndarray:
        return self.predict_entries(data)[0]

    def score(self, data: Any) -> float:
        return bits_per_spike(*self.predict_entries(data))

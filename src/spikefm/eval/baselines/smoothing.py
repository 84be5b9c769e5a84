"""NLB's spike-smoothing baseline for co-smoothing (``examples/baselines/smoothing/run_smoothing.py``).

Gaussian-smooth the held-in counts of each trial, take ``log(smoothed + 1e-4)``, and fit one Poisson GLM per
held-out neuron (:class:`~spikefm.eval.baselines.poisson_glm.PoissonGLM`). Held-in rates are the smoothed counts
themselves; held-out rates are the GLM's. :class:`Smoothing` is the same baseline behind the tunable interface
(:mod:`spikefm.eval.baselines.tuning`): kernel width and GLM alpha are chosen on validation, as NLB chooses them.

Shape legend: ``B`` trials, ``T`` time bins, ``N_in`` / ``N_out`` held-in / held-out neurons. Times in seconds.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy import signal

from spikefm.eval.baselines.poisson_glm import PoissonGLM
from spikefm.eval.baselines.tuning import Baseline, Choice, Knob
from spikefm.eval.metrics import CO_BPS, co_bps

__all__ = ["NLB_SMOOTHING_DEFAULTS", "gaussian_window", "smooth_spikes", "SmoothingBaseline", "Smoothing"]

# NLB's per-dataset smoothing baseline settings (kernel sd in seconds, GLM alpha), from run_smoothing.py.
NLB_SMOOTHING_DEFAULTS: dict[str, tuple[float, float]] = {
    "mc_maze": (0.05, 0.01),
    "mc_rtt": (0.03, 0.1),
    "area2_bump": (0.03, 0.01),
    "dmfc_rsg": (0.06, 0.001),
    "mc_maze_large": (0.04, 0.1),
    "mc_maze_medium": (0.06, 0.1),
    "mc_maze_small": (0.06, 0.1),
}


# --------------------------------------------------------------------------- smoothing


def gaussian_window(kernel_sd: float, bin_size: float) -> np.ndarray:
    """NLB's smoothing kernel: ``scipy.signal.windows.gaussian(int(6 sd), sd)`` in bins, normalised to sum 1.

    As in ``nlb_tools.nwb_interface.NWBDataset.smooth_spk``: the window spans ``int(6 * sd / bin)`` bins (so it can
    be even, which with centred convolution places the peak half a bin early, as NLB's does). A kernel narrower than
    a sixth of a bin degenerates to ``[1.0]`` (no smoothing).

    Args:
        kernel_sd: Gaussian standard deviation, seconds.
        bin_size: bin width, seconds.

    Returns:
        ``[M]`` window summing to 1.
    """
    if not (kernel_sd > 0 and bin_size > 0):
        raise ValueError(f"kernel_sd and bin_size must be > 0 seconds, got kernel_sd={kernel_sd}, bin_size={bin_size}")
    sd_bins = kernel_sd / bin_size
    # the tiny epsilon keeps e.g. 6 * 0.05 / 0.005 = 59.99999... from truncating to 59 (NLB works in integer ms)
    length = max(int(6.0 * sd_bins + 1e-9), 1)
    window = signal.windows.gaussian(length, sd_bins, sym=True)
    return window / window.sum()


def smooth_spikes(counts: np.ndarray, bin_size: float, kernel_sd: float, *, causal: bool = False) -> np.ndarray:
    """Gaussian-smooths counts along time, each trial on its own, zero-padded at trial edges.

    Equal to NLB's ``np.convolve(x, window, 'same')`` per trial and neuron (see :func:`gaussian_window`); the
    output keeps units of counts per bin. It also stays length ``T`` when the window is longer than the trial.
    ``causal=True`` uses the kernel's past half instead (bins ``t - 3 sd .. t``, renormalised): no future bin.

    Args:
        counts: ``[B, T, N]`` (or ``[T, N]`` for one trial).
        bin_size: bin width, seconds.
        kernel_sd: Gaussian sd, seconds (NLB's smoothing baseline: 50 ms on MC_Maze).
        causal: half-Gaussian over the current and past bins only.

    Returns:
        Smoothed counts with the shape of ``counts`` (float64, a new array).
    """
    x = np.asarray(counts, dtype=np.float64)
    if x.ndim not in (2, 3):
        raise ValueError(f"counts must be [trials, time, neurons] or [time, neurons], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("counts to smooth contain NaN or inf; cut trials to their observed bins first")
    single = x.ndim == 2
    if single:
        x = x[None]
    window = gaussian_window(kernel_sd, bin_size)
    if causal:  # weights of lags 0, 1, 2, ...: the Gaussian's right half from its peak
        half = np.exp(-0.5 * (np.arange(max(int(3.0 * kernel_sd / bin_size + 1e-9), 0) + 1) * bin_size / kernel_sd) ** 2)
        window = half / half.sum()
    m, t = window.size, x.shape[1]
    # 'direct' keeps exact zeros exact (FFT convolution would leave -1e-17 where no spike is near)
    full = signal.convolve(x, window[None, :, None], mode="full", method="direct")  # [B, T + M - 1, N]
    start = 0 if causal else (m - 1) // 2
    out = full[:, start : start + t]  # [B, T, N]
    return out[0] if single else out


# --------------------------------------------------------------------------- NLB smoothing baseline


class SmoothingBaseline:
    """NLB's spike-smoothing baseline: smoothed held-in counts -> log -> Poisson GLM -> held-out rates.

    Args:
        bin_size: bin width, seconds (NLB: 0.005 or 0.02).
        kernel_sd: Gaussian sd, seconds (NLB MC_Maze: 0.05; see ``NLB_SMOOTHING_DEFAULTS``).
        alpha: GLM L2 penalty (NLB MC_Maze: 0.01).
        log_offset: added before the log so silent bins stay finite (NLB: 1e-4).
        max_iter, tol: L-BFGS settings of the GLM.
        causal: smooth with the kernel's past half only (:func:`smooth_spikes`), for causal models.

    >>> rng = np.random.default_rng(0)
    >>> heldin = rng.poisson(0.3, size=(8, 40, 5)); heldout = rng.poisson(0.2, size=(8, 40, 2))
    >>> model = SmoothingBaseline(bin_size=0.005).fit(heldin, heldout)
    >>> [r.shape for r in model.predict(heldin)]
    [(8, 40, 5), (8, 40, 2)]
    """

    def __init__(
        self,
        *,
        bin_size: float,
        kernel_sd: float = 0.05,
        alpha: float = 0.01,
        log_offset: float = 1e-4,
        max_iter: int = 1000,
        tol: float = 1e-7,
        causal: bool = False,
    ) -> None:
        gaussian_window(kernel_sd, bin_size)  # validates both
        if log_offset <= 0:
            raise ValueError(f"log_offset must be > 0, got {log_offset}")
        self.bin_size = float(bin_size)
        self.kernel_sd = float(kernel_sd)
        self.causal = bool(causal)
        self.log_offset = float(log_offset)
        self.glm = PoissonGLM(alpha=alpha, max_iter=max_iter, tol=tol)
        self._n_in: int | None = None

    def _features(self, heldin_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(smoothed held-in [B, T, N_in], GLM inputs [B*T, N_in])."""
        x = np.asarray(heldin_counts, dtype=np.float64)
        if x.ndim != 3:
            raise ValueError(f"held-in counts must be [trials, time, neurons], got shape {x.shape}")
        smoothed = smooth_spikes(x, self.bin_size, self.kernel_sd, causal=self.causal)
        return smoothed, np.log(smoothed.reshape(-1, x.shape[2]) + self.log_offset)

    def fit(self, heldin_counts: np.ndarray, heldout_counts: np.ndarray) -> SmoothingBaseline:
        """Fits the GLM on train trials.

        Args:
            heldin_counts: ``[B, T, N_in]``.
            heldout_counts: ``[B, T, N_out]``.

        Returns:
            self.
        """
        y = np.asarray(heldout_counts, dtype=np.float64)
        shape_in = np.shape(heldin_counts)
        if y.ndim != 3 or y.shape[:2] != tuple(shape_in[:2]):
            raise ValueError(f"held-out counts {y.shape} must be [B, T, N_out] matching held-in {shape_in}")
        _, features = self._features(heldin_counts)
        self.glm.fit(features, y.reshape(-1, y.shape[2]))
        self._n_in = int(shape_in[2])
        return self

    def predict(self, heldin_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rates for held-in and held-out neurons, expected counts per bin.

        Args:
            heldin_counts: ``[B, T, N_in]``.

        Returns:
            ``(rates_heldin [B, T, N_in], rates_heldout [B, T, N_out])``: the smoothed held-in counts and the GLM's
            held-out rates.
        """
        if self._n_in is None or self.glm.coef_ is None:
            raise RuntimeError("SmoothingBaseline.predict called before fit")
        shape = np.shape(heldin_counts)
        if len(shape) != 3 or shape[2] != self._n_in:
            raise ValueError(f"held-in counts must be [B, T, {self._n_in}], got {shape}")
        smoothed, features = self._features(heldin_counts)
        heldout = self.glm.predict(features).reshape(shape[0], shape[1], -1)
        return smoothed, heldout




# --------------------------------------------------------------------------- tunable form

#: Kernel sds (seconds) and GLM alphas a search may pick; NLB scans 30-60 ms and alphas 1e-3 .. 1 on val.
SMOOTHING_KERNEL_SDS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1)
SMOOTHING_ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


class Smoothing(Baseline):
    """NLB's smoothing baseline with kernel width and GLM alpha as knobs: ``co-bps`` on held-out neurons.

    Knobs: ``kernel_sd`` (seconds) and ``alpha`` (see :data:`SMOOTHING_KERNEL_SDS`, :data:`SMOOTHING_ALPHAS`).
    The centred kernel reads future bins (acausal, as NLB's); ``causal=True`` smooths with its past half.

    Args:
        causal: causal (half-Gaussian) smoothing.
        kernel_sds, alphas: the choices a search may make.
    """

    metric = CO_BPS

    def __init__(
        self,
        *,
        causal: bool = False,
        kernel_sds: tuple[float, ...] = SMOOTHING_KERNEL_SDS,
        alphas: tuple[float, ...] = SMOOTHING_ALPHAS,
    ) -> None:
        self.causal = bool(causal)
        self.name = "smoothing causal" if causal else "smoothing"
        self.kernel_sds, self.alphas = tuple(kernel_sds), tuple(alphas)
        self.model: SmoothingBaseline | None = None

    def search_space(self) -> dict[str, Knob]:
        return {"kernel_sd": Choice(self.kernel_sds), "alpha": Choice(self.alphas)}

    def fit(self, train: Any, params: Mapping[str, Any]) -> "Smoothing":
        params = self._check_params(params)
        if not train.heldout.any():
            raise ValueError("the smoothing baseline needs held-out neurons (units.heldout) to predict")
        self.model = SmoothingBaseline(
            bin_size=train.bin_size, kernel_sd=float(params["kernel_sd"]), alpha=float(params["alpha"]),
            causal=self.causal,
        ).fit(train.heldin_counts, train.heldout_counts)
        return self

    def predict(self, data: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(rates_heldin [B, T, N_in], rates_heldout [B, T, N_out])``, expected counts per bin."""
        if self.model is None:
            raise RuntimeError("Smoothing.predict called before fit")
        return self.model.predict(data.heldin_counts)

    def score(self, data: Any) -> float:
        return co_bps(self.predict(data)[1], data.heldout_counts)

"""Baselines every score table carries, built with numpy / scipy only.

- :class:`SmoothingBaseline`: NLB's spike-smoothing baseline (``examples/baselines/smoothing/run_smoothing.py``):
  Gaussian-smooth the held-in counts of each trial, take ``log(smoothed + 1e-4)``, and fit one Poisson GLM per
  held-out neuron (log link, L2 penalty on the weights, as sklearn's ``PoissonRegressor``). Held-in rates are the
  smoothed counts themselves; held-out rates are the GLM's, clipped to ``[1e-9, 1e20]`` as NLB does.
- :class:`RidgeDecoder`: a Wiener filter, i.e. ridge regression from a short causal history of (optionally
  smoothed) counts to behaviour, alpha chosen by k-fold CV.
- :func:`oracle_scores`: the ground-truth rates of synthetic data scored with the same metrics, the ceiling.

Shape legend: ``B`` trials, ``T`` time bins, ``N`` neurons (``N_in`` held-in, ``N_out`` held-out), ``D`` behaviour
dimensions, ``S`` samples, ``F`` features. Times (bin size, kernel sd) are in seconds; rates are expected counts
per bin.
"""

from __future__ import annotations

import numpy as np
from scipy import signal
from scipy.optimize import minimize

from spikefm.eval.metrics import (
    ZERO_RATE,
    co_bps,
    decoding_r2,
    fp_bps,
    ridge_cv,
    ridge_predict,
    velocity_r2,
)

__all__ = [
    "gaussian_window",
    "smooth_spikes",
    "PoissonGLM",
    "SmoothingBaseline",
    "lagged_features",
    "RidgeDecoder",
    "oracle_scores",
]

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
MAX_RATE = 1e20  # NLB clips GLM rates to [1e-9, 1e20]


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


def smooth_spikes(counts: np.ndarray, bin_size: float, kernel_sd: float) -> np.ndarray:
    """Gaussian-smooths counts along time, each trial on its own, zero-padded at trial edges.

    Equal to NLB's ``np.convolve(x, window, 'same')`` per trial and neuron (see :func:`gaussian_window`); the
    output keeps units of counts per bin. It also stays length ``T`` when the window is longer than the trial.

    Args:
        counts: ``[B, T, N]`` (or ``[T, N]`` for one trial).
        bin_size: bin width, seconds.
        kernel_sd: Gaussian sd, seconds (NLB's smoothing baseline: 50 ms on MC_Maze).

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
    m, t = window.size, x.shape[1]
    # 'direct' keeps exact zeros exact (FFT convolution would leave -1e-17 where no spike is near)
    full = signal.convolve(x, window[None, :, None], mode="full", method="direct")  # [B, T + M - 1, N]
    start = (m - 1) // 2
    out = full[:, start : start + t]  # [B, T, N]
    return out[0] if single else out


# --------------------------------------------------------------------------- Poisson GLM


class PoissonGLM:
    """Poisson regression with a log link, one output per column, fitted jointly by L-BFGS.

    Minimises, as sklearn's ``PoissonRegressor(alpha)`` does for each output,
    ``mean_s(exp(eta) - y eta) + alpha / 2 * ||w||^2`` with ``eta = x w + b`` and the intercept ``b`` unpenalised.
    The outputs are independent, so fitting them in one problem gives each its own optimum. Inputs are centred
    internally (the optimum is unchanged; L-BFGS converges faster). Where ``eta > 50`` the loss continues ``exp``
    linearly so a bad step overflows nothing; the optimum never lies there for count data.

    Args:
        alpha: L2 penalty on the weights (>= 0).
        max_iter: L-BFGS iteration cap.
        tol: L-BFGS projected-gradient tolerance.

    Attributes (after :meth:`fit`):
        coef_: ``[F, D]`` weights. intercept_: ``[D]``. n_iter_: iterations used. converged_: bool.
    """

    _ETA_MAX = 50.0

    def __init__(self, *, alpha: float = 0.0, max_iter: int = 1000, tol: float = 1e-7) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.alpha = float(alpha)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None
        self.n_iter_ = 0
        self.converged_ = False

    def _mean_and_grad(self, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """exp(eta) continued linearly above _ETA_MAX: (value, derivative)."""
        cap = np.minimum(eta, self._ETA_MAX)
        mu = np.exp(cap)
        over = eta > self._ETA_MAX
        value = np.where(over, mu * (1.0 + eta - cap), mu)
        return value, mu

    def fit(self, x: np.ndarray, y: np.ndarray) -> PoissonGLM:
        """Fits the GLM.

        Args:
            x: inputs, ``[S, F]``.
            y: non-negative counts, ``[S, D]`` (or ``[S]`` for one output).

        Returns:
            self.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
            raise ValueError(f"x must be [S, F] and y [S, D] with the same S, got {x.shape} and {y.shape}")
        if x.shape[0] == 0:
            raise ValueError("cannot fit a GLM on zero samples")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("GLM inputs and counts must be finite")
        if np.any(y < 0):
            raise ValueError("Poisson GLM counts must be non-negative")
        n, f = x.shape
        d = y.shape[1]
        x_mean = x.mean(axis=0)
        xc = x - x_mean
        y_mean = y.mean(axis=0)
        b0 = np.log(np.maximum(y_mean, ZERO_RATE))  # the optimum without inputs; a silent neuron starts near -inf

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w = theta[: f * d].reshape(f, d)
            b = theta[f * d :]
            eta = xc @ w + b  # [S, D]
            value, mu = self._mean_and_grad(eta)
            loss = (value.sum() - (y * eta).sum()) / n + 0.5 * self.alpha * np.sum(w * w)
            resid = (mu - y) / n  # [S, D]
            grad_w = xc.T @ resid + self.alpha * w
            grad_b = resid.sum(axis=0)
            return float(loss), np.concatenate([grad_w.ravel(), grad_b])

        theta0 = np.concatenate([np.zeros(f * d), b0])
        result = minimize(
            objective,
            theta0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 64 * np.finfo(float).eps},
        )
        w = result.x[: f * d].reshape(f, d)
        self.coef_ = w
        self.intercept_ = result.x[f * d :] - x_mean @ w
        self.n_iter_ = int(result.nit)
        self.converged_ = bool(result.success)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Expected counts ``exp(x w + b)``, ``[S, D]``, clipped to ``[1e-9, 1e20]`` as NLB clips them."""
        if self.coef_ is None or self.intercept_ is None:
            raise RuntimeError("PoissonGLM.predict called before fit")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"x must be [S, {self.coef_.shape[0]}], got {x.shape}")
        eta = np.clip(x @ self.coef_ + self.intercept_, np.log(ZERO_RATE), np.log(MAX_RATE))
        return np.exp(eta)


# --------------------------------------------------------------------------- NLB smoothing baseline


class SmoothingBaseline:
    """NLB's spike-smoothing baseline: smoothed held-in counts -> log -> Poisson GLM -> held-out rates.

    Args:
        bin_size: bin width, seconds (NLB: 0.005 or 0.02).
        kernel_sd: Gaussian sd, seconds (NLB MC_Maze: 0.05; see ``NLB_SMOOTHING_DEFAULTS``).
        alpha: GLM L2 penalty (NLB MC_Maze: 0.01).
        log_offset: added before the log so silent bins stay finite (NLB: 1e-4).
        max_iter, tol: L-BFGS settings of the GLM.

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
    ) -> None:
        gaussian_window(kernel_sd, bin_size)  # validates both
        if log_offset <= 0:
            raise ValueError(f"log_offset must be > 0, got {log_offset}")
        self.bin_size = float(bin_size)
        self.kernel_sd = float(kernel_sd)
        self.log_offset = float(log_offset)
        self.glm = PoissonGLM(alpha=alpha, max_iter=max_iter, tol=tol)
        self._n_in: int | None = None

    def _features(self, heldin_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(smoothed held-in [B, T, N_in], GLM inputs [B*T, N_in])."""
        x = np.asarray(heldin_counts, dtype=np.float64)
        if x.ndim != 3:
            raise ValueError(f"held-in counts must be [trials, time, neurons], got shape {x.shape}")
        smoothed = smooth_spikes(x, self.bin_size, self.kernel_sd)
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


# --------------------------------------------------------------------------- Wiener filter / ridge decoder


def lagged_features(counts: np.ndarray, lags: int) -> np.ndarray:
    """Causal history features: ``[x_t, x_{t-1}, ..., x_{t-lags+1}]`` per bin, zeros before a trial's start.

    Args:
        counts: ``[B, T, N]`` (trials kept apart) or ``[S, N]`` (one continuous stretch).
        lags: number of bins of history, >= 1 (1 = the current bin only).

    Returns:
        ``[B * T, N * lags]`` (or ``[S, N * lags]``), lag-major: columns ``l * N .. (l + 1) * N`` hold lag ``l``.
    """
    if lags < 1:
        raise ValueError(f"lags must be >= 1, got {lags}")
    x = np.asarray(counts, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"counts must be [trials, time, neurons] or [samples, neurons], got shape {np.shape(counts)}")
    b, t, n = x.shape
    out = np.zeros((b, t, n * lags))
    for lag in range(min(lags, t)):
        out[:, lag:, lag * n : (lag + 1) * n] = x[:, : t - lag]
    return out.reshape(b * t, n * lags)


class RidgeDecoder:
    """Wiener filter: ridge regression from a causal history of binned counts to behaviour.

    Counts are optionally Gaussian-smoothed per trial first (give both ``bin_size`` and ``kernel_sd``). The alpha
    is chosen by contiguous k-fold CV over the flattened samples (folds follow trial order), scored by
    variance-weighted R2, then the decoder is refitted on all training samples.

    Args:
        lags: bins of history (1 = instantaneous linear decoder).
        alphas: ridge penalty grid.
        n_folds: CV folds.
        bin_size, kernel_sd: optional smoothing, seconds.

    >>> rng = np.random.default_rng(0)
    >>> counts = rng.poisson(1.0, size=(10, 30, 4)).astype(float)
    >>> behaviour = counts @ np.array([[1.0], [0.0], [-1.0], [0.5]])
    >>> dec = RidgeDecoder(lags=1).fit(counts, behaviour)
    >>> round(dec.score(counts, behaviour), 3)
    1.0
    """

    def __init__(
        self,
        *,
        lags: int = 5,
        alphas: np.ndarray = np.logspace(-3, 3, 13),
        n_folds: int = 5,
        bin_size: float | None = None,
        kernel_sd: float | None = None,
    ) -> None:
        if lags < 1:
            raise ValueError(f"lags must be >= 1, got {lags}")
        if (bin_size is None) != (kernel_sd is None):
            raise ValueError("give both bin_size and kernel_sd to smooth, or neither")
        if kernel_sd is not None and bin_size is not None:
            gaussian_window(kernel_sd, bin_size)
        self.lags = int(lags)
        self.alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
        self.n_folds = int(n_folds)
        self.bin_size = bin_size
        self.kernel_sd = kernel_sd
        self.alpha_: float | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None
        self._n_neurons: int | None = None

    def _features(self, counts: np.ndarray) -> np.ndarray:
        x = np.asarray(counts, dtype=np.float64)
        if x.ndim not in (2, 3):
            raise ValueError(f"counts must be [B, T, N] or [S, N], got shape {x.shape}")
        if self.kernel_sd is not None and self.bin_size is not None:
            x = smooth_spikes(x, self.bin_size, self.kernel_sd)
        return lagged_features(x, self.lags)

    def fit(self, counts: np.ndarray, behaviour: np.ndarray) -> RidgeDecoder:
        """Fits the decoder; samples whose behaviour is NaN are left out.

        Args:
            counts: ``[B, T, N]`` or ``[S, N]``.
            behaviour: ``[B, T, D]`` or ``[S, D]`` (or ``[S]``), aligned with ``counts``.

        Returns:
            self.
        """
        features = self._features(counts)
        y = np.asarray(behaviour, dtype=np.float64)
        leading = np.shape(counts)[:-1]  # (B, T) or (S,)
        if y.shape[: len(leading)] != leading or y.ndim > len(leading) + 1:
            raise ValueError(f"behaviour {y.shape} does not align with counts {np.shape(counts)}")
        y = y.reshape(features.shape[0], -1)  # [S, D]
        keep = ~np.any(np.isnan(y), axis=1)
        self.alpha_, self.coef_, self.intercept_ = ridge_cv(
            features[keep], y[keep], alphas=self.alphas, n_folds=self.n_folds, multioutput="variance_weighted"
        )
        self._n_neurons = int(np.shape(counts)[-1])
        return self

    def predict(self, counts: np.ndarray) -> np.ndarray:
        """Decoded behaviour, ``[B, T, D]`` for ``[B, T, N]`` input or ``[S, D]`` for ``[S, N]``."""
        if self.coef_ is None or self.intercept_ is None or self._n_neurons is None:
            raise RuntimeError("RidgeDecoder.predict called before fit")
        shape = np.shape(counts)
        if shape[-1] != self._n_neurons:
            raise ValueError(f"counts have {shape[-1]} neurons, the decoder was fitted on {self._n_neurons}")
        pred = ridge_predict(self._features(counts), self.coef_, self.intercept_)
        return pred.reshape(tuple(shape[:-1]) + (pred.shape[1],))

    def score(self, counts: np.ndarray, behaviour: np.ndarray) -> float:
        """Variance-weighted R2 of :meth:`predict` against ``behaviour`` (NaN behaviour samples dropped)."""
        pred = self.predict(counts)
        return decoding_r2(pred.reshape(np.shape(behaviour)), behaviour)


# --------------------------------------------------------------------------- oracle


def oracle_scores(
    eval_true_rates_heldout: np.ndarray,
    eval_spikes_heldout: np.ndarray,
    *,
    eval_true_rates_forward: np.ndarray | None = None,
    eval_spikes_forward: np.ndarray | None = None,
    train_true_rates: np.ndarray | None = None,
    train_behaviour: np.ndarray | None = None,
    eval_true_rates: np.ndarray | None = None,
    eval_behaviour: np.ndarray | None = None,
) -> dict[str, float]:
    """Scores synthetic data's ground-truth rates with the NLB metrics: the ceiling a model can approach.

    Rates must be expected counts per bin (multiply Hz by the bin size). Every score whose inputs are given is
    computed; co-bps always is.

    Args:
        eval_true_rates_heldout: true rates of held-out neurons, ``[B, T, N_out]``.
        eval_spikes_heldout: their sampled counts.
        eval_true_rates_forward, eval_spikes_forward: forward window, held-in and held-out stacked -> ``fp-bps``.
        train_true_rates, train_behaviour, eval_true_rates, eval_behaviour: all neurons' true rates and behaviour
            on both splits -> ``vel R2``.

    Returns:
        ``{"co-bps": ..., "fp-bps": ..., "vel R2": ...}`` (keys as NLB names them; only those computed).
    """
    scores = {"co-bps": co_bps(eval_true_rates_heldout, eval_spikes_heldout)}
    if (eval_true_rates_forward is None) != (eval_spikes_forward is None):
        raise ValueError("give both eval_true_rates_forward and eval_spikes_forward for fp-bps, or neither")
    if eval_true_rates_forward is not None and eval_spikes_forward is not None:
        scores["fp-bps"] = fp_bps(eval_true_rates_forward, eval_spikes_forward)
    velocity_inputs = (train_true_rates, train_behaviour, eval_true_rates, eval_behaviour)
    given = [v is not None for v in velocity_inputs]
    if any(given) and not all(given):
        raise ValueError("vel R2 needs train_true_rates, train_behaviour, eval_true_rates and eval_behaviour together")
    if all(given):
        scores["vel R2"] = velocity_r2(train_true_rates, train_behaviour, eval_true_rates, eval_behaviour)
    return scores

"""The Kalman-filter decoder, the BCI standard (Wu et al. 2006, "Bayesian population decoding of motor cortical
activity using a Kalman filter"), fitted in closed form.

State ``x_t`` = the behaviour (e.g. hand velocity, ``D`` dims), observation ``z_t`` = the binned counts (``N``):

    x_{t+1} = A x_t + w,  w ~ N(0, W)        z_t = H x_t + q,  q ~ N(0, Q)

Both models are fitted by least squares on the training trials (means removed, so both carry an intercept):
``A`` from consecutive behaviour samples within a trial, ``H`` by ridge regression of counts on behaviour
(``alpha``), ``W`` and ``Q`` as the residual covariances. Decoding runs the standard filter forward in time, so the
decoder is causal; it starts each trial at the training mean with the training covariance. The gain sequence does
not depend on the data, so it is computed once per trial length and applied to every trial at once (the
information form avoids inverting an ``N x N`` matrix per step). ``lag`` pairs the counts of bin ``t - lag`` with
behaviour at ``t`` (neurons lead movement), still causal.

Shape legend: ``B`` trials, ``T`` bins, ``N`` neurons, ``D`` behaviour dims.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from spikefm.eval.baselines.tuning import Baseline, Choice, Knob, decoder_score
from spikefm.eval.metrics import DECODE_R2

__all__ = ["KalmanDecoder", "Kalman"]

_JITTER = 1e-6  # added to covariance diagonals (relative to their mean) so a silent neuron keeps Q invertible


def _shift_counts(counts: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of bin ``t - lag`` placed at ``t`` [B, T, N], and whether bin t has an observation [T]."""
    out = np.zeros_like(counts)
    t = counts.shape[1]
    if lag < t:
        out[:, lag:] = counts[:, : t - lag]
    return out, np.arange(t) >= lag


class KalmanDecoder:
    """Kalman filter from binned counts to behaviour (see the module docstring).

    Args:
        lag: bins by which the counts lead the behaviour they are paired with (>= 0).
        alpha: ridge penalty of the observation model ``H`` (>= 0).

    Attributes (after :meth:`fit`):
        A [D, D], W [D, D], H [N, D], Q [N, N], x_mean [D], z_mean [N], x_cov [D, D] (initial state covariance).

    >>> rng = np.random.default_rng(0)
    >>> x = np.cumsum(rng.normal(size=(20, 50, 1)), axis=1) * 0.1
    >>> z = x @ rng.normal(size=(1, 8)) + rng.normal(scale=0.1, size=(20, 50, 8))
    >>> dec = KalmanDecoder().fit(z, x)
    >>> dec.predict(z).shape
    (20, 50, 1)
    """

    def __init__(self, *, lag: int = 0, alpha: float = 0.0) -> None:
        if lag < 0 or alpha < 0:
            raise ValueError(f"lag and alpha must be >= 0, got lag={lag}, alpha={alpha}")
        self.lag, self.alpha = int(lag), float(alpha)
        self.A = self.W = self.H = self.Q = self.x_mean = self.z_mean = self.x_cov = None

    def fit(self, counts: np.ndarray, behaviour: np.ndarray) -> "KalmanDecoder":
        """Fits A, W, H, Q by least squares.

        Args:
            counts: ``[B, T, N]`` (trials or contiguous blocks; transitions never cross them).
            behaviour: ``[B, T, D]``; samples with NaN are left out (transitions touching them too).
        """
        z, x = np.asarray(counts, np.float64), np.asarray(behaviour, np.float64)
        if z.ndim != 3 or x.ndim != 3 or z.shape[:2] != x.shape[:2]:
            raise ValueError(f"counts must be [B, T, N] and behaviour [B, T, D] alike, got {z.shape} and {x.shape}")
        z, observed = _shift_counts(z, self.lag)
        ok = ~np.any(np.isnan(x), axis=2) & observed[None, :]  # [B, T]
        if ok.sum() <= x.shape[2] + 1:
            raise ValueError(f"too few observed samples ({int(ok.sum())}) to fit a Kalman filter")
        self.x_mean, self.z_mean = x[ok].mean(0), z[ok].mean(0)
        xc, zc = x - self.x_mean, z - self.z_mean
        # state model over consecutive observed pairs within a trial
        pair = ~np.any(np.isnan(x[:, :-1]), axis=2) & ~np.any(np.isnan(x[:, 1:]), axis=2)  # [B, T-1]
        x0, x1 = xc[:, :-1][pair], xc[:, 1:][pair]  # [P, D]
        d = x.shape[2]
        self.A = np.linalg.lstsq(x0, x1, rcond=None)[0].T  # x1 ~ x0 A^T
        resid = x1 - x0 @ self.A.T
        self.W = resid.T @ resid / max(len(resid) - 1, 1) + _JITTER * np.eye(d)
        # observation model
        xs, zs = xc[ok], zc[ok]  # [S, D], [S, N]
        self.H = np.linalg.solve(xs.T @ xs + self.alpha * np.eye(d), xs.T @ zs).T  # [N, D]
        resid = zs - xs @ self.H.T
        q = resid.T @ resid / max(len(resid) - 1, 1)
        self.Q = q + _JITTER * max(float(np.trace(q)) / q.shape[0], 1e-12) * np.eye(q.shape[0])
        self.x_cov = xs.T @ xs / max(len(xs) - 1, 1) + _JITTER * np.eye(d)
        return self

    def gains(self, n_bins: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per-step ``(A_t, K_t)`` of the filter's update ``x_t = A_t x_{t-1} + K_t (z_t - z_mean)`` (centred x)."""
        if self.A is None:
            raise RuntimeError("KalmanDecoder used before fit")
        d = self.A.shape[0]
        q_inv_h = np.linalg.solve(self.Q, self.H)  # [N, D] = Q^-1 H
        info = self.H.T @ q_inv_h  # [D, D] = H^T Q^-1 H
        _, observed = _shift_counts(np.zeros((1, n_bins, 1)), self.lag)
        out, p = [], self.x_cov
        for t in range(n_bins):
            transition = self.A if t > 0 else np.zeros((d, d))  # the first step starts from the prior mean
            p_prior = self.A @ p @ self.A.T + self.W if t > 0 else self.x_cov
            if observed[t]:
                p = np.linalg.inv(np.linalg.inv(p_prior) + info)
                gain = p @ q_inv_h.T  # [D, N]
            else:
                p, gain = p_prior, np.zeros((d, self.H.shape[0]))
            out.append(((np.eye(d) - gain @ self.H) @ transition, gain))
        return out

    def predict(self, counts: np.ndarray) -> np.ndarray:
        """Filtered behaviour ``[B, T, D]``: each bin's estimate uses counts up to that bin only."""
        z = np.asarray(counts, np.float64)
        if self.H is None or z.ndim != 3 or z.shape[2] != self.H.shape[0]:
            raise ValueError(f"counts must be [B, T, {None if self.H is None else self.H.shape[0]}] after fit, "
                             f"got {z.shape}")
        z, _ = _shift_counts(z, self.lag)
        zc = z - self.z_mean
        x = np.zeros((z.shape[0], self.A.shape[0]))
        out = np.empty((z.shape[0], z.shape[1], self.A.shape[0]))
        for t, (transition, gain) in enumerate(self.gains(z.shape[1])):
            x = x @ transition.T + zc[:, t] @ gain.T  # [B, D]
            out[:, t] = x
        return out + self.x_mean


#: Lags (bins) and observation-model ridge penalties a search may pick.
KALMAN_LAGS = (0, 1, 2, 3, 5)
KALMAN_ALPHAS = (0.0, 1.0, 10.0, 100.0)


class Kalman(Baseline):
    """The Kalman filter as a tunable, causal baseline: ``decode R2`` at the recorded samples.

    Knobs: ``lag`` and ``alpha`` of :class:`KalmanDecoder`.
    """

    name = "kalman"
    causal = True
    metric = DECODE_R2

    def __init__(self, *, lags: tuple[int, ...] = KALMAN_LAGS, alphas: tuple[float, ...] = KALMAN_ALPHAS) -> None:
        self.lags, self.alphas = tuple(lags), tuple(alphas)
        self.model: KalmanDecoder | None = None

    def search_space(self) -> dict[str, Knob]:
        return {"lag": Choice(self.lags), "alpha": Choice(self.alphas)}

    def fit(self, train: Any, params: Mapping[str, Any]) -> "Kalman":
        params = self._check_params(params)
        if train.behavior is None:
            raise ValueError("the Kalman filter needs behaviour in the training data")
        self.model = KalmanDecoder(lag=int(params["lag"]), alpha=float(params["alpha"]))
        self.model.fit(train.counts, train.behavior)
        return self

    def predict(self, data: Any) -> np.ndarray:
        """Decoded behaviour at bin centres, ``[K, T, D]``."""
        if self.model is None:
            raise RuntimeError("Kalman.predict called before fit")
        return self.model.predict(data.counts)

    def score(self, data: Any) -> float:
        return decoder_score(self.predict(data), data)

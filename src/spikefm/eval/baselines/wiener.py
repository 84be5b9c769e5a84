"""Wiener filters: ridge regression from lagged binned counts to behaviour.

- :class:`RidgeDecoder`: the plain estimator, lags and alpha given (alpha by k-fold CV over a grid).
- :class:`Wiener`: the tunable baseline (:mod:`spikefm.eval.baselines.tuning`) in two forms. ``causal=True``
  reads the current bin and ``lags - 1`` past bins (an online decoder, for causal models). ``causal=False`` also
  reads ``leads`` future bins, so it can see the same window as an acausal model it is compared with (POYO,
  SPINT, NDT1 read a whole window, future included); lags, leads and alpha are chosen on validation, and
  ``window_bins`` caps ``lags + leads`` at the model's window.

Shape legend: ``B`` trials, ``T`` bins, ``N`` neurons, ``D`` behaviour dims, ``S`` samples.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from typing import Any, Mapping

import numpy as np

from spikefm.eval.baselines.smoothing import gaussian_window, smooth_spikes
from spikefm.eval.baselines.tuning import Baseline, Choice, Knob, decoder_score
from spikefm.eval.metrics import DECODE_R2, decoding_r2, ridge_cv, ridge_predict

__all__ = ["lagged_features", "LaggedRidge", "RidgeDecoder", "Wiener"]

def lagged_features(counts: np.ndarray, lags: int, leads: int = 0) -> np.ndarray:
    """History (and optionally future) features: ``[x_t, x_{t-1}, ..., x_{t-lags+1}, x_{t+1}, ..., x_{t+leads}]``.

    Each trial is shifted on its own, with zeros before its start and after its end, so no feature crosses trials.

    Args:
        counts: ``[B, T, N]`` (trials kept apart) or ``[S, N]`` (one continuous stretch).
        lags: bins of history, >= 1 (1 = the current bin only).
        leads: future bins, >= 0 (0 = causal).

    Returns:
        ``[B * T, N * (lags + leads)]`` (or ``[S, ...]``): columns ``l * N .. (l + 1) * N`` hold lag ``l`` for
        ``l < lags``, then the leads ``1 .. leads`` in order.
    """
    if lags < 1 or leads < 0:
        raise ValueError(f"lags must be >= 1 and leads >= 0, got lags={lags}, leads={leads}")
    x = np.asarray(counts, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"counts must be [trials, time, neurons] or [samples, neurons], got shape {np.shape(counts)}")
    b, t, n = x.shape
    out = np.zeros((b, t, n * (lags + leads)))
    for lag in range(min(lags, t)):
        out[:, lag:, lag * n : (lag + 1) * n] = x[:, : t - lag]
    for lead in range(1, min(leads, t - 1) + 1):
        col = (lags + lead - 1) * n
        out[:, : t - lead, col : col + n] = x[:, lead:]
    return out.reshape(b * t, n * (lags + leads))


def _shifted(x: np.ndarray, shift: int) -> np.ndarray:
    """``x[:, t - shift]`` at ``t`` within each trial, zeros where that bin is outside the trial; ``[B, T, N]``."""
    out = np.zeros_like(x)
    t = x.shape[1]
    if 0 <= shift < t:
        out[:, shift:] = x[:, : t - shift]
    elif -t < shift < 0:
        out[:, :shift] = x[:, -shift:]
    return out


def lag_shifts(lags: int, leads: int) -> tuple[int, ...]:
    """The bin shift of each feature block of :func:`lagged_features` (``+l``: ``l`` bins back, ``-l``: ahead)."""
    return tuple(range(lags)) + tuple(-lead for lead in range(1, leads + 1))


class LaggedRidge:
    """Ridge regression on lagged counts for any (lags, leads, alpha) from one set of sufficient statistics.

    A search over lags and alphas used to rebuild the lagged design and re-solve ridge with an SVD per trial
    (171 units x 39 lag bins is a 10,000 x 6,700 design). Here the Gram matrix of every pair of shifted copies
    of the counts (an ``N x N`` block per pair of shifts) is computed once, on first use, and kept; a lag set's
    centred Gram is assembled from its blocks and eigendecomposed once (kept for the last ``keep`` lag sets),
    after which every alpha costs two matrix products. Samples whose behaviour is NaN are left out, as in the
    plain fit. The result equals :func:`~spikefm.eval.metrics.ridge_fit` on :func:`lagged_features`.

    Args:
        counts: ``[B, T, N]`` (trials kept apart) or ``[S, N]``.
        behaviour: aligned ``[B, T, D]`` or ``[S, D]``.
        keep: eigendecompositions kept (one per lag set).
    """

    def __init__(self, counts: np.ndarray, behaviour: np.ndarray, *, keep: int = 4) -> None:
        x = np.asarray(counts, np.float64)
        x = x[None] if x.ndim == 2 else x
        y = np.asarray(behaviour, np.float64).reshape(x.shape[0], x.shape[1], -1)
        valid = ~np.any(np.isnan(y), axis=-1, keepdims=True)  # [B, T, 1]
        self._x = x
        self._weight = valid.astype(np.float64)
        self._n = float(valid.sum())
        if self._n < 1:
            raise ValueError("LaggedRidge needs at least one sample with finite behaviour")
        y = np.where(valid, y, 0.0)
        self._y_mean = y.sum((0, 1)) / self._n
        self._y_centred = (y - self._y_mean) * self._weight
        self._blocks: dict[tuple[int, int], np.ndarray] = {}
        self._sums: dict[int, np.ndarray] = {}
        self._cross: dict[int, np.ndarray] = {}
        self._eig: OrderedDict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._keep = int(keep)

    def _flat(self, shift: int) -> np.ndarray:
        return _shifted(self._x, shift).reshape(-1, self._x.shape[2])

    def _block(self, a: int, b: int) -> np.ndarray:
        """Uncentred ``sum_t w_t x_{t-a} x_{t-b}^T`` [N, N] (memoised, symmetric in (a, b))."""
        if (b, a) in self._blocks:
            return self._blocks[b, a].T
        if (a, b) not in self._blocks:
            weight = self._weight.reshape(-1, 1)
            self._blocks[a, b] = (self._flat(a) * weight).T @ self._flat(b)
        return self._blocks[a, b]

    def _moments(self, shift: int) -> tuple[np.ndarray, np.ndarray]:
        """Weighted column sums [N] and centred cross-products with behaviour [N, D] of one shifted copy."""
        if shift not in self._sums:
            flat = self._flat(shift)
            self._sums[shift] = (flat * self._weight.reshape(-1, 1)).sum(0)
            self._cross[shift] = flat.T @ self._y_centred.reshape(flat.shape[0], -1)
        return self._sums[shift], self._cross[shift]

    def _decomposed(self, shifts: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(eigenvalues, eigenvectors, projected cross-products, feature means) of one lag set's centred Gram."""
        if shifts in self._eig:
            self._eig.move_to_end(shifts)
            return self._eig[shifts]
        mean = np.concatenate([self._moments(s)[0] for s in shifts]) / self._n
        gram = np.block([[self._block(a, b) for b in shifts] for a in shifts]) - self._n * np.outer(mean, mean)
        cross = np.concatenate([self._moments(s)[1] for s in shifts])  # [F, D]; y is centred, so x needs no centring
        values, vectors = np.linalg.eigh(gram)
        entry = (np.clip(values, 0.0, None), vectors, vectors.T @ cross, mean)
        self._eig[shifts] = entry
        while len(self._eig) > self._keep:
            self._eig.popitem(last=False)
        return entry

    def solve(self, lags: int, leads: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """``(W [F, D], b [D])`` for features :func:`lagged_features` ``(counts, lags, leads)`` and penalty ``alpha``."""
        if lags < 1 or leads < 0 or alpha < 0:
            raise ValueError(f"need lags >= 1, leads >= 0, alpha >= 0; got {lags}, {leads}, {alpha}")
        values, vectors, projected, mean = self._decomposed(lag_shifts(lags, leads))
        denom = values + alpha
        # zero eigenvalues with alpha = 0 carry no signal: coefficient 0 (the minimum-norm solution, as ridge_fit)
        scale = np.divide(1.0, denom, out=np.zeros_like(denom), where=denom > 0)
        weights = vectors @ (projected * scale[:, None])
        return weights, self._y_mean - mean @ weights


class _RidgeCache:
    """The :class:`LaggedRidge` of the most recent training data, found again by a digest of the arrays."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._ridge: LaggedRidge | None = None

    def get(self, counts: np.ndarray, behaviour: np.ndarray) -> LaggedRidge:
        digest = hashlib.blake2b(digest_size=16)
        for array in (np.ascontiguousarray(counts, np.float64), np.ascontiguousarray(behaviour, np.float64)):
            digest.update(repr(array.shape).encode())
            digest.update(array.data)
        key = digest.hexdigest()
        if key != self._key or self._ridge is None:
            self._key, self._ridge = None, None  # free the old statistics before building new ones
            self._ridge, self._key = LaggedRidge(counts, behaviour), key
        return self._ridge


class RidgeDecoder:
    """Wiener filter: ridge regression from a history (and ``leads`` future bins) of binned counts to behaviour.

    Counts are optionally Gaussian-smoothed per trial first (give both ``bin_size`` and ``kernel_sd``). The alpha
    is chosen by contiguous k-fold CV over the flattened samples (folds follow trial order), scored by
    variance-weighted R2, then the decoder is refitted on all training samples.

    Args:
        lags: bins of history (1 = instantaneous linear decoder).
        leads: future bins read too (0 = causal).
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
        leads: int = 0,
        alphas: np.ndarray = np.logspace(-3, 3, 13),
        n_folds: int = 5,
        bin_size: float | None = None,
        kernel_sd: float | None = None,
    ) -> None:
        if lags < 1 or leads < 0:
            raise ValueError(f"lags must be >= 1 and leads >= 0, got lags={lags}, leads={leads}")
        if (bin_size is None) != (kernel_sd is None):
            raise ValueError("give both bin_size and kernel_sd to smooth, or neither")
        if kernel_sd is not None and bin_size is not None:
            gaussian_window(kernel_sd, bin_size)
        self.lags = int(lags)
        self.leads = int(leads)
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
        return lagged_features(x, self.lags, self.leads)

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




# --------------------------------------------------------------------------- tunable form

#: Lag / lead choices (bins) and ridge alphas a search may pick.
WIENER_LAGS = (1, 2, 3, 5, 8, 10, 15, 20)
WIENER_LEADS = (0, 1, 2, 3, 5, 8, 10, 15, 20)
WIENER_ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 7))


class Wiener(Baseline):
    """The Wiener filter as a tunable baseline: ``decode R2`` (variance-weighted, at the recorded samples).

    Knobs: ``lags`` (current + past bins), ``alpha`` (ridge penalty), and for the acausal form ``leads`` (future
    bins). Raw binned counts are the inputs (the lags do the smoothing), as in the BCI literature.

    Args:
        causal: True reads no future bin; False also reads ``leads`` future bins.
        window_bins: the compared model's window in bins; ``lags + leads`` choices are capped at it, so the
            acausal filter reads at most what the model reads (None: no cap).
        lags, leads, alphas: the choices a search may make.
    """

    metric = DECODE_R2

    def __init__(
        self,
        *,
        causal: bool = True,
        window_bins: int | None = None,
        lags: tuple[int, ...] = WIENER_LAGS,
        leads: tuple[int, ...] = WIENER_LEADS,
        alphas: tuple[float, ...] = WIENER_ALPHAS,
    ) -> None:
        if window_bins is not None and window_bins < 1:
            raise ValueError(f"window_bins must be >= 1, got {window_bins}")
        self.causal = bool(causal)
        self.name = "wiener causal" if causal else "wiener acausal"
        cap = window_bins if window_bins is not None else max(max(lags), max(leads) + 1)
        self.lags = tuple(sorted({min(int(l), cap) for l in lags}))
        self.leads = tuple(sorted({min(int(l), cap - 1) for l in leads}))
        self.alphas = tuple(alphas)
        self.window_bins = window_bins
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None
        self.params: dict[str, Any] = {}
        self._ridge = _RidgeCache()

    def __deepcopy__(self, memo: dict[int, Any]) -> "Wiener":
        """A copy that shares the ridge statistics cache (a search fits copies on the same training data; the
        statistics depend on the data only, and :meth:`fit` replaces, never mutates, the fitted arrays)."""
        clone = copy.copy(self)
        clone.params = copy.deepcopy(self.params, memo)
        return clone

    def search_space(self) -> dict[str, Knob]:
        space: dict[str, Knob] = {"lags": Choice(self.lags), "alpha": Choice(self.alphas)}
        if not self.causal:
            space["leads"] = Choice(self.leads)
        return space

    def _lags_leads(self) -> tuple[int, int]:
        lags, leads = int(self.params["lags"]), int(self.params.get("leads", 0))
        if self.window_bins is not None and lags + leads > self.window_bins:
            lags = max(1, self.window_bins - leads)  # keep the read window within the model's
        return lags, leads

    def _features(self, counts: np.ndarray) -> np.ndarray:
        return lagged_features(counts, *self._lags_leads())

    def fit(self, train: Any, params: Mapping[str, Any]) -> "Wiener":
        """Ridge on the lagged training counts; statistics are shared by every fit on the same training data."""
        self.params = self._check_params(params)
        if train.behavior is None:
            raise ValueError("the Wiener filter needs behaviour in the training data")
        ridge = self._ridge.get(train.counts, train.behavior)
        self.coef_, self.intercept_ = ridge.solve(*self._lags_leads(), float(self.params["alpha"]))
        return self

    def predict(self, data: Any) -> np.ndarray:
        """Decoded behaviour at bin centres, ``[K, T, D]``."""
        if self.coef_ is None or self.intercept_ is None:
            raise RuntimeError("Wiener.predict called before fit")
        k, t = data.counts.shape[:2]
        return ridge_predict(self._features(data.counts), self.coef_, self.intercept_).reshape(k, t, -1)

    def score(self, data: Any) -> float:
        return decoder_score(self.predict(data), data)

"""Contiguous-block decoding on a continuous recording (no trials): the workflow of the real-data table.

A continuous session (a reaching session, a rat foraging) is cut into back-to-back blocks labelled in time
order (first 70% train, next 10% val, last 20% test; :func:`~spikefm.data.splits.contiguous_blocks`), so held-out
data is one contiguous stretch; behaviour is z-scored with the training blocks' statistics before any decoder
sees it (R2 then weighs dimensions alike). :func:`block_recording` does both; :func:`span_counts` bins one
split as one stretch; :func:`select_wiener` picks a Wiener filter's lags and alpha on the val stretch.

:func:`spikefm.eval.bench.file_suite` runs the full protocol (sealed test, seeds, intervals) on such a recording;
``spikefm bench --data FILE`` is the one-command form.

>>> import numpy as np
>>> from spikefm.data.binned import from_binned
>>> rng = np.random.default_rng(0)
>>> rec = from_binned(rng.poisson(2.0, (400, 3)), 0.05, {"vel": rng.normal(size=(400, 2))})
>>> rec = block_recording(rec, block=1.0, behavior_key="vel")
>>> sorted(set(rec.trials.columns["split"].tolist())), bool(rec.metadata["vel_scale"][0] > 0)
(['test', 'train', 'val'], True)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from spikefm.data.recording import DataError, Recording, TimeSeries
from spikefm.data.splits import contiguous_blocks
from spikefm.eval.baselines import lagged_features
from spikefm.eval.metrics import decoding_r2

__all__ = ["zscore_behaviour", "block_recording", "span_counts", "ridge_path", "WienerFit", "select_wiener"]


def zscore_behaviour(rec: Recording, key: str, columns: slice | None, train_until: float) -> Recording:
    """Keep only ``columns`` of behaviour ``key`` (other behaviour is dropped), z-scored with the statistics of
    samples before ``train_until``.

    The per-column standard deviation is kept as ``metadata[key + "_scale"]`` (to report errors in the
    original units). Columns that are constant over the training samples are an error (nothing to decode).
    """
    if key not in rec.behavior:
        raise DataError(f"{rec.source or rec.session}: no behaviour {key!r}; available: {sorted(rec.behavior)}")
    series = rec.behavior[key]
    columns = columns or slice(None)
    values = series.values[:, columns].astype(np.float64)
    fit = values[series.timestamps < train_until]
    std = fit.std(0)
    if fit.shape[0] < 2 or np.any(std == 0):
        raise DataError(f"{rec.source or rec.session}: behaviour {key!r} columns {columns} are constant (or "
                        "missing) in the training blocks; choose other columns")
    names = series.columns[columns] if series.columns else ()
    values = (values - fit.mean(0)) / std
    return replace(rec, behavior={key: TimeSeries(series.timestamps, values, names)},
                   metadata={**rec.metadata, f"{key}_scale": std})


def block_recording(
    rec: Recording, *, block: float, behavior_key: str, columns: slice | None = None,
    fractions: dict[str, float] | None = None, t0: float | None = None, t1: float | None = None,
) -> Recording:
    """``rec`` cut into back-to-back ``block``-second blocks (train / val / test in time order), behaviour z-scored.

    Columns of ``behavior_key`` that never vary in the training blocks are dropped when ``columns`` is None
    (e.g. the all-zero third row of a 2-D reaching task's velocity).
    """
    rec = contiguous_blocks(rec, block=block, fractions=fractions, t0=t0, t1=t1)
    train_end = float(rec.trials.end[rec.trials.columns["split"] == "train"].max())
    if columns is None and behavior_key in rec.behavior:
        series = rec.behavior[behavior_key]
        varies = np.flatnonzero(series.values[series.timestamps < train_end].std(0) > 0)
        columns = slice(int(varies.min()), int(varies.max()) + 1) if varies.size else None
    return zscore_behaviour(rec, behavior_key, columns, train_end)


def span_counts(rec: Recording, split: str, behavior_key: str, bin_size: float | None = None):
    """One contiguous stretch of counts [S, N] and behaviour [S, D] (at bin centres) covering ``split``'s blocks."""
    bin_size = bin_size or rec.bin_size
    if bin_size is None:
        raise DataError(f"{rec.source or rec.session}: give bin_size (the recording is not binned)")
    trials = rec.trials.select(rec.trials.columns["split"] == split)
    t0, t1 = trials.start.min(), trials.end.max()
    counts = rec.bin(bin_size, t0, t1)
    series = rec.behavior[behavior_key]
    centres = t0 + (np.arange(counts.shape[0]) + 0.5) * bin_size
    y = np.stack([np.interp(centres, series.timestamps, series.values[:, d]) for d in range(series.dim)], -1)
    return counts, y


def ridge_path(x: np.ndarray, y: np.ndarray) -> Callable[[float], Callable[[np.ndarray], np.ndarray]]:
    """alpha -> (features -> predictions) of ridge regression with an unpenalised intercept.

    One eigendecomposition of the training Gram matrix gives the whole alpha path, so a search over many
    alphas costs one fit (171 units x 20 lags stays cheap).
    """
    mean_x, mean_y = x.mean(0), y.mean(0)
    centred = x - mean_x
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred)
    projected = vectors.T @ (centred.T @ (y - mean_y))

    def fitted(alpha: float) -> Callable[[np.ndarray], np.ndarray]:
        weights = vectors @ (projected / (np.clip(eigenvalues, 0, None) + alpha)[:, None])
        return lambda features: (features - mean_x) @ weights + mean_y

    return fitted


@dataclass
class WienerFit:
    """A Wiener filter chosen on val: ``decode(counts) -> behaviour`` with its lags, alpha and val R2."""

    lags: int
    alpha: float
    val_r2: float
    decode: Callable[[np.ndarray], np.ndarray]

    def predict(self, counts: np.ndarray) -> np.ndarray:
        return self.decode(lagged_features(counts, self.lags))


def select_wiener(
    train_counts: np.ndarray, train_y: np.ndarray, val_counts: np.ndarray, val_y: np.ndarray,
    *, lags: Sequence[int], alphas: Sequence[float],
) -> WienerFit:
    """Ridge on a causal history of counts, fitted on train; lags and alpha picked by val R2 (grid search).

    Inputs are ``[S, N]`` stretches or ``[K, T, N]`` trials (behaviour alike); the test split is not an argument.
    """
    flat_y = np.reshape(train_y, (-1, train_y.shape[-1]))
    val_flat = np.reshape(val_y, (-1, val_y.shape[-1]))
    best: WienerFit | None = None
    for lag in lags:
        path = ridge_path(lagged_features(train_counts, lag), flat_y)
        x_val = lagged_features(val_counts, lag)
        for alpha in alphas:
            r2 = decoding_r2(path(alpha)(x_val), val_flat)
            if best is None or r2 > best.val_r2:
                best = WienerFit(int(lag), float(alpha), float(r2), path(alpha))
    assert best is not None, "select_wiener needs at least one lag and one alpha"
    return best

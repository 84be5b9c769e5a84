"""Decoders are scored at the *recorded* behaviour samples, not at their own query or bin times.

A decoder predicts behaviour at times of its choosing (POYO's output queries, a Wiener filter's bin
centres). Interpolating the *target* to those times would smooth it and score a different signal for
every decoder; spikefm instead interpolates each decoder's *predictions* (linearly, within each window;
flat beyond the first and last query) to the times the behaviour was recorded, and scores there. Query
targets interpolated to query times stay a training convenience only.

Shape legend: ``K`` windows, ``Q`` queries (or bins) per window, ``D`` behaviour dims, ``S`` recorded samples.

>>> samples = BehaviorSamples(trial=np.array([0, 0]), times=np.array([0.0, 0.5]), values=np.array([[0.0], [1.0]]))
>>> at_samples(np.array([[[0.0], [2.0]]]), np.array([[0.0, 1.0]]), samples)[:, 0].tolist()
[0.0, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikefm.data.recording import DataError, Recording
from spikefm.eval.metrics import decoding_r2

__all__ = ["BehaviorSamples", "recorded_samples", "at_samples", "bin_centres", "r2_at_samples", "decoded_r2"]


@dataclass(frozen=True)
class BehaviorSamples:
    """The recorded behaviour samples that fall inside each window.

    Attributes:
        trial: int64 [S] the window each sample belongs to (row of the windows' arrays).
        times: float64 [S] seconds from that window's start.
        values: float64 [S, D] the recorded values (NaN = unobserved, dropped when scoring).
    """

    trial: np.ndarray
    times: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        n = np.shape(self.trial)[0]
        if np.shape(self.times) != (n,) or np.ndim(self.values) != 2 or np.shape(self.values)[0] != n:
            raise ValueError(
                f"BehaviorSamples needs trial [S], times [S] and values [S, D] with one S; got "
                f"{np.shape(self.trial)}, {np.shape(self.times)} and {np.shape(self.values)}"
            )


def recorded_samples(rec: Recording, starts: np.ndarray, window: float, key: str) -> BehaviorSamples:
    """The samples of ``rec.behavior[key]`` inside each window ``[start, start + window)``.

    Args:
        rec: the recording.
        starts: float [K] absolute window starts, seconds.
        window: window length, seconds.
        key: behaviour series name.

    Raises:
        DataError: the recording has no series ``key``.
    """
    if key not in rec.behavior:
        raise DataError(f"{rec.source or rec.session}: no behaviour series {key!r}; have {sorted(rec.behavior)}")
    series = rec.behavior[key]
    trial, times, values = [], [], []
    for k, t0 in enumerate(np.asarray(starts, dtype=np.float64)):
        lo, hi = np.searchsorted(series.timestamps, [t0, t0 + window], side="left")
        trial.append(np.full(hi - lo, k, dtype=np.int64))
        times.append(series.timestamps[lo:hi] - t0)
        values.append(series.values[lo:hi])
    return BehaviorSamples(
        trial=np.concatenate(trial) if trial else np.zeros(0, np.int64),
        times=np.concatenate(times) if times else np.zeros(0),
        values=np.concatenate(values).astype(np.float64) if values else np.zeros((0, series.dim)),
    )


def bin_centres(n_windows: int, n_bins: int, bin_size: float) -> np.ndarray:
    """float [K, T] bin-centre times from each window's start: where binned decoders predict."""
    return np.broadcast_to((np.arange(n_bins) + 0.5) * bin_size, (n_windows, n_bins))


def at_samples(
    pred: np.ndarray, query_times: np.ndarray, samples: BehaviorSamples, query_mask: np.ndarray | None = None
) -> np.ndarray:
    """Predictions interpolated linearly to the recorded sample times, window by window.

    Args:
        pred: float [K, Q, D] predictions at ``query_times``.
        query_times: float [K, Q] seconds from each window's start.
        samples: where to evaluate them.
        query_mask: bool [K, Q] valid queries (default all).

    Returns:
        float [S, D]; NaN for samples of a window with no valid query.
    """
    pred = np.asarray(pred, dtype=np.float64)
    query_times = np.asarray(query_times, dtype=np.float64)
    if pred.ndim != 3 or query_times.shape != pred.shape[:2]:
        raise ValueError(f"pred must be [K, Q, D] and query_times [K, Q], got {pred.shape} and {query_times.shape}")
    mask = np.ones(query_times.shape, bool) if query_mask is None else np.asarray(query_mask, bool)
    out = np.full((samples.trial.size, pred.shape[2]), np.nan)
    for k in np.unique(samples.trial):
        rows = np.flatnonzero(samples.trial == k)
        valid = mask[k] & np.isfinite(query_times[k])
        if not valid.any():
            continue
        order = np.argsort(query_times[k][valid], kind="stable")
        t = query_times[k][valid][order]
        for d in range(pred.shape[2]):
            out[rows, d] = np.interp(samples.times[rows], t, pred[k][valid][order, d])
    return out


def r2_at_samples(
    pred: np.ndarray, query_times: np.ndarray, samples: BehaviorSamples, query_mask: np.ndarray | None = None
) -> float:
    """``decode R2`` (variance-weighted over dimensions) of predictions at the recorded samples.

    Samples whose recorded value is NaN are dropped; a sample in a window without predictions is an error.
    """
    at = at_samples(pred, query_times, samples, query_mask)
    observed = ~np.any(np.isnan(samples.values), axis=1)
    if np.any(np.isnan(at[observed])):
        raise ValueError("some recorded behaviour samples lie in windows with no valid prediction")
    return decoding_r2(at, samples.values)


def decoded_r2(
    pred: np.ndarray,
    query_times: np.ndarray | None,
    query_mask: np.ndarray,
    true_at_queries: np.ndarray,
    samples: BehaviorSamples | None,
) -> float:
    """A decoder's ``decode R2``: at the recorded samples when they are known, else (a target the tokenizer derives,
    with no recorded series) against the targets at the valid queries."""
    if samples is not None and query_times is not None and samples.trial.size > 1:
        return r2_at_samples(pred, query_times, samples, query_mask)
    valid = query_mask & np.all(np.isfinite(true_at_queries), axis=-1)
    return decoding_r2(pred[valid], true_at_queries[valid])

"""The report's prediction figures: one session's decoded behaviour and predicted rates beside the truth
and the baseline that the score table compares with (ridge / Wiener decoder, NLB smoothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spikefm.data.recording import Recording
from spikefm.eval.baselines import RidgeDecoder, SmoothingBaseline
from spikefm.eval.evaluate import Predictions
from spikefm.eval.plots import behavior_labels, plot_traces
from spikefm.eval.scoreboard import BASELINE_BIN_SIZE
from spikefm.eval.trials import trial_arrays

__all__ = ["prediction_figures", "decoded_key"]

def decoded_key(recording: Recording, dim: int, preferred: str | None = None) -> str | None:
    """The behaviour series a decoder's ``dim``-wide output stands for: ``preferred`` if the recording
    has it, else ``hand_vel``, else the only series of that width (None when ambiguous)."""
    for key in (preferred, "hand_vel"):
        if key and key in recording.behavior and recording.behavior[key].dim == dim:
            return key
    matches = [k for k, v in recording.behavior.items() if v.dim == dim]
    return matches[0] if len(matches) == 1 else None


def prediction_figures(
    out_dir: Path, session: str, predictions: Predictions, dataset: Any, window: float, *, prefix: str = "",
    recording: Recording | None = None, behavior_key: str | None = None,
) -> list[str]:
    """Figures of decoded behaviour and/or predicted rates for one session; returns markdown lines.

    Args:
        out_dir: folder the PNGs go into.
        session: the session the predictions are of.
        predictions: the model's predictions on that session's trials (the first trial is drawn).
        dataset: the synthetic dataset (true rates), or None.
        window: window length (s) the predictions were made on.
        prefix: file name prefix of the PNGs.
        recording: the session's recording; when given, the baseline is fitted on its train trials and
            drawn over the same trial (ridge decoder for behaviour, smoothing for rates).
        behavior_key: the behaviour series the model decodes (names the panels), when known.
    """
    lines: list[str] = []
    if predictions.behavior is not None:
        path = _behavior_figure(out_dir / f"{prefix}behavior.png", session, predictions, window, recording,
                                behavior_key)
        lines += ["## Decoded behaviour", "", f"![behaviour]({path.name})", ""]
    if predictions.rates is not None:
        path = _rates_figure(out_dir / f"{prefix}rates.png", session, predictions, dataset, window, recording)
        lines += ["## Predicted rates", "", f"![rates]({path.name})", ""]
    return lines


def _behavior_figure(
    out: Path, session: str, predictions: Predictions, window: float, recording: Recording | None,
    behavior_key: str | None,
) -> Path:
    trial, dim = 0, predictions.behavior.shape[-1]
    valid = predictions.query_mask[trial]
    if predictions.query_times is not None:
        times = predictions.query_times[trial][valid]
    else:
        times = np.arange(valid.sum()) * (window / max(1, predictions.query_mask.shape[1]))
    key = decoded_key(recording, dim, behavior_key) if recording is not None else behavior_key
    series = recording.behavior[key] if recording is not None and key is not None else None
    labels = behavior_labels(key, series.columns, dim) if series is not None else [f"output {i}" for i in range(dim)]
    baseline = None
    if series is not None:
        train = trial_arrays(recording, split="train", bin_size=BASELINE_BIN_SIZE, window=window, behavior_key=key)
        counts = _window_counts(recording, predictions.starts[trial:trial + 1], window)
        decoded = RidgeDecoder(lags=5).fit(train.counts, train.behavior).predict(counts)[0]  # [T, D]
        baseline = ("ridge", _bin_centres(decoded.shape[0]), decoded)
    return plot_traces(times, predictions.behavior[trial][valid], predictions.behavior_true[trial][valid], out,
                       labels=labels, baseline=baseline, title=f"{session}: decoded vs true behaviour, trial 0")


def _rates_figure(
    out: Path, session: str, predictions: Predictions, dataset: Any, window: float, recording: Recording | None
) -> Path:
    heldout = predictions.heldout
    held = np.flatnonzero(heldout)[:4] if heldout.any() else np.arange(min(4, predictions.rates.shape[-1]))
    bins = predictions.rates.shape[1]
    bin_size = window / bins
    times = (np.arange(bins) + 0.5) * bin_size
    synthetic = dataset is not None and session in [r.session for r in dataset.recordings]
    if synthetic:
        t0 = predictions.starts[0]
        truth = dataset.true_rate_counts(session, bin_size, t0, t0 + window)[:, held]
        rates, title = predictions.rates[0][:, held], f"{session}: predicted vs true rate, trial 0"
    else:
        truth = predictions.counts[:, :, held].mean(0)
        rates, title = predictions.rates[:, :, held].mean(0), f"{session}: trial-averaged prediction vs counts"
    baseline = None
    if recording is not None and heldout.any():
        starts = predictions.starts[:1] if synthetic else predictions.starts
        smoothed = _smoothing_rates(recording, starts, window)[..., np.searchsorted(np.flatnonzero(heldout), held)]
        baseline = ("smoothing", _bin_centres(smoothed.shape[1]), smoothed.mean(0) / BASELINE_BIN_SIZE)
    return plot_traces(times, rates / bin_size, truth / bin_size, out, labels=[f"unit {i}" for i in held],
                       ylabel="Hz", baseline=baseline, title=title + " (held-out units)")


def _window_counts(recording: Recording, starts: np.ndarray, window: float) -> np.ndarray:
    return np.stack([recording.bin(BASELINE_BIN_SIZE, t0, t0 + window) for t0 in starts])  # [K, T, N]


def _bin_centres(n_bins: int) -> np.ndarray:
    return (np.arange(n_bins) + 0.5) * BASELINE_BIN_SIZE


def _smoothing_rates(recording: Recording, starts: np.ndarray, window: float) -> np.ndarray:
    """NLB smoothing baseline fitted on the train trials: held-out counts per bin, [K, T, N_out]."""
    train = trial_arrays(recording, split="train", bin_size=BASELINE_BIN_SIZE, window=window, behavior_key=None)
    model = SmoothingBaseline(bin_size=BASELINE_BIN_SIZE).fit(train.heldin_counts, train.heldout_counts)
    counts = _window_counts(recording, starts, window)
    return model.predict(counts[..., ~recording.units.heldout])[1]

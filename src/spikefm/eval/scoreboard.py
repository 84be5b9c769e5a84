"""Score tables: baselines (smoothing, ridge / Wiener) and, on synthetic data, the oracle.

Every model score in spikefm is printed beside these rows, computed on the same trials and bins.
"""

from __future__ import annotations

import numpy as np

from spikefm.data.recording import Recording
from spikefm.eval.baselines import RidgeDecoder, SmoothingBaseline
from spikefm.eval.metrics import co_bps, decoding_r2, velocity_r2
from spikefm.eval.trials import TrialArrays, trial_arrays

__all__ = [
    "BASELINE_BIN_SIZE", "BASELINE_NOTES", "METRIC_NOTES", "split_arrays", "baseline_scores", "oracle_row",
    "format_table",
]

BASELINE_BIN_SIZE = 0.02  # s; baselines and the oracle are scored on 20 ms bins

# One line per score label a table can carry; tables print the lines of the labels they show.
METRIC_NOTES = {
    "co-bps": "held-out units' bits per spike predicted from held-in units (NLB co-smoothing); 0 = null",
    "vel R2": "NLB: ridge regression from predicted rates to velocity, R2 averaged over dims; 1 = perfect",
    "decode R2": "R2 of behaviour decoded directly, variance-weighted over dims; 1 = perfect, 0 = the mean",
    "position R2": "R2 of decoded position, variance-weighted over x / y; 1 = perfect, 0 = the mean",
}
BASELINE_NOTES = {
    "smoothing": "NLB's baseline: smoothed held-in spikes -> Poisson GLM -> held-out rates (train trials)",
    "ridge": "Wiener filter: ridge from 100 ms (5 bins) of spike counts to behaviour (train trials)",
    "oracle": "the true rates behind the synthetic spikes, scored the same way: the reference ceiling",
}


def split_arrays(
    rec: Recording, *, bin_size: float, window: float, behavior_key: str = "hand_vel"
) -> tuple[TrialArrays, TrialArrays]:
    """(train, test) trial arrays of one session."""
    train = trial_arrays(rec, split="train", bin_size=bin_size, window=window, behavior_key=behavior_key)
    test = trial_arrays(rec, split="test", bin_size=bin_size, window=window, behavior_key=behavior_key)
    return train, test


def baseline_scores(train: TrialArrays, test: TrialArrays) -> dict[str, dict[str, float]]:
    """``{"smoothing": {"co-bps": ...}, "ridge": {"vel R2": ...}}`` on the test trials.

    The smoothing baseline is NLB's (Gaussian-smoothed held-in spikes -> Poisson GLM -> held-out);
    the ridge decoder is a Wiener filter over 5 bins of spike history.
    """
    rows: dict[str, dict[str, float]] = {}
    if train.heldout.any():
        smoothing = SmoothingBaseline(bin_size=train.bin_size).fit(train.heldin_counts, train.heldout_counts)
        _, rates_out = smoothing.predict(test.heldin_counts)
        rows["smoothing"] = {"co-bps": co_bps(rates_out, test.heldout_counts)}
    if train.behavior is not None and test.behavior is not None:
        decoder = RidgeDecoder(lags=5).fit(train.counts, train.behavior)
        rows["ridge"] = {"vel R2": decoding_r2(decoder.predict(test.counts), test.behavior)}
    return rows


def oracle_row(
    train_true: np.ndarray, test_true: np.ndarray, train: TrialArrays, test: TrialArrays
) -> dict[str, float]:
    """Scores of the true rates (expected counts per bin, [K, T, N]): the ceiling on synthetic data."""
    row = {"co-bps": co_bps(test_true[..., test.heldout], test.heldout_counts)}
    if train.behavior is not None and test.behavior is not None:
        row["vel R2"] = velocity_r2(train_true, train.behavior, test_true, test.behavior)
    return row


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """A markdown table of ``{row: {metric: value}}``; missing cells are '-'."""
    metrics = sorted({m for row in rows.values() for m in row})
    lines = ["| model | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name, row in rows.items():
        cells = [f"{row[m]:.3f}" if m in row else "-" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

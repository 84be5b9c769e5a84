"""Score tables: baselines (smoothing, Wiener, Kalman) and, on synthetic data, the oracle.

Every model score in spikefm is printed beside these rows, computed on the same trials and bins. With a
validation split the baselines are tuned on it (:func:`~spikefm.eval.baselines.tune_on_val`, the same budget for
each) and named by the information they read ("wiener causal", "wiener acausal"); a causal model is shown only
causal baselines. Without one they run at fixed settings (NLB's MC_Maze smoothing, a 5-bin causal Wiener filter).
"""

from __future__ import annotations

import numpy as np

from spikefm.data.recording import DataError, Recording
from spikefm.eval.baselines import RidgeDecoder, Smoothing, baselines_for, decoder_score, make_baseline, tune_on_val
from spikefm.eval.metrics import CO_BPS, DECODE_R2, VEL_R2, co_bps, velocity_r2
from spikefm.eval.trials import TrialArrays, trial_arrays

__all__ = ["split_arrays", "val_arrays", "baseline_scores", "oracle_row", "format_table"]

#: Candidates each baseline's validation search may fit.
BASELINE_BUDGET = 8


def split_arrays(
    rec: Recording, *, bin_size: float, window: float, behavior_key: str = "hand_vel"
) -> tuple[TrialArrays, TrialArrays]:
    """(train, test) trial arrays of one session."""
    train = trial_arrays(rec, split="train", bin_size=bin_size, window=window, behavior_key=behavior_key)
    test = trial_arrays(rec, split="test", bin_size=bin_size, window=window, behavior_key=behavior_key)
    return train, test


def val_arrays(rec: Recording, *, bin_size: float, window: float, behavior_key: str = "hand_vel") -> TrialArrays | None:
    """The session's validation trials, or None when it has none."""
    try:
        return trial_arrays(rec, split="val", bin_size=bin_size, window=window, behavior_key=behavior_key)
    except DataError:
        return None


def baseline_scores(
    train: TrialArrays,
    test: TrialArrays,
    *,
    val: TrialArrays | None = None,
    causal: bool = False,
    budget: int = BASELINE_BUDGET,
) -> dict[str, dict[str, float]]:
    """``{baseline: {metric: score on test}}``: co-smoothing baselines when there are held-out neurons, decoders
    when there is behaviour.

    Args:
        train, test: the session's trial arrays.
        val: validation trials; when given, every baseline's knobs are chosen on them (``budget`` candidates).
        causal: the compared model is causal: show causal baselines only.
        budget: candidates per baseline search.
    """
    tasks = (["self_supervised"] if train.heldout.any() else []) + (
        ["decoding"] if train.behavior is not None and test.behavior is not None else [])
    rows: dict[str, dict[str, float]] = {}
    for task in tasks:
        if val is None and task == "self_supervised":  # nothing to tune on: NLB's MC_Maze settings
            baseline = Smoothing(causal=causal).fit(train, {"kernel_sd": 0.05, "alpha": 0.01})
            rows[baseline.name] = {baseline.metric: baseline.score(test)}
        elif val is None:  # a 5-bin causal Wiener filter, alpha by 5-fold CV on train
            decoder = RidgeDecoder(lags=5).fit(train.counts, train.behavior)
            rows["wiener causal"] = {DECODE_R2: decoder_score(decoder.predict(test.counts), test)}
        if val is None:
            continue
        for name in baselines_for(task, causal=causal):
            kwargs = {"window_bins": test.counts.shape[1]} if name == "wiener acausal" else {}
            tuned = tune_on_val(make_baseline(name, **kwargs), train, val, budget=budget)
            rows[name] = {tuned.baseline.metric: tuned.baseline.score(test)}
    return rows


def oracle_row(
    train_true: np.ndarray, test_true: np.ndarray, train: TrialArrays, test: TrialArrays
) -> dict[str, float]:
    """Scores of the true rates (expected counts per bin, [K, T, N]): the ceiling on synthetic data."""
    row = {CO_BPS: co_bps(test_true[..., test.heldout], test.heldout_counts)}
    if train.behavior is not None and test.behavior is not None:
        row[VEL_R2] = velocity_r2(train_true, train.behavior, test_true, test.behavior)
    return row


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """A markdown table of ``{row: {metric: value}}``; missing cells are '-'."""
    metrics = sorted({m for row in rows.values() for m in row})
    lines = ["| model | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name, row in rows.items():
        cells = [f"{row[m]:.3f}" if m in row else "-" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

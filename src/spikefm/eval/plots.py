"""Figures people look at: rasters with behaviour, loss curves, predicted vs true traces.

Every function writes a PNG and returns its path; matplotlib runs headless (Agg).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from spikefm.data.recording import Recording  # noqa: E402

__all__ = ["plot_raster", "plot_curves", "plot_traces"]


def plot_raster(
    rec: Recording, out: str | Path, *, t0: float | None = None, t1: float | None = None, max_units: int = 200
) -> Path:
    """Raster of up to ``max_units`` units over ``[t0, t1)`` with each behaviour signal below it.

    Args:
        rec: the recording.
        out: PNG path to write.
        t0, t1: time span; defaults to the first 10 s of the recording.
        max_units: draw at most this many units (the most active ones) to keep the figure legible.
    """
    t0 = rec.start if t0 is None else t0
    t1 = min(rec.end, t0 + 10.0) if t1 is None else t1
    part = rec.slice(t0, t1)
    shown = np.argsort(-rec.spike_counts(), kind="stable")[:max_units]
    row_of = np.full(rec.n_units, -1)
    row_of[np.sort(shown)] = np.arange(shown.size)
    keep = row_of[part.spikes.units] >= 0
    n_behavior = len(part.behavior)
    fig, axes = plt.subplots(
        1 + n_behavior, 1, figsize=(10, 4 + 1.5 * n_behavior), sharex=True, squeeze=False,
        gridspec_kw={"height_ratios": [3] + [1] * n_behavior},
    )
    axes = axes[:, 0]
    axes[0].scatter(part.spikes.times[keep], row_of[part.spikes.units[keep]], s=1, c="k", marker="|", linewidths=0.5)
    axes[0].set_ylabel(f"unit ({shown.size} of {rec.n_units})")
    axes[0].set_title(f"{rec.session}: {part.n_spikes} spikes in [{t0:.2f}, {t1:.2f}) s")
    for ax, (name, series) in zip(axes[1:], part.behavior.items()):
        ax.plot(series.timestamps, series.values, lw=0.8)
        ax.set_ylabel(name)
    axes[-1].set_xlabel("time (s)")
    return _save(fig, out)


def plot_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], out: str | Path, *, ylabel: str = "loss") -> Path:
    """Line plot of named (step, value) curves, e.g. train and validation loss."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (steps, values) in curves.items():
        ax.plot(steps, values, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend()
    return _save(fig, out)


def plot_traces(
    time: np.ndarray, predicted: np.ndarray, true: np.ndarray, out: str | Path, *, labels: list[str] | None = None,
    title: str = "",
) -> Path:
    """Predicted (solid) vs true (dashed) traces, one panel per column of ``[T, K]`` arrays."""
    predicted, true = np.atleast_2d(predicted.T).T, np.atleast_2d(true.T).T
    k = predicted.shape[1]
    fig, axes = plt.subplots(k, 1, figsize=(8, 1.6 * k + 1), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(time, true[:, i], "k--", lw=1, label="true")
        ax.plot(time, predicted[:, i], "C0", lw=1, label="predicted")
        ax.set_ylabel(labels[i] if labels else str(i))
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("time (s)")
    return _save(fig, out)


def _save(fig, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out

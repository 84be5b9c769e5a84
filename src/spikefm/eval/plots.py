"""Figures people look at: rasters with behaviour, loss curves, predicted vs true traces.

Every function writes a PNG and returns its path; matplotlib runs headless (Agg).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from spikefm.data.recording import Recording  # noqa: E402

__all__ = ["plot_raster", "plot_curves", "plot_traces", "behavior_labels", "spike_window"]

_AXES = ("x", "y", "z")
_QUANTITIES = (("vel", "velocity"), ("pos", "position"), ("acc", "acceleration"))
_MARKER_BELOW = 30  # curves with fewer points than this get a marker on each point


def behavior_labels(name: str, columns: tuple[str, ...], dim: int) -> list[str]:
    """Readable names for the ``dim`` columns of behaviour series ``name``.

    >>> behavior_labels("hand_vel", ("x", "y"), 2)
    ['x velocity', 'y velocity']
    >>> behavior_labels("position", (), 2)
    ['x position', 'y position']
    >>> behavior_labels("pupil", (), 1)
    ['pupil']
    """
    if not columns:
        columns = _AXES[:dim] if 1 < dim <= len(_AXES) else tuple(str(i) for i in range(dim))
    quantity = next((label for stem, label in _QUANTITIES if stem in name.lower()), None)
    if dim == 1 and quantity is None:
        return [name]
    if quantity is None or not all(c in _AXES for c in columns):
        return [f"{name} {c}" for c in columns]
    return [f"{c} {quantity}" for c in columns]


def spike_window(rec: Recording, length: float = 10.0) -> float:
    """Start of the first ``length``-second stretch with a typical number of spikes.

    The recording is tiled into ``length``-second windows from its start; the first window holding
    at least half the median count of the non-empty windows is chosen, so a recording whose clock
    starts long before its first spike (tracking video first) still draws a full raster.
    """
    if rec.n_spikes == 0:
        return rec.start
    edges = rec.start + length * np.arange(int(np.ceil(rec.duration / length)) + 1)
    counts = np.diff(np.searchsorted(rec.spikes.times, edges))
    busy = counts[counts > 0]
    return float(edges[int(np.argmax(counts >= 0.5 * np.median(busy)))])


def plot_raster(
    rec: Recording, out: str | Path, *, t0: float | None = None, t1: float | None = None, max_units: int = 200
) -> Path:
    """Raster of up to ``max_units`` units over ``[t0, t1)`` with each behaviour signal below it.

    Args:
        rec: the recording.
        out: PNG path to write.
        t0, t1: time span; ``t0`` defaults to :func:`spike_window`'s choice, ``t1`` to 10 s later.
        max_units: draw at most this many units (the most active ones) to keep the figure legible.
    """
    t0 = spike_window(rec) if t0 is None else t0
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
    axes[0].scatter(part.spikes.times[keep], row_of[part.spikes.units[keep]], s=4, c="k", marker="|", linewidths=0.6)
    axes[0].set_ylim(-0.5, shown.size - 0.5)
    axes[0].set_xlim(t0, t1)
    axes[0].set_ylabel(f"unit ({shown.size} of {rec.n_units})")
    axes[0].set_title(f"{rec.session}: {part.n_spikes:,} spikes in [{t0:.2f}, {t1:.2f}) s")
    for ax, (name, series) in zip(axes[1:], part.behavior.items()):
        for values, label in zip(series.values.T, behavior_labels(name, series.columns, series.dim)):
            ax.plot(series.timestamps, values, lw=0.8, label=label)
        ax.set_ylabel(name)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    return _save(fig, out)


def plot_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], out: str | Path, *, ylabel: str = "loss") -> Path:
    """Line plot of named (step, value) curves, e.g. train and validation loss.

    A curve of few points (a validation run at the end of a short run) is drawn with a marker on
    each point, so a single point is visible.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (steps, values) in curves.items():
        marker = "o" if len(steps) < _MARKER_BELOW else None
        ax.plot(steps, values, label=name, marker=marker, markersize=4)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend()
    return _save(fig, out)


def plot_traces(
    time: np.ndarray, predicted: np.ndarray, true: np.ndarray, out: str | Path, *, labels: list[str] | None = None,
    title: str = "", ylabel: str = "", baseline: tuple[str, np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Predicted (solid) vs true (dashed) traces, one panel per column of ``[T, K]`` arrays.

    Args:
        time: [T] seconds.
        predicted, true: [T, K] (or [T]) the model's and the true traces.
        labels: the K panels' names (y-axis labels).
        ylabel: unit shown after each label, e.g. "Hz".
        baseline: ``(name, time [T'], values [T', K])`` drawn dotted in every panel.
    """
    predicted, true = np.atleast_2d(predicted.T).T, np.atleast_2d(true.T).T
    k = predicted.shape[1]
    fig, axes = plt.subplots(k, 1, figsize=(8, 1.6 * k + 1), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(time, true[:, i], "k--", lw=1, label="true")
        if baseline is not None:
            name, base_time, base_values = baseline
            ax.plot(base_time, np.atleast_2d(base_values.T).T[:, i], "C1:", lw=1.2, label=name)
        ax.plot(time, predicted[:, i], "C0", lw=1, label="predicted")
        label = labels[i] if labels else str(i)
        ax.set_ylabel(f"{label} ({ylabel})" if ylabel else label, fontsize=8)
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

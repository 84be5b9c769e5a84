"""Recordings that exist only as binned spike counts (plus behaviour sampled per bin).

Many public datasets (the Stevenson 2011 M1 reaching set, the KordingLab S1 set...) ship a
``[T, n_units]`` count matrix instead of spike times. :func:`from_binned` turns one into a
:class:`~spikefm.data.recording.Recording` whose ``bin_size`` is set, so per-spike tokenizers
and readers of the recording know the spike timing is quantised to that width.

Placement rule (deterministic, no randomness): bin ``i`` covers ``[start + i*bin_size,
start + (i+1)*bin_size)``; its ``k`` spikes of one unit are spread evenly at the centres of
``k`` equal sub-intervals, ``start + (i + (j + 0.5) / k) * bin_size`` for ``j = 0..k-1``.
Every placed spike lies strictly inside its bin, so ``rec.bin(bin_size, start)`` gives back
the counts exactly. Behaviour sample ``i`` is stamped at the bin centre
``start + (i + 0.5) * bin_size``, so it falls in the same bin as that bin's spikes.

>>> import numpy as np
>>> rec = from_binned(np.array([[2, 0], [0, 1]]), 0.5)
>>> rec.spikes.times.tolist(), rec.spikes.units.tolist(), rec.bin_size
([0.125, 0.375, 0.75], [0, 0, 1], 0.5)
>>> rec.bin(0.5, 0.0).tolist()
[[2, 0], [0, 1]]
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from spikefm.data.recording import DataError, Recording, SpikeTrains, TimeSeries, Units

__all__ = ["from_binned", "place_spikes"]


def _counts_matrix(counts: np.ndarray, source: str) -> np.ndarray:
    counts = np.asarray(counts)
    where = f"{source}: field 'counts'" if source else "field 'counts'"
    if counts.ndim != 2:
        raise DataError(f"{where} must be 2-D [bins, units], got shape {counts.shape}")
    if counts.size and not np.all(np.isfinite(counts)):
        raise DataError(f"{where} has NaN or inf values")
    if counts.size and (np.any(counts < 0) or np.any(counts != np.round(counts))):
        raise DataError(f"{where} must hold non-negative whole spike counts")
    return counts.astype(np.int64)


def place_spikes(counts: np.ndarray, bin_size: float, start: float = 0.0) -> SpikeTrains:
    """Spike trains whose binning on ``[start + i*bin_size, ...)`` reproduces ``counts``.

    Args:
        counts: int [T, n_units] non-negative spike counts.
        bin_size: bin width in seconds.
        start: left edge of bin 0 in seconds.

    Returns:
        Time-sorted :class:`SpikeTrains`; see the module docstring for the placement rule.
    """
    counts = _counts_matrix(counts, "")
    flat = counts.ravel()  # row-major: bin-major, then unit
    bins, units = np.divmod(np.arange(flat.size), counts.shape[1])
    per_spike_bin = np.repeat(bins, flat)
    per_spike_unit = np.repeat(units, flat)
    per_spike_k = np.repeat(flat, flat)
    # j-th spike of its (bin, unit) cell: position within the run of repeats.
    first = np.repeat(np.cumsum(flat) - flat, flat)
    j = np.arange(per_spike_k.size) - first
    times = start + (per_spike_bin + (j + 0.5) / np.maximum(per_spike_k, 1)) * bin_size
    order = np.argsort(times, kind="stable")
    return SpikeTrains(times=times[order], units=per_spike_unit[order])


def _behaviour(
    behaviour: Mapping[str, np.ndarray], n_bins: int, bin_size: float, start: float, source: str
) -> dict[str, TimeSeries]:
    centres = start + (np.arange(n_bins) + 0.5) * bin_size
    series = {}
    for name, values in behaviour.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape[:1] != (n_bins,):
            raise DataError(
                f"{source or 'from_binned'}: field '{name}' has {values.shape[0] if values.ndim else 0} rows "
                f"for {n_bins} bins; behaviour must be sampled once per bin, shaped [bins] or [bins, dims]"
            )
        series[name] = TimeSeries(centres, values)
    return series


def from_binned(
    counts: np.ndarray,
    bin_size: float,
    behaviour: Mapping[str, np.ndarray] | None = None,
    *,
    start: float = 0.0,
    unit_ids: np.ndarray | None = None,
    session: str = "session",
    subject: str = "",
    source: str = "",
    metadata: dict | None = None,
) -> Recording:
    """A :class:`Recording` from a binned count matrix, marked binned via ``bin_size``.

    Args:
        counts: [T, n_units] non-negative whole spike counts.
        bin_size: bin width in seconds (> 0).
        behaviour: name -> [T] or [T, D] values sampled once per bin (stamped at bin centres).
        start: left edge of bin 0 in seconds.
        unit_ids: [n_units] unit ids; default ``"0", "1", ...``.
        session, subject, source, metadata: as in :class:`Recording`.

    Raises:
        DataError: bad shapes, negative / fractional / non-finite counts, or ``bin_size <= 0``.
    """
    counts = _counts_matrix(counts, source)
    if not (np.isfinite(bin_size) and bin_size > 0):
        raise DataError(f"{source or 'from_binned'}: field 'bin_size' must be a finite number > 0, got {bin_size}")
    n_bins, n_units = counts.shape
    ids = np.arange(n_units).astype(str) if unit_ids is None else np.asarray(unit_ids)
    return Recording(
        spikes=place_spikes(counts, bin_size, start),
        units=Units(ids=ids),
        session=session,
        subject=subject,
        behavior=_behaviour(behaviour or {}, n_bins, bin_size, start, source),
        start=float(start),
        end=float(start + n_bins * bin_size),
        bin_size=float(bin_size),
        source=source,
        metadata=dict(metadata or {}),
    )

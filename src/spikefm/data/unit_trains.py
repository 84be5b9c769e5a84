"""A :class:`Recording` from one array of spike times per unit, as sorter and acquisition readers produce."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from spikefm.data.recording import DataError, Recording, SpikeTrains, Units

__all__ = ["recording_from_unit_trains"]


def recording_from_unit_trains(
    trains: Sequence[np.ndarray],
    ids: Sequence[str],
    *,
    session: str,
    source: str,
    region: Sequence[str] | None = None,
    quality: Sequence[Any] | None = None,
    position: np.ndarray | None = None,
    start: float | None = None,
    end: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> Recording:
    """Merge per-unit spike times (seconds) into a time-sorted Recording; every spike kept, units without spikes too.

    Raises:
        DataError: no units, duplicate unit ids, or a NaN / inf spike time (the message names ``source``).
    """
    if len(trains) == 0:
        raise DataError(f"{source}: no units (the sorting / file holds no spike trains)")
    for uid, times in zip(ids, trains):
        if np.asarray(times).size and not np.all(np.isfinite(times)):
            raise DataError(f"{source}: unit {uid} has a NaN or inf spike time")
    try:
        units = Units(ids=np.asarray(ids).astype(str), region=None if region is None else np.asarray(region),
                      quality=None if quality is None else np.asarray(quality), position=position)
        spikes = SpikeTrains.from_unit_times([np.asarray(t, np.float64) for t in trains])
        if len(spikes):
            start = float(spikes.times[0]) if start is None else min(start, float(spikes.times[0]))
            last = float(np.nextafter(spikes.times[-1], np.inf))
            end = last if end is None else max(end, last)
        return Recording(spikes=spikes, units=units, session=session, start=start, end=end, source=source,
                         metadata=metadata or {})
    except DataError as err:
        raise DataError(f"{source}: {err}") from err

"""Hypothesis strategies and builders shared by the tokenizer tests.

Recordings are built directly from :class:`Recording` (no synthetic generator), with spike
times that often sit exactly on a 10 ms grid so that bin and window edges get hit.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from spikefm.data.recording import Recording, SpikeTrains, TimeSeries, Units, Window

GRID = 0.01


def make_recording(
    times: np.ndarray,
    units: np.ndarray,
    n_units: int,
    duration: float,
    *,
    session: str = "s1",
    behavior: bool = False,
    regions: bool = False,
    heldout: np.ndarray | None = None,
) -> Recording:
    order = np.argsort(times, kind="stable")
    series = {}
    if behavior:
        stamps = np.arange(0.0, duration, 0.01)
        series["hand_vel"] = TimeSeries(stamps, np.stack([2.0 * stamps + 1.0, -stamps], axis=1))
    return Recording(
        spikes=SpikeTrains(np.asarray(times, float)[order], np.asarray(units, np.int64)[order]),
        units=Units(
            ids=np.array([f"u{i}" for i in range(n_units)]),
            region=np.array(["M1" if i % 2 else "PMd" for i in range(n_units)]) if regions else None,
            heldout=heldout,
        ),
        session=session,
        behavior=series,
        start=0.0,
        end=duration,
    )


@st.composite
def recordings(draw, max_units: int = 7, max_spikes: int = 80, behavior: bool | None = None) -> Recording:
    n_units = draw(st.integers(1, max_units))
    duration = draw(st.sampled_from([0.3, 0.5, 1.0, 1.37]))
    n_spikes = draw(st.integers(0, max_spikes))
    on_grid = draw(st.booleans())
    if on_grid:
        steps = draw(st.lists(st.integers(0, int(round(duration / GRID)) - 1), min_size=n_spikes, max_size=n_spikes))
        times = np.array(steps, float) * GRID
    else:
        times = np.array(draw(st.lists(
            st.floats(0.0, duration, exclude_max=True, allow_nan=False), min_size=n_spikes, max_size=n_spikes
        )), float)
    units = np.array(draw(st.lists(st.integers(0, n_units - 1), min_size=n_spikes, max_size=n_spikes)), np.int64)
    heldout = np.array(draw(st.lists(st.booleans(), min_size=n_units, max_size=n_units)), bool)
    with_behavior = draw(st.booleans()) if behavior is None else behavior
    return make_recording(times, units, n_units, duration, session=draw(st.sampled_from(["s1", "s2"])),
                          behavior=with_behavior, regions=draw(st.booleans()), heldout=heldout)


@st.composite
def windows(draw, min_length: float = 0.05, **recording_kwargs) -> tuple[Recording, Window]:
    """A recording and a window of it; bounds are on the 10 ms grid half the time."""
    recording = draw(recordings(**recording_kwargs))
    if draw(st.booleans()):
        n = int(round(recording.duration / GRID))
        lo = draw(st.integers(0, n - int(np.ceil(min_length / GRID))))
        hi = draw(st.integers(lo + int(np.ceil(min_length / GRID)), n))
        t0, t1 = lo * GRID, min(hi * GRID, recording.end)
    else:
        t0 = draw(st.floats(0.0, recording.duration - min_length, allow_nan=False))
        t1 = draw(st.floats(t0 + min_length, recording.duration, allow_nan=False))
    return recording, recording.window(t0, t1)


def spikes_in(recording: Recording, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    """The recording's spikes in [t0, t1), times relative to t0 (computed as Recording.slice does)."""
    keep = (recording.spikes.times >= t0) & (recording.spikes.times < t1)
    return recording.spikes.times[keep] - t0, recording.spikes.units[keep]

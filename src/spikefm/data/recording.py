"""One recording session as plain numpy objects that slice by time.

Everything downstream (samplers, tokenizers, models) reads a :class:`Recording`
or a :class:`Window` cut from one. Times are float64 seconds.

Edge convention, used everywhere: a time slice is half-open, ``[t0, t1)``. A
spike exactly at ``t1`` belongs to the *next* window, so consecutive windows
partition the spikes with none counted twice and none lost.

>>> import numpy as np
>>> rec = Recording(
...     spikes=SpikeTrains(times=np.array([0.1, 0.5, 1.0, 1.5]), units=np.array([0, 1, 0, 1])),
...     units=Units(ids=np.array(["a", "b"])),
...     session="s1",
... )
>>> rec.slice(0.5, 1.5).spikes.times
array([0.5, 1. ])
>>> rec.slice(0.5, 1.5, relative=True).spikes.times
array([0. , 0.5])
>>> rec.bin(0.5, 0.0, 2.0).tolist()
[[1, 0], [0, 1], [1, 0], [0, 1]]
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

__all__ = [
    "DataError",
    "SpikeTrains",
    "Units",
    "TimeSeries",
    "Intervals",
    "Recording",
    "Window",
]


class DataError(ValueError):
    """Malformed or inconsistent input data; the message names the source and field."""


def _where(source: str, field_name: str) -> str:
    return f"{source}: field '{field_name}'" if source else f"field '{field_name}'"


def _check_times(times: np.ndarray, source: str, field_name: str) -> np.ndarray:
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1:
        raise DataError(f"{_where(source, field_name)} must be 1-D, got shape {times.shape}")
    if times.size and np.isfinite(times[0]) and np.isfinite(times[-1]) and (
        times.size == 1 or np.less_equal(times[:-1], times[1:]).all()
    ):
        return times  # sorted with finite ends (NaN fails the comparison), so all finite: one pass
    if times.size and not np.all(np.isfinite(times)):
        bad = int(np.flatnonzero(~np.isfinite(times))[0])
        raise DataError(f"{_where(source, field_name)} has a non-finite value (NaN or inf) at index {bad}")
    if times.size > 1 and np.any(np.diff(times) < 0):
        bad = int(np.flatnonzero(np.diff(times) < 0)[0])
        raise DataError(
            f"{_where(source, field_name)} is not sorted (index {bad + 1}: {times[bad + 1]} < {times[bad]}); "
            "sort spikes by time (np.argsort(times, kind='stable')) before building a Recording"
        )
    return times


@dataclass(frozen=True)
class SpikeTrains:
    """All spikes of a recording as two flat arrays sorted by time.

    Attributes:
        times: float64 [n_spikes] spike times in seconds, non-decreasing.
        units: int64 [n_spikes] index of each spike's unit in the :class:`Units` table.
    """

    times: np.ndarray
    units: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "times", _check_times(self.times, "", "spikes.times"))
        units = np.asarray(self.units)
        if units.size and not np.issubdtype(units.dtype, np.integer):
            raise DataError(f"field 'spikes.units' must hold integer unit indices, got dtype {units.dtype}")
        object.__setattr__(self, "units", units.astype(np.int64, copy=False))
        if self.units.shape != self.times.shape:
            raise DataError(
                f"'spikes.times' and 'spikes.units' differ in length: {self.times.shape} vs {self.units.shape}"
            )

    def __len__(self) -> int:
        return int(self.times.size)

    @classmethod
    def from_unit_times(cls, per_unit_times: list[np.ndarray]) -> "SpikeTrains":
        """Merge one array of spike times per unit into flat, time-sorted trains."""
        lengths = [len(t) for t in per_unit_times]
        times = np.concatenate([np.asarray(t, np.float64) for t in per_unit_times]) if lengths else np.zeros(0)
        units = np.repeat(np.arange(len(per_unit_times), dtype=np.int64), lengths)
        if times.size and not np.all(np.isfinite(times)):
            raise DataError("a unit's spike times contain NaN or inf")
        order = np.argsort(times, kind="stable")
        return cls(times=times[order], units=units[order])

    def per_unit(self, n_units: int) -> list[np.ndarray]:
        """Split into one sorted array of spike times per unit."""
        order = np.argsort(self.units, kind="stable")
        bounds = np.searchsorted(self.units[order], np.arange(n_units + 1))
        sorted_times = self.times[order]
        return [sorted_times[bounds[i] : bounds[i + 1]] for i in range(n_units)]


@dataclass(frozen=True)
class Units:
    """The units (neurons / channels) table.

    Attributes:
        ids: [n_units] unique string id per unit, stable across files of one session.
        region: optional [n_units] brain-region label per unit.
        position: optional [n_units, d] channel / electrode position.
        quality: optional [n_units] quality label or score.
        heldout: [n_units] bool, True for units the source holds out (NLB held-out neurons).
    """

    ids: np.ndarray
    region: np.ndarray | None = None
    position: np.ndarray | None = None
    quality: np.ndarray | None = None
    heldout: np.ndarray | None = None

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids).astype(str)
        if ids.ndim != 1:
            raise DataError(f"field 'units.ids' must be 1-D, got shape {ids.shape}")
        if len(set(ids.tolist())) != ids.size:
            raise DataError("field 'units.ids' has duplicate unit ids")
        object.__setattr__(self, "ids", ids)
        for name in ("region", "position", "quality"):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value)
            if value.shape[:1] != ids.shape:
                raise DataError(f"field 'units.{name}' has {value.shape[0]} rows for {ids.size} units")
            object.__setattr__(self, name, value.astype(str) if name == "region" else value)
        heldout = np.zeros(ids.size, bool) if self.heldout is None else np.asarray(self.heldout, bool)
        if heldout.shape != ids.shape:
            raise DataError(f"field 'units.heldout' has shape {heldout.shape} for {ids.size} units")
        object.__setattr__(self, "heldout", heldout)

    def __len__(self) -> int:
        return int(self.ids.size)

    def select(self, index: np.ndarray) -> "Units":
        """Subset of units (integer indices or bool mask), in the given order."""
        take = lambda a: None if a is None else a[index]  # noqa: E731
        return Units(
            ids=self.ids[index],
            region=take(self.region),
            position=take(self.position),
            quality=take(self.quality),
            heldout=self.heldout[index],
        )


@dataclass(frozen=True)
class TimeSeries:
    """A sampled signal (behaviour, LFP summary...) on regular or irregular timestamps.

    Attributes:
        timestamps: float64 [T] sample times in seconds, non-decreasing.
        values: float [T, D] samples (1-D input becomes [T, 1]).
        columns: optional names of the D columns (e.g. ``("x", "y")``).
    """

    timestamps: np.ndarray
    values: np.ndarray
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamps", _check_times(self.timestamps, "", "timestamps"))
        values = np.asarray(self.values)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] != self.timestamps.size:
            raise DataError(
                f"time series values of shape {values.shape} do not match {self.timestamps.size} timestamps"
            )
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "columns", tuple(self.columns))

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    def slice(self, t0: float, t1: float, *, shift: float = 0.0) -> "TimeSeries":
        lo, hi = np.searchsorted(self.timestamps, [t0, t1], side="left")
        return TimeSeries(self.timestamps[lo:hi] - shift, self.values[lo:hi], self.columns)


@dataclass(frozen=True)
class Intervals:
    """Time intervals (trials, epochs) with per-interval columns.

    Attributes:
        start, end: float64 [K] interval bounds in seconds, start <= end.
        columns: name -> array [K] (condition id, ``split`` in train/val/test,
            event times such as ``move_onset_time``...). Columns whose name ends
            in ``_time`` are times and shift with the interval when slicing relative.
    """

    start: np.ndarray
    end: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        start = np.asarray(self.start, np.float64)
        end = np.asarray(self.end, np.float64)
        if start.shape != end.shape or start.ndim != 1:
            raise DataError(f"interval start/end shapes differ or are not 1-D: {start.shape} vs {end.shape}")
        if start.size and (not np.all(np.isfinite(start)) or not np.all(np.isfinite(end))):
            raise DataError("interval start/end contain NaN or inf")
        if np.any(end < start):
            raise DataError(f"interval {int(np.flatnonzero(end < start)[0])} ends before it starts")
        columns = {}
        for name, values in self.columns.items():
            values = np.asarray(values)
            if values.shape[:1] != start.shape:
                raise DataError(f"interval column '{name}' has {values.shape[0]} rows for {start.size} intervals")
            columns[name] = values
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(self, "columns", columns)

    def __len__(self) -> int:
        return int(self.start.size)

    def select(self, index: np.ndarray) -> "Intervals":
        return Intervals(self.start[index], self.end[index], {k: v[index] for k, v in self.columns.items()})

    def overlapping(self, t0: float, t1: float, *, shift: float = 0.0) -> "Intervals":
        """Intervals that intersect [t0, t1), unclipped, times shifted by ``-shift``."""
        keep = (self.start < t1) & (self.end > t0)
        kept = self.select(keep)
        if shift == 0.0:
            return kept
        columns = {
            k: (v - shift if k.endswith("_time") and np.issubdtype(v.dtype, np.floating) else v)
            for k, v in kept.columns.items()
        }
        return Intervals(kept.start - shift, kept.end - shift, columns)


@dataclass(frozen=True)
class Recording:
    """One session: spikes, units, behaviour, trials and metadata.

    Attributes:
        spikes: all spikes, sorted by time.
        units: the units table; ``spikes.units`` index into it.
        session: session id (unique across a corpus).
        subject: subject id.
        behavior: name -> :class:`TimeSeries` (``hand_vel``, ``cursor_pos``...).
        trials: trial table, or None.
        start, end: the recording's time domain ``[start, end)`` in seconds. Defaults to
            the first spike and just past the last spike (or behaviour sample).
        origin: absolute time of ``t = 0`` in this object's clock (0 unless sliced relative).
        bin_size: set when the source only had binned counts (spike times quantised to it).
        source: file the data came from, used in error messages.
        metadata: free-form extra information.
    """

    spikes: SpikeTrains
    units: Units
    session: str = "session"
    subject: str = ""
    behavior: dict[str, TimeSeries] = field(default_factory=dict)
    trials: Intervals | None = None
    start: float | None = None
    end: float | None = None
    origin: float = 0.0
    bin_size: float | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.units) == 0:
            raise DataError(f"{self.source or self.session}: empty recording (the units table has no units)")
        if len(self.spikes) and (self.spikes.units.min() < 0 or self.spikes.units.max() >= len(self.units)):
            bad = int(self.spikes.units.max() if self.spikes.units.max() >= len(self.units) else self.spikes.units.min())
            raise DataError(
                f"{_where(self.source, 'spikes.units')}: unit index {bad} out of range for {len(self.units)} units"
            )
        start, end = self.start, self.end
        if start is None or end is None:
            first, last = self._data_extent()
            start = first if start is None else start
            end = np.nextafter(last, np.inf) if end is None else end
        if not (np.isfinite(start) and np.isfinite(end)) or end < start:
            raise DataError(f"{self.source or self.session}: invalid time domain [{start}, {end})")
        object.__setattr__(self, "start", float(start))
        object.__setattr__(self, "end", float(end))

    def _data_extent(self) -> tuple[float, float]:
        candidates_lo, candidates_hi = [], []
        if len(self.spikes):
            candidates_lo.append(self.spikes.times[0])
            candidates_hi.append(self.spikes.times[-1])
        for series in self.behavior.values():
            if series.timestamps.size:
                candidates_lo.append(series.timestamps[0])
                candidates_hi.append(series.timestamps[-1])
        if self.trials is not None and len(self.trials):
            candidates_lo.append(self.trials.start.min())
            candidates_hi.append(self.trials.end.max())
        if not candidates_lo:
            return 0.0, 0.0
        return float(min(candidates_lo)), float(max(candidates_hi))

    @classmethod
    def from_binned(
        cls, counts: np.ndarray, bin_size: float, behaviour: dict[str, np.ndarray] | None = None, **kwargs: Any
    ) -> "Recording":
        """A recording from a [T, n_units] count matrix; see :func:`spikefm.data.binned.from_binned`.

        The result has ``bin_size`` set (spike times are quantised to it, placed deterministically).
        """
        from spikefm.data.binned import from_binned

        return from_binned(counts, bin_size, behaviour, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def n_spikes(self) -> int:
        return len(self.spikes)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def unit_keys(self) -> list[str]:
        """Globally unique ``"session/unit"`` keys, as identity embeddings use them."""
        return [f"{self.session}/{uid}" for uid in self.units.ids]

    def spike_counts(self) -> np.ndarray:
        """[n_units] total spikes per unit."""
        return np.bincount(self.spikes.units, minlength=self.n_units)

    # ------------------------------------------------------------------ slicing
    def slice(self, t0: float, t1: float, *, relative: bool = False) -> "Recording":
        """The part of the recording in ``[t0, t1)``; O(log n + k) by binary search.

        Args:
            t0, t1: bounds in this recording's clock; ``t1 > t0``.
            relative: if True, times in the result are shifted so that ``t0`` becomes 0
                (and ``origin`` records the absolute offset); else they stay absolute.
        """
        t0, t1 = float(t0), float(t1)
        if not (np.isfinite(t0) and np.isfinite(t1)) or t1 <= t0:
            raise DataError(f"{self.source or self.session}: window must have t1 > t0, got [{t0}, {t1})")
        lo, hi = np.searchsorted(self.spikes.times, [t0, t1], side="left")
        shift = t0 if relative else 0.0
        spikes = SpikeTrains(self.spikes.times[lo:hi] - shift, self.spikes.units[lo:hi])
        return replace(
            self,
            spikes=spikes,
            behavior={k: v.slice(t0, t1, shift=shift) for k, v in self.behavior.items()},
            trials=None if self.trials is None else self.trials.overlapping(t0, t1, shift=shift),
            start=t0 - shift,
            end=t1 - shift,
            origin=self.origin + shift,
        )

    def select_units(self, index: np.ndarray) -> "Recording":
        """Keep only the given units (indices or bool mask), re-indexing spikes."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        remap = np.full(self.n_units, -1, np.int64)
        remap[index] = np.arange(index.size)
        keep = remap[self.spikes.units] >= 0
        spikes = SpikeTrains(self.spikes.times[keep], remap[self.spikes.units[keep]])
        return replace(self, spikes=spikes, units=self.units.select(index))

    def window(self, t0: float, t1: float) -> "Window":
        """A :class:`Window` on ``[t0, t1)`` with times relative to ``t0``."""
        return Window(recording=self.slice(t0, t1, relative=True), t0=float(t0), t1=float(t1))

    # ------------------------------------------------------------------ binning
    def bin(self, bin_size: float, t0: float | None = None, t1: float | None = None) -> np.ndarray:
        """Spike counts per bin and unit, int64 [T, n_units].

        Bins are ``[t0 + i*bin_size, t0 + (i+1)*bin_size)``; ``T = ceil((t1 - t0) / bin_size)``
        (a tolerance of 1e-9 bins absorbs float error). Every spike in ``[t0, t1)`` is counted
        exactly once; a spike at exactly ``t1`` is not (it belongs to the next window). If the
        span is not a whole number of bins, the last bin is partial and ends at ``t1``.
        """
        if not bin_size > 0:
            raise DataError(f"bin_size must be > 0, got {bin_size}")
        t0 = self.start if t0 is None else float(t0)
        t1 = self.end if t1 is None else float(t1)
        if t1 <= t0:
            raise DataError(f"{self.source or self.session}: cannot bin an empty span [{t0}, {t1})")
        n_bins = max(1, int(np.ceil((t1 - t0) / bin_size - 1e-9)))
        lo, hi = np.searchsorted(self.spikes.times, [t0, t1], side="left")
        times, units = self.spikes.times[lo:hi], self.spikes.units[lo:hi]
        index = np.minimum(((times - t0) / bin_size).astype(np.int64), n_bins - 1)
        flat = np.bincount(index * self.n_units + units, minlength=n_bins * self.n_units)
        return flat.reshape(n_bins, self.n_units)

    def __repr__(self) -> str:
        return (
            f"Recording(session={self.session!r}, units={self.n_units}, spikes={self.n_spikes}, "
            f"span=[{self.start:.3f}, {self.end:.3f}) s, behavior={list(self.behavior)}, "
            f"trials={0 if self.trials is None else len(self.trials)})"
        )


@dataclass(frozen=True)
class Window:
    """A time slice ``[t0, t1)`` of one recording, with times relative to ``t0``.

    Attributes:
        recording: the sliced recording (spike times in ``[0, t1 - t0)``).
        t0, t1: absolute bounds in the parent recording's clock.
    """

    recording: Recording
    t0: float
    t1: float

    @property
    def duration(self) -> float:
        return self.t1 - self.t0

    @property
    def session(self) -> str:
        return self.recording.session


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def trusted(cls: type, **values: Any) -> Any:
    """An instance of the frozen dataclass ``cls`` built without running its checks.

    Only for values already validated as a whole, such as the rows of a spikefm store that
    :class:`~spikefm.data.store.LazyRecording` checked once on open: re-checking every
    window's spikes (sorted, finite, unit index in range) costs more than reading them.
    Every field must be given, already of the type the checks would produce.
    """
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    if values.keys() != names:
        raise TypeError(f"trusted({cls.__name__}) needs exactly the fields {sorted(names)}, got {sorted(values)}")
    instance = object.__new__(cls)
    try:
        instance.__dict__.update(values)  # what object.__setattr__ per field does, in one call
    except AttributeError:  # a slotted dataclass has no __dict__
        for name, value in values.items():
            object.__setattr__(instance, name, value)
    return instance

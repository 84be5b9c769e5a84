"""Which windows to cut from which recordings: random, sequential and trial-aligned samplers.

A sampler yields :class:`WindowSpec` (recording index and ``[t0, t1)`` in that recording's
clock); the dataset turns each into a :class:`~spikefm.data.recording.Window` with
``recordings[spec.recording_index].window(spec.t0, spec.t1)``.

All samplers are reproducible and DDP-aware:

- every epoch's windows are a pure function of ``(seed, epoch)``; call :meth:`set_epoch`
  before each epoch (as with ``torch.utils.data.DistributedSampler``) to get new ones;
  :meth:`resume_at` makes one epoch start part-way, so a resumed run sees the same windows as
  an uninterrupted one;
- each rank takes a disjoint, equal-length shard of the epoch's windows, padded by repeating
  windows from the start when they do not divide evenly (as ``DistributedSampler`` does), or,
  with ``drop_uneven=True``, cut to a multiple of the world size (no window twice; fewer than
  ``world_size`` windows of the epoch left out, a different few each shuffled epoch). When the
  epoch's windows divide evenly, every window is seen exactly once across ranks either way.
  All ranks must share the seed. ``rank`` / ``world_size`` default to ``torch.distributed``
  when it is initialised, else 0 / 1.

Recordings (or allowed intervals) shorter than the window are skipped with a warning; if no
recording can hold a single window the sampler raises ``ValueError``.

>>> import numpy as np
>>> from spikefm.data.recording import Recording, SpikeTrains, Units
>>> rec = Recording(SpikeTrains(np.array([0.5]), np.array([0])), Units(np.array(["a"])), start=0.0, end=3.0)
>>> [(w.t0, w.t1) for w in SequentialWindowSampler([rec], window_length=1.0)]
[(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator, Sequence, Union

import numpy as np
import torch.distributed as dist

from spikefm.data.recording import Intervals, Recording

__all__ = [
    "WindowSpec",
    "RandomWindowSampler",
    "SequentialWindowSampler",
    "TrialWindowSampler",
    "split_trials",
    "trial_split_intervals",
]

_TOL = 1e-9  # seconds; absorbs float error when comparing window edges to domain edges

# None: the whole recording; str: trials of that split; else one Intervals (or None) per recording.
IntervalsArg = Union[None, str, Sequence[Union[Intervals, None]]]


@dataclass(frozen=True)
class WindowSpec:
    """One window to cut: ``recordings[recording_index].window(t0, t1)``.

    Attributes:
        recording_index: index into the sampler's list of recordings.
        t0, t1: window bounds in seconds, in that recording's clock; ``t1 > t0``.
        trial: row of the recording's trial table the window is aligned to
            (:class:`TrialWindowSampler` only), else None.
    """

    recording_index: int
    t0: float
    t1: float
    trial: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.t0) and math.isfinite(self.t1) and self.t1 > self.t0):
            raise ValueError(f"a window needs finite t1 > t0, got [{self.t0}, {self.t1})")

    @property
    def duration(self) -> float:
        return self.t1 - self.t0


# ---------------------------------------------------------------------- trial splits
def _split_column(recording: Recording) -> np.ndarray:
    """The trial table's ``split`` column as strings, with an error saying what is missing."""
    name = recording.source or recording.session
    if recording.trials is None or len(recording.trials) == 0:
        raise ValueError(f"{name}: recording has no trials table, so it cannot be split by trial")
    if "split" not in recording.trials.columns:
        available = sorted(recording.trials.columns)
        raise ValueError(
            f"{name}: trials table has no 'split' column (columns: {available}); "
            "add one with values such as 'train' / 'val' / 'test'"
        )
    return np.asarray(recording.trials.columns["split"]).astype(str)


def split_trials(recording: Recording, split: str) -> Intervals:
    """The trials of ``recording`` whose ``split`` column equals ``split``.

    Raises:
        ValueError: no trials table, no ``split`` column, or ``split`` is not one of its
            values (the message lists the available ones).
    """
    column = _split_column(recording)
    if split not in set(column.tolist()):
        raise ValueError(
            f"{recording.source or recording.session}: no trials with split {split!r}; "
            f"available splits: {sorted(set(column.tolist()))}"
        )
    return recording.trials.select(column == split)


def trial_split_intervals(recordings: Sequence[Recording], split: str) -> list[Intervals]:
    """One :class:`Intervals` per recording: its trials in ``split`` (possibly none).

    Raises:
        ValueError: a recording lacks trials or a ``split`` column, or no recording has a
            single trial in ``split`` (the message lists the splits that exist).
    """
    columns = [_split_column(recording) for recording in recordings]
    found = set().union(*(set(c.tolist()) for c in columns)) if columns else set()
    if split not in found:
        raise ValueError(f"no trials with split {split!r} in any recording; available splits: {sorted(found)}")
    return [recording.trials.select(column == split) for recording, column in zip(recordings, columns)]


# ---------------------------------------------------------------------- shared machinery
def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values win; otherwise torch.distributed's, when initialised; otherwise 0 / 1."""
    initialised = dist.is_available() and dist.is_initialized()
    if world_size is None:
        world_size = dist.get_world_size() if initialised else 1
    if rank is None:
        rank = dist.get_rank() if initialised else 0
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need world_size >= 1 and 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return int(rank), int(world_size)


def _domains(recordings: Sequence[Recording], intervals: IntervalsArg) -> list[np.ndarray]:
    """Per recording, the allowed spans [K, 2] (start, end), clipped to the recording's domain."""
    if not recordings:
        raise ValueError("need at least one recording to sample windows from")
    if isinstance(intervals, str):
        intervals = trial_split_intervals(recordings, intervals)
    if intervals is None:
        return [np.array([[r.start, r.end]]) for r in recordings]
    if len(intervals) != len(recordings):
        raise ValueError(f"intervals has {len(intervals)} entries for {len(recordings)} recordings; give one each")
    spans = []
    for recording, allowed in zip(recordings, intervals):
        if allowed is None:
            spans.append(np.array([[recording.start, recording.end]]))
            continue
        start = np.maximum(allowed.start, recording.start)
        end = np.minimum(allowed.end, recording.end)
        order = np.argsort(start, kind="stable")
        spans.append(np.stack([start, end], axis=1)[order][end[order] > start[order]].reshape(-1, 2))
    return spans


def _fitting_spans(
    recordings: Sequence[Recording], spans: list[np.ndarray], window_length: float
) -> list[tuple[int, float, float]]:
    """(recording index, start, end) of every span that holds a whole window; warns about the rest."""
    fitting, skipped = [], []
    for index, recording_spans in enumerate(spans):
        fits = (recording_spans[:, 1] - recording_spans[:, 0]) >= window_length - _TOL
        fitting += [(index, float(s), float(e)) for s, e in recording_spans[fits]]
        if not fits.any():
            skipped.append(recordings[index].session)
    if not fitting:
        longest = max((float(np.max(s[:, 1] - s[:, 0])) for s in spans if s.size), default=0.0)
        raise ValueError(
            f"window_length {window_length} s is longer than every recording / allowed interval "
            f"(the longest is {longest:.6g} s); use a shorter window"
        )
    if skipped:
        warnings.warn(
            f"skipping {len(skipped)} recording(s) with no span of at least {window_length} s: {skipped}",
            stacklevel=3,
        )
    return fitting


def _check_length(window_length: float) -> float:
    if not (math.isfinite(window_length) and window_length > 0):
        raise ValueError(f"window_length must be a finite number of seconds > 0, got {window_length}")
    return float(window_length)


class _ShardedSampler(ABC):
    """Epoch-seeded window lists, split into equal disjoint shards across DDP ranks."""

    def __init__(self, *, seed: int, rank: int | None, world_size: int | None, drop_uneven: bool = False) -> None:
        self.seed = int(seed)
        self.rank, self.world_size = _resolve_rank(rank, world_size)
        self.drop_uneven = bool(drop_uneven)
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose windows (and order) the next iteration yields."""
        self.epoch = int(epoch)

    def resume_at(self, epoch: int, position: int) -> None:
        """Start the next iteration over ``epoch`` at this rank's ``position``-th window (once).

        Later epochs, and any epoch other than ``epoch``, are whole; ``len()`` stays the whole
        epoch's length. Used to resume a run that stopped mid-epoch.
        """
        if epoch < 0 or not 0 <= position <= len(self):
            raise ValueError(f"resume_at needs epoch >= 0 and 0 <= position <= {len(self)}, got {epoch}, {position}")
        self._resume = (int(epoch), int(position))

    @abstractmethod
    def epoch_windows(self, epoch: int) -> list[WindowSpec]:
        """Every rank's windows of ``epoch`` in order, before sharding (the same on all ranks)."""

    @property
    @abstractmethod
    def total_windows(self) -> int:
        """Windows per epoch over all ranks, before padding."""

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))

    def __len__(self) -> int:
        if self.drop_uneven:
            return self.total_windows // self.world_size
        return math.ceil(self.total_windows / self.world_size)

    def __iter__(self) -> Iterator[WindowSpec]:
        windows = self.epoch_windows(self.epoch)
        if self.drop_uneven:
            return iter(windows[: len(self) * self.world_size][self.rank :: self.world_size])
        padded_size = len(self) * self.world_size
        # Pad by repeating from the start (as DistributedSampler does) so every rank gets len(self).
        repeats = math.ceil(padded_size / len(windows))
        padded = (windows * repeats)[:padded_size]
        shard = padded[self.rank :: self.world_size]
        if self._resume is not None and self._resume[0] <= self.epoch:
            epoch, position = self._resume
            self._resume = None
            if epoch == self.epoch:
                shard = shard[position:]
        return iter(shard)


# ---------------------------------------------------------------------- samplers
class RandomWindowSampler(_ShardedSampler):
    """Windows of a fixed length at random positions, new ones every epoch.

    Each window lies wholly inside one allowed span (by default a whole recording): a span is
    picked with probability proportional to its duration, then the start uniformly within it,
    so every second of data is about equally likely to be seen. Spans shorter than the window
    are skipped (a recording with none left triggers a warning).

    Args:
        recordings: the recordings; ``WindowSpec.recording_index`` indexes this list.
        window_length: seconds per window.
        n_windows_per_epoch: windows per epoch over all ranks; None: enough to cover the
            allowed time once on average (``ceil(total allowed seconds / window_length)``).
        seed: base seed; an epoch's windows depend only on (seed, epoch).
        intervals: None (whole recordings), a split name such as ``"train"`` (that split's
            trials, via :func:`trial_split_intervals`), or one Intervals (or None) per recording.
        rank, world_size: DDP shard; default from torch.distributed, else 0 / 1.
        drop_uneven: cut the epoch to a multiple of world_size instead of padding (no window twice).
    """

    def __init__(
        self,
        recordings: Sequence[Recording],
        window_length: float,
        n_windows_per_epoch: int | None = None,
        seed: int = 0,
        intervals: IntervalsArg = None,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        drop_uneven: bool = False,
    ) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size, drop_uneven=drop_uneven)
        self.window_length = _check_length(window_length)
        spans = _fitting_spans(recordings, _domains(recordings, intervals), self.window_length)
        self._index = np.array([s[0] for s in spans], np.int64)
        self._start = np.array([s[1] for s in spans])
        self._end = np.array([s[2] for s in spans])
        durations = self._end - self._start
        self._weights = durations / durations.sum()
        if n_windows_per_epoch is None:
            n_windows_per_epoch = math.ceil(durations.sum() / self.window_length - _TOL)
        if n_windows_per_epoch < 1:
            raise ValueError(f"n_windows_per_epoch must be >= 1, got {n_windows_per_epoch}")
        self.n_windows_per_epoch = int(n_windows_per_epoch)

    @property
    def total_windows(self) -> int:
        return self.n_windows_per_epoch

    def epoch_windows(self, epoch: int) -> list[WindowSpec]:
        rng = self._rng(epoch)
        span = rng.choice(self._index.size, size=self.n_windows_per_epoch, p=self._weights)
        slack = np.maximum(self._end[span] - self._start[span] - self.window_length, 0.0)
        t0 = self._start[span] + rng.random(self.n_windows_per_epoch) * slack
        return [
            WindowSpec(int(i), float(a), float(a) + self.window_length) for i, a in zip(self._index[span], t0)
        ]


class SequentialWindowSampler(_ShardedSampler):
    """Windows tiling each recording (or allowed span) from its start, in time order.

    Windows start at ``start + k * step``. With ``drop_last=False`` the tail that no whole
    window reaches is covered by one shorter window ending at the span's end, so with
    ``step == window_length`` the windows partition the data exactly (what evaluation over a
    whole recording needs). With ``drop_last=True`` only whole windows are kept and spans
    shorter than the window are skipped with a warning.

    Args:
        recordings: the recordings; ``WindowSpec.recording_index`` indexes this list.
        window_length: seconds per window.
        step: seconds between window starts; None: ``window_length`` (no overlap).
        drop_last: drop the shorter tail window instead of keeping it.
        intervals: as for :class:`RandomWindowSampler`.
        shuffle: shuffle the windows each epoch (seeded by ``seed`` and the epoch).
        seed: seed for ``shuffle``.
        rank, world_size: DDP shard; default from torch.distributed, else 0 / 1.
        drop_uneven: cut the epoch to a multiple of world_size instead of padding (no window twice).
    """

    def __init__(
        self,
        recordings: Sequence[Recording],
        window_length: float,
        step: float | None = None,
        drop_last: bool = False,
        intervals: IntervalsArg = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_uneven: bool = False,
    ) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size, drop_uneven=drop_uneven)
        self.window_length = _check_length(window_length)
        self.step = self.window_length if step is None else _check_length(step)
        self.drop_last, self.shuffle = drop_last, shuffle
        spans = _domains(recordings, intervals)
        if drop_last:
            fitting = _fitting_spans(recordings, spans, self.window_length)
        else:
            fitting = [(i, float(s), float(e)) for i, r in enumerate(spans) for s, e in r]
        self._windows = [w for span in fitting for w in self._tile(*span)]
        if not self._windows:
            raise ValueError("no windows: every recording / allowed interval is empty")

    def _tile(self, index: int, start: float, end: float) -> list[WindowSpec]:
        n_whole = 0
        if end - start >= self.window_length - _TOL:
            n_whole = int(math.floor((end - start - self.window_length) / self.step + _TOL)) + 1
        # Edges by multiplication, not accumulation, so they do not drift over long recordings;
        # with step == window_length a window's end is computed exactly as the next one's start.
        abutting = self.step == self.window_length
        windows = [
            WindowSpec(
                index,
                start + k * self.step,
                min(start + (k + 1) * self.step if abutting else start + k * self.step + self.window_length, end),
            )
            for k in range(n_whole)
        ]
        if windows and abs(windows[-1].t1 - end) <= _TOL:  # rounding must not leave a sliver after the last window
            windows[-1] = WindowSpec(index, windows[-1].t0, end)
        tail = start + n_whole * self.step
        if not self.drop_last and tail < end - _TOL and (not windows or windows[-1].t1 < end - _TOL):
            windows.append(WindowSpec(index, tail, end))
        return windows

    @property
    def total_windows(self) -> int:
        return len(self._windows)

    def epoch_windows(self, epoch: int) -> list[WindowSpec]:
        if not self.shuffle:
            return list(self._windows)
        return [self._windows[i] for i in self._rng(epoch).permutation(len(self._windows))]


class TrialWindowSampler(_ShardedSampler):
    """One window per trial, ``[event - before, event + after)``, aligned to a trial event.

    Trials whose event time is NaN, or whose window leaves the recording's domain, are skipped
    with a warning (so a window never contains time the recording does not cover).

    Args:
        recordings: the recordings; ``WindowSpec.recording_index`` indexes this list.
        align: ``"start"`` or ``"end"`` of the trial, or the name of a trial-table column of
            absolute event times (e.g. ``"move_onset_time"``).
        before: seconds before the event the window starts (may be negative).
        after: seconds after the event the window ends; None: at each trial's end.
        split: keep only trials whose ``split`` column equals this (e.g. ``"test"``); None: all.
        shuffle: shuffle the windows each epoch (seeded by ``seed`` and the epoch).
        seed: seed for ``shuffle``.
        rank, world_size: DDP shard; default from torch.distributed, else 0 / 1.
        drop_uneven: cut the epoch to a multiple of world_size instead of padding (no window twice).
    """

    def __init__(
        self,
        recordings: Sequence[Recording],
        align: str = "start",
        before: float = 0.0,
        after: float | None = None,
        split: str | None = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        drop_uneven: bool = False,
    ) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size, drop_uneven=drop_uneven)
        if not recordings:
            raise ValueError("need at least one recording to sample trial windows from")
        self.align, self.before, self.after = align, float(before), after
        self.split, self.shuffle = split, shuffle
        if split is not None:
            trial_split_intervals(recordings, split)  # fails early, listing the available splits
        self._windows, skipped = [], 0
        for index, recording in enumerate(recordings):
            windows, n_skipped = self._recording_windows(index, recording)
            self._windows += windows
            skipped += n_skipped
        if skipped:
            warnings.warn(
                f"skipped {skipped} trial(s) with no event time or a window outside the recording", stacklevel=2
            )
        if not self._windows:
            raise ValueError(f"no trial windows: every trial was skipped (align={align!r}, split={split!r})")

    def _event_times(self, recording: Recording) -> np.ndarray:
        trials = recording.trials
        name = recording.source or recording.session
        if trials is None:
            raise ValueError(f"{name}: recording has no trials table; TrialWindowSampler needs one")
        if self.align == "start":
            return trials.start
        if self.align == "end":
            return trials.end
        if self.align not in trials.columns:
            raise ValueError(
                f"{name}: cannot align to {self.align!r}: not 'start', 'end' or a trial column "
                f"(columns: {sorted(trials.columns)})"
            )
        values = np.asarray(trials.columns[self.align])
        if not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"{name}: trial column {self.align!r} holds {values.dtype}, not event times in seconds")
        return values.astype(np.float64)

    def _recording_windows(self, index: int, recording: Recording) -> tuple[list[WindowSpec], int]:
        event = self._event_times(recording)
        rows = np.arange(len(event))
        if self.split is not None:
            rows = rows[_split_column(recording) == self.split]
        t0 = event[rows] - self.before
        t1 = event[rows] + self.after if self.after is not None else recording.trials.end[rows]
        valid = np.isfinite(t0) & np.isfinite(t1) & (t1 > t0)
        valid &= (t0 >= recording.start - _TOL) & (t1 <= recording.end + _TOL)
        windows = [
            WindowSpec(index, float(a), float(b), int(r)) for a, b, r in zip(t0[valid], t1[valid], rows[valid])
        ]
        return windows, int((~valid).sum())

    @property
    def total_windows(self) -> int:
        return len(self._windows)

    def epoch_windows(self, epoch: int) -> list[WindowSpec]:
        if not self.shuffle:
            return list(self._windows)
        return [self._windows[i] for i in self._rng(epoch).permutation(len(self._windows))]

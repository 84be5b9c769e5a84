"""The sealed test split: selection sees a recording with its test data cut out; scoring opens the rest once.

:func:`seal` splits a recording with a ``trials.split`` column in two:

* the **development** recording: the test trials are gone from the trial table, and every spike and
  behaviour sample inside a test trial is gone too, so nothing downstream of selection (a search, a
  training run, a baseline's alpha) can read test data even by accident;
* a :class:`SealedTest` holding the whole recording, which only :meth:`SealedTest.open` hands out,
  and only after the protocol has called :meth:`SealedTest.release` (selection finished), and only
  once. Opening it earlier raises :class:`SealedTestError`.

>>> import numpy as np
>>> from spikefm.data.binned import from_binned
>>> from spikefm.data.splits import contiguous_blocks
>>> rec = contiguous_blocks(from_binned(np.ones((100, 2), int), 0.1), block=1.0)
>>> dev, test = seal(rec, name="toy")
>>> sorted(set(dev.trials.columns["split"].tolist())), float(dev.spikes.times.max()) < 8.0
(['train', 'val'], True)
>>> test.open()
Traceback (most recent call last):
...
spikefm.eval.sealed.SealedTestError: toy: the test split is sealed until selection has finished (open() before release())
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from spikefm.data.recording import DataError, Intervals, Recording, SpikeTrains

__all__ = ["SealedTestError", "SealedTest", "seal", "fingerprint", "split_sizes"]


class SealedTestError(RuntimeError):
    """Test data was asked for before the final scoring step, or a second time."""


class SealedTest:
    """The full recording (test trials included), handed out once, after :meth:`release`.

    Attributes:
        name: the data's name, used in messages.
        fingerprint: hash of the whole recording, computed when sealed (a cache key, not a read).
        reads: how many times :meth:`open` has returned the data (0 or 1).
    """

    def __init__(self, recording: Recording, *, name: str) -> None:
        self._recording = recording
        self.name = name
        self.fingerprint = fingerprint(recording)
        self._released = False
        self.reads = 0

    def release(self) -> None:
        """Mark selection as finished: the next :meth:`open` may return the test data."""
        self._released = True

    def open(self) -> Recording:
        """The whole recording, for the final scoring step only (once, after :meth:`release`)."""
        if not self._released:
            raise SealedTestError(
                f"{self.name}: the test split is sealed until selection has finished (open() before release())"
            )
        if self.reads:
            raise SealedTestError(f"{self.name}: the test split was already read once by the final scoring step")
        self.reads += 1
        return self._recording


def _inside(times: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """bool mask: ``times`` inside any ``[start, end)`` (intervals may overlap)."""
    if start.size == 0:
        return np.zeros(times.shape, bool)
    order = np.argsort(start)
    start, end = start[order], np.maximum.accumulate(end[order])  # running max end covers overlaps
    index = np.searchsorted(start, times, side="right") - 1
    return (index >= 0) & (times < end[np.maximum(index, 0)])


def seal(rec: Recording, *, name: str | None = None, test_split: str = "test") -> tuple[Recording, SealedTest]:
    """(development recording without the test trials' data, :class:`SealedTest` of the whole recording)."""
    where = name or rec.source or rec.session
    if rec.trials is None or "split" not in rec.trials.columns:
        raise DataError(f"{where}: field 'trials.split' is missing; the protocol needs train/val/test trials")
    labels = rec.trials.columns["split"].astype(str)
    test = labels == test_split
    missing = [s for s in ("train", "val", test_split) if not np.any(labels == s)]
    if missing:
        raise DataError(f"{where}: no trials in split(s) {missing}; found {sorted(set(labels.tolist()))}")
    t_start, t_end = rec.trials.start[test], rec.trials.end[test]
    keep = ~_inside(rec.spikes.times, t_start, t_end)
    behavior = {
        key: replace(series, timestamps=series.timestamps[ok], values=series.values[ok])
        for key, series in rec.behavior.items()
        for ok in [~_inside(series.timestamps, t_start, t_end)]
    }
    dev = replace(
        rec,
        spikes=SpikeTrains(rec.spikes.times[keep], rec.spikes.units[keep]),
        behavior=behavior,
        trials=rec.trials.select(~test),
    )
    return dev, SealedTest(rec, name=where)


def fingerprint(rec: Recording) -> str:
    """A hash of everything in ``rec`` that a score depends on (spikes, units, behaviour, trials)."""
    digest = hashlib.sha256()
    for array in (rec.spikes.times, rec.spikes.units, rec.units.heldout, np.array([rec.start, rec.end])):
        digest.update(np.ascontiguousarray(array).tobytes())
    for key in sorted(rec.behavior):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(rec.behavior[key].timestamps).tobytes())
        digest.update(np.ascontiguousarray(rec.behavior[key].values).tobytes())
    if rec.trials is not None:
        _hash_intervals(digest, rec.trials)
    return digest.hexdigest()[:16]


def _hash_intervals(digest, trials: Intervals) -> None:
    digest.update(trials.start.tobytes())
    digest.update(trials.end.tobytes())
    for key in sorted(trials.columns):
        digest.update(key.encode())
        digest.update(np.asarray(trials.columns[key]).astype(str).tobytes())


def split_sizes(rec: Recording) -> dict[str, int]:
    """Trials (or blocks) per split."""
    labels, counts = np.unique(rec.trials.columns["split"].astype(str), return_counts=True)
    return {str(k): int(v) for k, v in zip(labels, counts)}

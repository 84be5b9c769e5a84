"""Trial-aligned arrays for scoring: counts [trials, time, units], behaviour [trials, time, dims] and the recorded
behaviour samples inside each trial window."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikefm.data.recording import DataError, Recording
from spikefm.eval.samples import BehaviorSamples, recorded_samples

__all__ = ["TrialArrays", "trial_arrays", "trial_starts"]


@dataclass(frozen=True)
class TrialArrays:
    """One split of one session, binned per trial.

    Attributes:
        counts: int64 [K, T, N] spike counts.
        behavior: float32 [K, T, D] behaviour at bin centres (linear interpolation), or None.
        conditions: [K] condition labels, or None.
        starts: float64 [K] absolute window start of each trial.
        heldout: bool [N] NLB held-out units.
        bin_size: seconds per bin.
        samples: the recorded behaviour samples inside each trial window (decoders are scored there,
            :mod:`spikefm.eval.samples`), or None (then scores use ``behavior`` at bin centres).
        regions: str [N] each unit's brain-region label ("" where unknown), or None when the recording has none.
    """

    counts: np.ndarray
    behavior: np.ndarray | None
    conditions: np.ndarray | None
    starts: np.ndarray
    heldout: np.ndarray
    bin_size: float
    samples: BehaviorSamples | None = None
    regions: np.ndarray | None = None

    def take(self, index: np.ndarray) -> "TrialArrays":
        """The trials ``index`` (in that order, repeats allowed: a bootstrap resample), samples re-indexed."""
        index = np.asarray(index, dtype=np.int64)
        samples = None
        if self.samples is not None:
            rows = [np.flatnonzero(self.samples.trial == k) for k in index]
            pick = np.concatenate(rows) if rows else np.zeros(0, np.int64)
            new_trial = np.concatenate([np.full(r.size, i, np.int64) for i, r in enumerate(rows)]) if rows else pick
            samples = BehaviorSamples(new_trial, self.samples.times[pick], self.samples.values[pick])
        return TrialArrays(
            counts=self.counts[index],
            behavior=None if self.behavior is None else self.behavior[index],
            conditions=None if self.conditions is None else self.conditions[index],
            starts=self.starts[index],
            heldout=self.heldout,
            bin_size=self.bin_size,
            samples=samples,
            regions=self.regions,
        )

    @property
    def heldin_counts(self) -> np.ndarray:
        return self.counts[..., ~self.heldout]

    @property
    def heldout_counts(self) -> np.ndarray:
        return self.counts[..., self.heldout]


def trial_starts(rec: Recording, split: str | None, *, align: str = "start", before: float = 0.0) -> np.ndarray:
    """Absolute window starts of the trials in ``split`` (all trials when None)."""
    if rec.trials is None or len(rec.trials) == 0:
        raise DataError(f"{rec.source or rec.session}: no trials table; trial-aligned evaluation needs trials")
    keep = np.ones(len(rec.trials), bool)
    if split is not None:
        if "split" not in rec.trials.columns:
            raise DataError(f"{rec.source or rec.session}: trials have no 'split' column")
        keep = rec.trials.columns["split"].astype(str) == split
    anchor = rec.trials.start if align == "start" else rec.trials.columns[align].astype(np.float64)
    return anchor[keep] - before


def trial_arrays(
    rec: Recording,
    *,
    split: str | None,
    bin_size: float,
    window: float,
    behavior_key: str | None = "hand_vel",
    align: str = "start",
    before: float = 0.0,
) -> TrialArrays:
    """Bin every trial of ``split`` into ``window`` seconds of ``bin_size`` bins."""
    starts = trial_starts(rec, split, align=align, before=before)
    if starts.size == 0:
        raise DataError(f"{rec.source or rec.session}: no trials in split {split!r}")
    counts = np.stack([rec.bin(bin_size, t0, t0 + window) for t0 in starts])  # [K, T, N]
    behavior, samples = None, None
    if behavior_key is not None and behavior_key in rec.behavior:
        samples = recorded_samples(rec, starts, window, behavior_key)
        series = rec.behavior[behavior_key]
        centres = starts[:, None] + (np.arange(counts.shape[1]) + 0.5) * bin_size  # [K, T]
        behavior = np.stack(
            [np.interp(centres, series.timestamps, series.values[:, d]) for d in range(series.dim)], axis=-1
        ).astype(np.float32)
    conditions = None
    if rec.trials is not None and "condition" in rec.trials.columns:
        keep = np.ones(len(rec.trials), bool) if split is None else rec.trials.columns["split"].astype(str) == split
        conditions = rec.trials.columns["condition"][keep]
    regions = None if rec.units.region is None else np.asarray(rec.units.region).astype(str)
    return TrialArrays(counts, behavior, conditions, starts, rec.units.heldout.copy(), bin_size, samples, regions)

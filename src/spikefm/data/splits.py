"""Evaluation splits for recordings that ship without them.

Continuous recordings (reaching sessions, rat foraging) have no trial table, and the NLB test
file has every trial marked ``test`` and no held-out units. These helpers add what training
and scoring read: a trial table with a ``split`` column, and a ``units.heldout`` mask.

* :func:`contiguous_blocks` cuts time into back-to-back blocks and labels them in time order
  (first 70% train, next 10% val, last 20% test by default): held-out data is a contiguous
  stretch, never bins interleaved with training bins, so slow drifts and autocorrelated
  behaviour cannot leak from train into test.
* :func:`merge_split_runs` joins back-to-back trials of one split into one interval, so a
  random-window sampler can draw windows that straddle block edges.
* :func:`ordered_trial_splits` relabels existing trials in time order (after dropping some);
  :func:`shuffle_trial_splits` relabels them by a seeded permutation.
* :func:`hold_out_units` marks a seeded random fraction of units held-out (co-smoothing).

>>> import numpy as np
>>> from spikefm.data.binned import from_binned
>>> rec = contiguous_blocks(from_binned(np.ones((100, 2), int), 0.1), block=1.0)
>>> rec.trials.columns["split"].tolist()
['train', 'train', 'train', 'train', 'train', 'train', 'train', 'val', 'test', 'test']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from spikefm.data.recording import DataError, Intervals, Recording

__all__ = [
    "DEFAULT_FRACTIONS",
    "contiguous_blocks",
    "merge_split_runs",
    "ordered_trial_splits",
    "shuffle_trial_splits",
    "hold_out_units",
]

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.7, "val": 0.1, "test": 0.2}


def _labels(n: int, fractions: dict[str, float], where: str) -> np.ndarray:
    """``n`` split labels in the order of ``fractions``, sizes rounded on cumulative fractions."""
    values = np.array(list(fractions.values()), np.float64)
    if n < len(fractions) or np.any(values <= 0) or not np.isclose(values.sum(), 1.0):
        raise DataError(
            f"{where}: cannot split {n} blocks/trials by fractions {fractions} "
            "(need positive fractions summing to 1 and at least one block/trial per split)"
        )
    edges = np.round(np.cumsum(values) * n).astype(int)
    sizes = np.diff(np.r_[0, edges])
    if np.any(sizes == 0):
        raise DataError(f"{where}: fractions {fractions} leave a split empty with {n} blocks/trials")
    return np.repeat(np.array(list(fractions), dtype=object), sizes).astype(str)


def contiguous_blocks(
    rec: Recording,
    *,
    block: float,
    fractions: dict[str, float] | None = None,
    t0: float | None = None,
    t1: float | None = None,
) -> Recording:
    """``rec`` with a trial table of back-to-back ``block``-second intervals labelled by split in time order.

    Args:
        rec: the recording (any existing trial table is replaced).
        block: block length in seconds; the tail shorter than one block is left out.
        fractions: split name -> fraction of blocks, assigned in this order along time.
        t0, t1: the span to cut (default the recording's ``[start, end)``).
    """
    t0 = rec.start if t0 is None else float(t0)
    t1 = rec.end if t1 is None else float(t1)
    n = int(np.floor((t1 - t0) / block + 1e-9))
    where = rec.source or rec.session
    if not block > 0 or n < 1:
        raise DataError(f"{where}: cannot cut [{t0}, {t1}) into blocks of {block} s")
    start = t0 + np.arange(n) * block
    split = _labels(n, fractions or DEFAULT_FRACTIONS, where)
    return replace(rec, trials=Intervals(start, start + block, {"split": split}))


def merge_split_runs(rec: Recording, splits: Sequence[str] | None = None) -> Recording:
    """``rec`` with each run of touching, same-split trials merged into one interval (``split`` kept).

    ``splits``: merge runs of these splits only (default all); the others keep their trials, e.g. so that
    training reads random windows across the train split's blocks while validation reads every val block.
    """
    if rec.trials is None or "split" not in rec.trials.columns:
        raise DataError(f"{rec.source or rec.session}: field 'trials.split' is missing; nothing to merge")
    order = np.argsort(rec.trials.start, kind="stable")
    start, end = rec.trials.start[order], rec.trials.end[order]
    split = rec.trials.columns["split"].astype(str)[order]
    joins = (start[1:] <= end[:-1] + 1e-9) & (split[1:] == split[:-1])
    if splits is not None:
        joins &= np.isin(split[1:], list(splits))
    new_run = np.r_[True, ~joins]
    last = np.r_[np.flatnonzero(new_run)[1:], start.size] - 1
    merged = Intervals(start[new_run], end[last], {"split": split[new_run]})
    return replace(rec, trials=merged)


def ordered_trial_splits(rec: Recording, *, fractions: dict[str, float] | None = None) -> Recording:
    """``rec`` with its trials relabelled ``split`` in time order (first 70% train, ... by default).

    Use after dropping trials (e.g. blocks where nothing happens), so every split gets its share.
    """
    return _relabel(rec, fractions, None)


def shuffle_trial_splits(rec: Recording, *, seed: int, fractions: dict[str, float] | None = None) -> Recording:
    """``rec`` with its trials relabelled ``split`` by a seeded random permutation."""
    return _relabel(rec, fractions, seed)


def _relabel(rec: Recording, fractions: dict[str, float] | None, seed: int | None) -> Recording:
    if rec.trials is None or len(rec.trials) == 0:
        raise DataError(f"{rec.source or rec.session}: field 'trials' is missing; nothing to split")
    labels = _labels(len(rec.trials), fractions or DEFAULT_FRACTIONS, rec.source or rec.session)
    order = np.argsort(rec.trials.start, kind="stable")
    if seed is not None:
        order = order[np.random.default_rng(seed).permutation(order.size)]
    split = np.empty(labels.size, dtype=labels.dtype)
    split[order] = labels
    columns = {**rec.trials.columns, "split": split}
    return replace(rec, trials=Intervals(rec.trials.start, rec.trials.end, columns))


def hold_out_units(rec: Recording, *, fraction: float, seed: int) -> Recording:
    """``rec`` with ``round(fraction * n_units)`` units, drawn with ``seed``, marked held-out."""
    n = int(round(fraction * rec.n_units))
    if not 0 < n < rec.n_units:
        raise DataError(
            f"{rec.source or rec.session}: holding out {fraction} of {rec.n_units} units leaves none on a side"
        )
    heldout = np.zeros(rec.n_units, bool)
    heldout[np.random.default_rng(seed).choice(rec.n_units, n, replace=False)] = True
    return replace(rec, units=replace(rec.units, heldout=heldout))

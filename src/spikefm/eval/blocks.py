"""Contiguous-block decoding on a continuous recording (no trials): the workflow of the real-data table.

A continuous session (a reaching session, a rat foraging) is cut into back-to-back blocks labelled in time
order (first 70% train, next 10% val, last 20% test; :func:`~spikefm.data.splits.contiguous_blocks`), so held-out
data is one contiguous stretch; behaviour is z-scored with the training blocks' statistics before any decoder
sees it (R2 then weighs dimensions alike). :func:`block_recording` does both.

:func:`spikefm.eval.bench.file_suite` runs the full protocol (sealed test, seeds, intervals) on such a recording;
``spikefm bench --data FILE`` is the one-command form.

>>> import numpy as np
>>> from spikefm.data.binned import from_binned
>>> rng = np.random.default_rng(0)
>>> rec = from_binned(rng.poisson(2.0, (400, 3)), 0.05, {"vel": rng.normal(size=(400, 2))})
>>> rec = block_recording(rec, block=1.0, behavior_key="vel")
>>> sorted(set(rec.trials.columns["split"].tolist())), bool(rec.metadata["vel_scale"][0] > 0)
(['test', 'train', 'val'], True)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spikefm.data.recording import DataError, Recording, TimeSeries
from spikefm.data.splits import contiguous_blocks

__all__ = ["zscore_behaviour", "block_recording"]


def zscore_behaviour(rec: Recording, key: str, columns: slice | None, train_until: float) -> Recording:
    """Keep only ``columns`` of behaviour ``key`` (other behaviour is dropped), z-scored with the statistics of
    samples before ``train_until``.

    The per-column standard deviation is kept as ``metadata[key + "_scale"]`` (to report errors in the
    original units). Columns that are constant over the training samples are an error (nothing to decode).
    """
    if key not in rec.behavior:
        raise DataError(f"{rec.source or rec.session}: no behaviour {key!r}; available: {sorted(rec.behavior)}")
    series = rec.behavior[key]
    columns = columns or slice(None)
    values = series.values[:, columns].astype(np.float64)
    fit = values[series.timestamps < train_until]
    std = fit.std(0)
    if fit.shape[0] < 2 or np.any(std == 0):
        raise DataError(f"{rec.source or rec.session}: behaviour {key!r} columns {columns} are constant (or "
                        "missing) in the training blocks; choose other columns")
    names = series.columns[columns] if series.columns else ()
    values = (values - fit.mean(0)) / std
    return replace(rec, behavior={key: TimeSeries(series.timestamps, values, names)},
                   metadata={**rec.metadata, f"{key}_scale": std})


def block_recording(
    rec: Recording, *, block: float, behavior_key: str, columns: slice | None = None,
    fractions: dict[str, float] | None = None, t0: float | None = None, t1: float | None = None,
) -> Recording:
    """``rec`` cut into back-to-back ``block``-second blocks (train / val / test in time order), behaviour z-scored.

    Columns of ``behavior_key`` that never vary in the training blocks are dropped when ``columns`` is None
    (e.g. the all-zero third row of a 2-D reaching task's velocity).
    """
    rec = contiguous_blocks(rec, block=block, fractions=fractions, t0=t0, t1=t1)
    train_end = float(rec.trials.end[rec.trials.columns["split"] == "train"].max())
    if columns is None and behavior_key in rec.behavior:
        series = rec.behavior[behavior_key]
        varies = np.flatnonzero(series.values[series.timestamps < train_end].std(0) > 0)
        columns = slice(int(varies.min()), int(varies.max()) + 1) if varies.size else None
    return zscore_behaviour(rec, behavior_key, columns, train_end)

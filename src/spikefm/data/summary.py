"""A readable summary of one recording: size, firing rates, sparsity, trials, behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikefm.data.recording import Recording

__all__ = ["RecordingSummary", "summarize"]

SPARSITY_BIN_SIZES = (0.001, 0.02)


@dataclass(frozen=True)
class RecordingSummary:
    """Numbers ``spikefm inspect`` prints.

    Attributes:
        rate_quantiles: firing rate (Hz) at the 5/25/50/75/95th percentiles over units.
        empty_bin_fraction: bin size (s) -> fraction of (bin, unit) entries with no spike,
            the sparsity a binned tokenizer pays for.
        silent_units: units with no spike at all (kept, never dropped).
    """

    session: str
    subject: str
    source: str
    n_units: int
    n_spikes: int
    start: float
    end: float
    rate_quantiles: dict[int, float]
    empty_bin_fraction: dict[float, float]
    silent_units: int
    n_heldout: int
    regions: dict[str, int]
    n_trials: int
    splits: dict[str, int]
    trial_columns: list[str]
    behavior: dict[str, tuple[int, int]] = field(default_factory=dict)
    binned: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


def _empty_fraction(rec: Recording, bin_size: float) -> float:
    n_bins = int(np.ceil(rec.duration / bin_size - 1e-9))
    occupied = np.unique(((rec.spikes.times - rec.start) / bin_size).astype(np.int64) * rec.n_units + rec.spikes.units)
    return 1.0 - occupied.size / max(1, n_bins * rec.n_units)


def summarize(rec: Recording) -> RecordingSummary:
    """Summarise a recording; O(n_spikes) time, no dense binning of the whole session."""
    rates = rec.spike_counts() / max(rec.duration, 1e-12)
    splits: dict[str, int] = {}
    columns: list[str] = []
    if rec.trials is not None:
        columns = sorted(rec.trials.columns)
        if "split" in rec.trials.columns:
            values, counts = np.unique(rec.trials.columns["split"].astype(str), return_counts=True)
            splits = dict(zip(values.tolist(), counts.tolist()))
    regions: dict[str, int] = {}
    if rec.units.region is not None:
        values, counts = np.unique(rec.units.region, return_counts=True)
        regions = dict(zip(values.tolist(), counts.tolist()))
    return RecordingSummary(
        session=rec.session,
        subject=rec.subject,
        source=rec.source,
        n_units=rec.n_units,
        n_spikes=rec.n_spikes,
        start=rec.start,
        end=rec.end,
        rate_quantiles={q: float(np.percentile(rates, q)) for q in (5, 25, 50, 75, 95)},
        empty_bin_fraction={b: _empty_fraction(rec, b) for b in SPARSITY_BIN_SIZES if b >= (rec.bin_size or 0)},
        silent_units=int(np.sum(rates == 0)),
        n_heldout=int(rec.units.heldout.sum()),
        regions=regions,
        n_trials=0 if rec.trials is None else len(rec.trials),
        splits=splits,
        trial_columns=columns,
        behavior={k: (v.timestamps.size, v.dim) for k, v in rec.behavior.items()},
        binned=rec.bin_size,
    )

"""Per-unit spike counts from a batch of spike tokens: the targets of count readouts (Poisson) and
the input of identity encoders (SPINT-style IDEncoder over a unit's binned activity).

Shape legend: U units of the batch (``batch.unit_keys``, every window's units), T bins.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spikefm.tokenize.base import Batch, TokenType

__all__ = ["bin_counts", "spike_events", "binned_spike_counts"]


def bin_counts(units: Tensor, bins: Tensor, n_units: int, n_bins: int) -> Tensor:
    """Counts [n_units, n_bins] of events (unit, bin); events in bins outside [0, n_bins) are dropped."""
    inside = (bins >= 0) & (bins < n_bins)
    flat = torch.zeros(n_units * n_bins, device=units.device)
    ones = torch.ones(int(inside.sum()), device=units.device)  # not a slice of flat: events may outnumber cells
    return flat.index_add(0, units[inside] * n_bins + bins[inside], ones).view(n_units, n_bins)


def spike_events(batch: Batch) -> tuple[Tensor, Tensor]:
    """(unit row [n] in ``batch.unit_keys``, window-relative time [n]) of every real SPIKE token."""
    spike = batch.mask & (batch.token_type == TokenType.SPIKE)
    return batch.unit_index[spike], batch.timestamps[spike]


def binned_spike_counts(batch: Batch, bin_of_time, n_bins: int) -> Tensor:
    """Spikes [U, n_bins] of every unit row of the batch, binned by ``bin_of_time`` (times -> long bins)."""
    units, times = spike_events(batch)
    return bin_counts(units, bin_of_time(times), len(batch.unit_keys), n_bins)

"""Per-unit spike counts of a batch (objectives/unit_counts): only real SPIKE tokens, out-of-range bins dropped."""

import numpy as np
import torch

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.nn.chunking import chunk_index
from spikefm.objectives.unit_counts import bin_counts, binned_spike_counts
from spikefm.tokenize.base import collate
from spikefm.tokenize.spikes import SpikeConfig, SpikeTokenizer


def test_bin_counts_counts_events_and_drops_bins_outside():
    units, bins = torch.tensor([0, 0, 1, 1, 1, 0]), torch.tensor([0, 0, 2, -1, 3, 1])
    assert bin_counts(units, bins, 2, 3).tolist() == [[2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def test_binned_spike_counts_are_the_recordings_binned_spikes():
    rec = generate(SyntheticConfig(n_sessions=1, units_per_session=(7, 7), n_trials=3, seed=4)).recordings[0]
    tokenizer = SpikeTokenizer(SpikeConfig(query="rate", query_rate_hz=20.0))
    windows = [tokenizer(rec.window(float(t), float(t) + 1.0)) for t in rec.trials.start[:2]]
    for pack in (True, False):
        batch = collate(windows, pack=pack)
        counts = binned_spike_counts(batch, lambda t: chunk_index(t, 0.25).clamp(0, 3), 4)  # [2 * U, 4]
        expected = np.concatenate([rec.bin(0.25, float(t), float(t) + 1.0).T for t in rec.trials.start[:2]])
        np.testing.assert_array_equal(counts.numpy(), expected)


def test_more_events_than_cells_are_all_counted():
    """Regression: the ones added were a slice of the [n_units * n_bins] buffer, so more spikes than
    cells (a busy unit, few chunks) raised in index_add."""
    units = torch.zeros(10, dtype=torch.long)
    assert bin_counts(units, torch.zeros(10, dtype=torch.long), 1, 2).tolist() == [[10.0, 0.0]]

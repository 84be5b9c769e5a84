"""Identities from unlabeled activity (nn/calibration): in-batch identities never read a row's own
window, registered tables replace their sessions' rows, calibration windows are binned spikes."""

import numpy as np
import pytest
import torch

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.nn import IDEncoder
from spikefm.nn.calibration import calibration_window_counts, in_batch_identities, with_registered


def test_a_rows_identity_does_not_depend_on_its_own_window():
    torch.manual_seed(0)
    encoder = IDEncoder(num_bins=5, dim=4, hidden_dim=8)
    keys = ["s/a", "s/b", "s/a", "s/b", "s/a", "s/b"]  # 3 windows of one session, 2 units each
    window = torch.tensor([0, 0, 1, 1, 2, 2])
    counts = torch.poisson(torch.full((6, 5), 2.0))
    base = in_batch_identities(encoder, counts, keys, window, ["s", "s", "s"], training=False)
    changed = counts.clone()
    changed[:2] += 5  # window 0's activity
    out = in_batch_identities(encoder, changed, keys, window, ["s", "s", "s"], training=False)
    torch.testing.assert_close(out[:2], base[:2])  # window 0 pools windows 1 and 2 only
    assert not torch.allclose(out[2:], base[2:])


def test_registered_tables_replace_their_sessions_rows_and_name_missing_units():
    identity = torch.zeros(3, 2)
    tables = {"s": {"s/a": torch.ones(2), "s/b": torch.full((2,), 2.0)}}
    out = with_registered(identity, ["s/a", "t/a", "s/b"], ["s", "t", "s"], tables)
    assert out.tolist() == [[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]]
    with pytest.raises(KeyError, match="calibrate"):
        with_registered(identity, ["s/a", "s/c", "s/b"], ["s", "s", "s"], tables)


def test_calibration_windows_are_the_recordings_binned_spikes():
    rec = generate(SyntheticConfig(n_sessions=1, units_per_session=(6, 6), n_trials=5, seed=2)).recordings[0]
    counts = calibration_window_counts(rec, trials=[1, 3], starts=None, n_windows=8, bin_size=0.1, window=0.5)
    assert counts.shape == (rec.n_units, 2, 5) and counts.dtype == torch.float32
    expected = rec.bin(0.1, rec.trials.start[3], rec.trials.start[3] + 0.5).T  # [U, T]
    np.testing.assert_array_equal(counts[:, 1].numpy(), expected)
    default = calibration_window_counts(rec, trials=None, starts=None, n_windows=8, bin_size=0.1, window=0.5)
    n_train = int((np.asarray(rec.trials.columns["split"]).astype(str) == "train").sum())
    assert default.shape[1] == n_train < 8  # every train trial, fewer than n_windows


def test_default_calibration_windows_are_train_trials_only():
    """Regression: the default took the first trials whatever their split (test trial 0 included)."""
    rec = generate(SyntheticConfig(n_sessions=1, units_per_session=(5, 5), n_trials=12, seed=5)).recordings[0]
    split = np.asarray(rec.trials.columns["split"]).astype(str)
    assert split[0] != "train"  # the draw this test needs
    counts = calibration_window_counts(rec, trials=None, starts=None, n_windows=3, bin_size=0.1, window=0.5)
    train = np.flatnonzero(split == "train")[:3]
    expected = calibration_window_counts(rec, trials=train, starts=None, n_windows=3, bin_size=0.1, window=0.5)
    assert torch.equal(counts, expected)

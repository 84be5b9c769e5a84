"""Binned (population vector) and patch tokenizers: exact round trips to Recording.bin."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tok_strategies import make_recording, spikes_in, windows

from spikefm.tokenize import BinnedConfig, BinnedTokenizer, PatchConfig, PatchTokenizer, TokenType

FAST = settings(max_examples=40, deadline=None)
BIN_SIZES = st.sampled_from([0.005, 0.01, 0.02, 0.03, 0.05])


@FAST
@given(windows(), BIN_SIZES)
def test_binned_round_trip_equals_recording_bin(pair, bin_size):
    recording, window = pair
    tokens = BinnedTokenizer(BinnedConfig(bin_size=bin_size, query="none"))(window)
    counts = BinnedTokenizer.to_counts(tokens)
    assert np.array_equal(counts, recording.bin(bin_size, window.t0, window.t1))
    times, units = spikes_in(recording, window.t0, window.t1)
    assert np.array_equal(counts.sum(0), np.bincount(units, minlength=recording.n_units))
    assert counts.shape[0] == int(np.ceil(window.duration / bin_size - 1e-9)) or counts.shape[0] == 1
    assert np.all(np.diff(tokens.timestamps) > 0)
    assert 0 < tokens.timestamps[0] and tokens.timestamps[-1] < window.duration
    assert (tokens.unit_index == -1).all() and (tokens.token_type == TokenType.SPIKE).all()


@FAST
@given(windows(), BIN_SIZES)
def test_binned_is_deterministic(pair, bin_size):
    _, window = pair
    tokenizer = BinnedTokenizer(BinnedConfig(bin_size=bin_size, query="none"))
    a, b = tokenizer(window), tokenizer(window)
    assert np.array_equal(a.values, b.values) and np.array_equal(a.timestamps, b.timestamps)


def test_consecutive_windows_partition_the_spikes():
    rng = np.random.default_rng(3)
    times = np.concatenate([rng.uniform(0, 2.0, 300), np.arange(0, 2.0, 0.1)])  # many on edges
    units = rng.integers(0, 4, times.size)
    rec = make_recording(times, units, 4, 2.0)
    tokenizer = BinnedTokenizer(BinnedConfig(bin_size=0.02, query="none"))
    edges = np.round(np.arange(0, 2.01, 0.1), 10)
    total = sum(tokenizer(rec.window(a, b)).values.sum(0) for a, b in zip(edges[:-1], edges[1:]))
    assert np.array_equal(total, rec.spike_counts())


def test_partial_last_bin_ends_at_the_window_end():
    rec = make_recording(np.array([0.049, 0.0]), np.array([0, 0]), 1, 1.0)
    tokens = BinnedTokenizer(BinnedConfig(bin_size=0.02, query="none"))(rec.window(0.0, 0.05))
    assert tokens.values[:, 0].tolist() == [1, 0, 1]
    assert np.allclose(tokens.timestamps, [0.01, 0.03, 0.045])


def test_clip_and_count_classes():
    rec = make_recording(np.full(7, 0.001), np.zeros(7, np.int64), 2, 1.0)
    tokens = BinnedTokenizer(BinnedConfig(bin_size=0.02, clip=5, n_classes=4, query="none"))(rec.window(0.0, 0.04))
    assert tokens.values[:, 0].tolist() == [5, 0]
    assert tokens.extras["count_class"][:, 0].tolist() == [3, 0]
    assert tokens.extras["count_class"].shape == tokens.values.shape


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: BinnedConfig(bin_size=0.0), "bin_size"),
        (lambda: BinnedConfig(bin_size=float("nan")), "bin_size"),
        (lambda: BinnedConfig(clip=0), "clip"),
        (lambda: BinnedConfig(n_classes=1), "n_classes"),
        (lambda: PatchConfig(neurons_per_patch=0), "neurons_per_patch"),
        (lambda: PatchConfig(bins_per_patch=1.5), "bins_per_patch"),
        (lambda: PatchConfig(clip=-1), "clip"),
    ],
)
def test_config_validation(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---------------------------------------------------------------------------- patches
@FAST
@given(windows(), BIN_SIZES, st.integers(1, 5), st.integers(1, 3))
def test_patch_round_trip_equals_recording_bin(pair, bin_size, neurons_per_patch, bins_per_patch):
    recording, window = pair
    tokenizer = PatchTokenizer(PatchConfig(bin_size=bin_size, neurons_per_patch=neurons_per_patch,
                                           bins_per_patch=bins_per_patch, query="none"))
    tokens = tokenizer(window)
    counts = recording.bin(bin_size, window.t0, window.t1)
    assert np.array_equal(tokenizer.to_counts(tokens), counts)
    n_steps = -(-counts.shape[0] // bins_per_patch)
    n_groups = -(-counts.shape[1] // neurons_per_patch)
    assert tokens.values.shape == (n_steps * n_groups, bins_per_patch * neurons_per_patch)
    assert tokens.extras["channel_mask"].sum() == counts.size
    assert tokens.values[~tokens.extras["channel_mask"]].sum() == 0
    assert tokens.values.sum() == counts.sum()
    assert np.all(np.diff(tokens.extras["patch_time"]) >= 0)


def test_patch_layout_is_time_major_and_row_major_inside():
    # 3 units, 2 bins of 10 ms; unit u spikes (u + 1) times in bin 0 and once in bin 1 (unit 2 only)
    times = np.array([0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.015])
    units = np.array([0, 1, 1, 2, 2, 2, 2])
    rec = make_recording(times, units, 3, 1.0)
    tokenizer = PatchTokenizer(PatchConfig(bin_size=0.01, neurons_per_patch=2, bins_per_patch=2, query="none"))
    tokens = tokenizer(rec.window(0.0, 0.02))
    # groups: (u0, u1) and (u2, pad); one time step of 2 bins; values row-major over (bin, unit)
    assert tokens.values.tolist() == [[1, 2, 0, 0], [3, 0, 1, 0]]
    assert tokens.extras["channel_mask"].tolist() == [[True] * 4, [True, False, True, False]]
    assert tokens.extras["patch_time"].tolist() == [0, 0]
    assert tokens.extras["patch_group"].tolist() == [0, 1]
    assert np.allclose(tokens.timestamps, [0.01, 0.01])


def test_patch_count_classes_and_ndt2_defaults():
    rng = np.random.default_rng(0)
    rec = make_recording(np.sort(rng.uniform(0, 1, 2000)), rng.integers(0, 70, 2000), 70, 1.0)
    tokens = PatchTokenizer(PatchConfig(clip=20, n_classes=22, query="none"))(rec.window(0.0, 1.0))
    assert tokens.values.shape == (50 * 3, 32)  # 20 ms bins, 32-unit patches, 70 units -> 3 groups
    assert tokens.extras["count_class"].max() <= 21 and tokens.values.max() <= 20


def test_spike_rounded_onto_the_relative_window_end_is_still_binned():
    # Found by hypothesis: a spike just before t1 lands exactly on the relative end after t0 is subtracted.
    t0 = 0.40891909891775396
    recording = make_recording(np.array([np.nextafter(1.0, 0.0)]), np.array([0]), 1, 1.0)
    window = recording.window(t0, 1.0)
    assert window.recording.spikes.times[0] == window.recording.end  # the rounding this test is about
    expected = recording.bin(0.005, t0, 1.0)
    assert expected.sum() == 1
    binned = BinnedTokenizer(BinnedConfig(bin_size=0.005, query="none"))
    assert np.array_equal(BinnedTokenizer.to_counts(binned(window)), expected)
    patches = PatchTokenizer(PatchConfig(bin_size=0.005, neurons_per_patch=1, bins_per_patch=1, query="none"))
    assert np.array_equal(patches.to_counts(patches(window)), expected)

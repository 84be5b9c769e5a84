import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spikefm.data.binned import from_binned, place_spikes
from spikefm.data.recording import DataError, Recording
from spikefm.data.store import read_recording, write_recording

counts_strategy = arrays(
    np.int64, st.tuples(st.integers(1, 20), st.integers(1, 6)), elements=st.integers(0, 30)
)


@settings(max_examples=60, deadline=None)
@given(counts=counts_strategy, bin_size=st.sampled_from([0.001, 0.02, 0.05, 0.25]), start=st.floats(-100, 5000))
def test_binning_the_placed_spikes_gives_back_the_counts(counts, bin_size, start):
    rec = from_binned(counts, bin_size, start=start)
    np.testing.assert_array_equal(rec.bin(bin_size, start), counts)
    assert rec.n_spikes == counts.sum() and rec.bin_size == bin_size
    assert rec.start == start and rec.end == pytest.approx(start + counts.shape[0] * bin_size)


def test_placement_is_evenly_spread_and_deterministic():
    trains = place_spikes(np.array([[3], [1]]), 0.3, start=1.0)
    np.testing.assert_allclose(trains.times, [1.05, 1.15, 1.25, 1.45])
    again = place_spikes(np.array([[3], [1]]), 0.3, start=1.0)
    np.testing.assert_array_equal(trains.times, again.times)


def test_behaviour_is_stamped_at_bin_centres_and_classmethod_matches():
    vel = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    rec = Recording.from_binned(np.ones((3, 2), int), 0.1, {"hand_vel": vel}, start=2.0, session="m1")
    np.testing.assert_allclose(rec.behavior["hand_vel"].timestamps, [2.05, 2.15, 2.25])
    np.testing.assert_array_equal(rec.behavior["hand_vel"].values, vel)
    assert rec.session == "m1" and rec.units.ids.tolist() == ["0", "1"]


def test_store_keeps_the_binned_marker(tmp_path):
    rec = from_binned(np.array([[1, 2], [0, 4]]), 0.05)
    back = read_recording(write_recording(rec, tmp_path / "b.h5"))
    assert back.bin_size == 0.05
    np.testing.assert_array_equal(back.bin(0.05, 0.0), [[1, 2], [0, 4]])


@pytest.mark.parametrize(
    "counts, bin_size, behaviour, message",
    [
        (np.array([1, 2]), 0.1, None, "must be 2-D"),
        (np.array([[1, -1]]), 0.1, None, "non-negative whole"),
        (np.array([[1.5, 0]]), 0.1, None, "non-negative whole"),
        (np.array([[np.nan, 0]]), 0.1, None, "NaN"),
        (np.array([[1, 0]]), 0.0, None, "'bin_size'"),
        (np.array([[1, 0]]), 0.1, {"vel": np.zeros((2, 2))}, "'vel' has 2 rows for 1 bins"),
    ],
)
def test_malformed_input_is_a_clear_error(counts, bin_size, behaviour, message):
    with pytest.raises(DataError, match=message):
        from_binned(counts, bin_size, behaviour, source="x.mat")

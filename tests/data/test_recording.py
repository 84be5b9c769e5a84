import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.data import recording as recording_module
from spikefm.data.recording import DataError, Intervals, Recording, SpikeTrains, TimeSeries, Units


def make(times, units, n_units=None, **kwargs) -> Recording:
    times = np.asarray(times, float)
    units = np.asarray(units, int)
    n_units = n_units if n_units is not None else (int(units.max()) + 1 if units.size else 1)
    return Recording(
        spikes=SpikeTrains(times, units),
        units=Units(ids=[f"u{i}" for i in range(n_units)]),
        **kwargs,
    )


@st.composite
def recordings(draw):
    n_units = draw(st.integers(1, 6))
    n_spikes = draw(st.integers(0, 60))
    times = np.sort(np.array(draw(st.lists(st.floats(0, 10, allow_nan=False), min_size=n_spikes, max_size=n_spikes))))
    units = np.array(draw(st.lists(st.integers(0, n_units - 1), min_size=n_spikes, max_size=n_spikes)), dtype=int)
    return make(times, units, n_units, start=0.0, end=10.0 + 1e-6)


def test_docstring_examples_run():
    failures, _ = doctest.testmod(recording_module)
    assert failures == 0


@settings(max_examples=50, deadline=None)
@given(rec=recordings(), cuts=st.lists(st.floats(0.01, 9.99), min_size=1, max_size=5, unique=True))
def test_consecutive_slices_partition_spikes(rec, cuts):
    edges = [0.0, *sorted(cuts), rec.end]
    parts = [rec.slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
    assert sum(p.n_spikes for p in parts) == rec.n_spikes
    np.testing.assert_array_equal(np.concatenate([p.spikes.times for p in parts]), rec.spikes.times)
    for part, (a, b) in zip(parts, zip(edges[:-1], edges[1:])):
        assert np.all((part.spikes.times >= a) & (part.spikes.times < b))


@settings(max_examples=50, deadline=None)
@given(rec=recordings(), bin_size=st.floats(0.013, 3.0))
def test_bin_conserves_every_spike_per_unit(rec, bin_size):
    counts = rec.bin(bin_size, 0.0, rec.end)
    np.testing.assert_array_equal(counts.sum(0), rec.spike_counts())
    assert counts.shape == (int(np.ceil(rec.end / bin_size - 1e-9)), rec.n_units)


@settings(max_examples=30, deadline=None)
@given(rec=recordings(), t0=st.floats(0, 5), length=st.floats(0.1, 5))
def test_relative_slice_shifts_times_and_records_origin(rec, t0, length):
    absolute = rec.slice(t0, t0 + length)
    relative = rec.slice(t0, t0 + length, relative=True)
    np.testing.assert_allclose(relative.spikes.times + t0, absolute.spikes.times)
    assert relative.origin == pytest.approx(t0)
    assert relative.start == 0.0 and relative.end == pytest.approx(length)


def test_spike_exactly_at_window_end_belongs_to_next_window():
    rec = make([0.0, 1.0, 2.0], [0, 0, 0], start=0.0, end=3.0)
    assert rec.slice(0.0, 1.0).n_spikes == 1
    assert rec.slice(1.0, 2.0).spikes.times.tolist() == [1.0]
    assert rec.bin(1.0, 0.0, 2.0)[:, 0].tolist() == [1, 1]  # the spike at t=2.0 is outside [0, 2)


def test_partial_last_bin_ends_at_t1():
    rec = make([0.1, 0.95, 1.04], [0, 0, 0], start=0.0, end=2.0)
    counts = rec.bin(0.5, 0.0, 1.05)
    assert counts[:, 0].tolist() == [1, 1, 1]


def test_slice_keeps_behaviour_and_overlapping_trials_relative():
    behavior = {"hand_vel": TimeSeries(np.arange(0, 4, 0.5), np.arange(8.0))}
    trials = Intervals(np.array([0.0, 2.0]), np.array([1.5, 3.5]), {"move_onset_time": np.array([0.5, 2.5])})
    rec = make([0.1, 2.2], [0, 0], behavior=behavior, trials=trials, start=0.0, end=4.0)
    window = rec.window(1.0, 2.5)
    assert window.recording.behavior["hand_vel"].timestamps.tolist() == [0.0, 0.5, 1.0]
    assert window.recording.trials.start.tolist() == [-1.0, 1.0]
    assert window.recording.trials.columns["move_onset_time"].tolist() == [-0.5, 1.5]
    assert window.duration == pytest.approx(1.5)


def test_select_units_reindexes_spikes():
    rec = make([0.1, 0.2, 0.3], [0, 2, 1], n_units=3)
    sub = rec.select_units(np.array([2, 0]))
    assert sub.units.ids.tolist() == ["u2", "u0"]
    assert sub.spikes.units.tolist() == [1, 0]


def test_unit_with_no_spikes_is_kept():
    rec = make([0.1], [0], n_units=3)
    assert rec.n_units == 3
    assert rec.spike_counts().tolist() == [1, 0, 0]


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: make([0.2, 0.1], [0, 0]), "not sorted"),
        (lambda: make([0.1, np.nan], [0, 0]), "NaN"),
        (lambda: make([0.1, 0.2], [0, 5], n_units=2), "out of range"),
        (lambda: make([], [], n_units=0), "empty recording"),
        (lambda: Units(ids=["a", "a"]), "duplicate"),
        (lambda: make([0.1], [0]).slice(1.0, 1.0), "t1 > t0"),
        (lambda: make([0.1], [0]).bin(0.0), "bin_size"),
    ],
)
def test_bad_input_raises_clear_error(build, message):
    with pytest.raises(DataError, match=message):
        build()


def test_error_names_the_source_file():
    with pytest.raises(DataError, match="data.nwb"):
        Recording(
            spikes=SpikeTrains(np.array([0.1]), np.array([3])),
            units=Units(ids=["a"]),
            source="data.nwb",
        )


def test_from_unit_times_round_trips_per_unit():
    per_unit = [np.array([0.3, 0.1]), np.array([]), np.array([0.2])]
    spikes = SpikeTrains.from_unit_times(per_unit)
    assert spikes.times.tolist() == [0.1, 0.2, 0.3]
    back = spikes.per_unit(3)
    assert [b.tolist() for b in back] == [[0.1, 0.3], [], [0.2]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.sampled_from([np.nan, np.inf, -np.inf])), max_size=8),
       st.booleans())
def test_spike_times_accepted_iff_sorted_and_finite(values, sort):
    times = np.array(sorted(values) if sort else values, dtype=np.float64)
    valid = bool(np.all(np.isfinite(times)) and np.all(np.diff(times) >= 0))
    if valid:
        np.testing.assert_array_equal(SpikeTrains(times, np.zeros(times.size, int)).times, times)
    else:
        with pytest.raises(DataError, match="non-finite|not sorted"):
            SpikeTrains(times, np.zeros(times.size, int))

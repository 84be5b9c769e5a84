"""Data that reads but would give silently wrong results: an error or a visible warning, never silence."""

import dataclasses
import warnings

import numpy as np
import pytest
import scipy.io as sio
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.data.checks import DataWarning, check_spike_span, check_trainable, far_outside
from spikefm.data.count_files import read_count_file
from spikefm.data.recording import DataError, Recording, SpikeTrains, TimeSeries, Units
from spikefm.data.store import load, write_recording
from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.train.config import RunConfig
from spikefm.train.data import load_recordings
from spikefm.train.fit import build_module


@pytest.fixture(scope="module")
def synthetic() -> Recording:
    return generate(SyntheticConfig(n_sessions=1, units_per_session=(8, 8), n_trials=20, seed=1)).recordings[0]


def _stored(tmp_path, rec: Recording) -> RunConfig:
    path = write_recording(rec, tmp_path / f"{rec.session}.h5")
    return RunConfig.from_dict({"model": {"name": "poyo"}, "data": {"paths": [str(path)]}})


# ------------------------------------------------------------- behaviour with no finite value
def test_all_nan_behaviour_cannot_train_a_decoder(tmp_path, synthetic):
    series = synthetic.behavior["hand_vel"]
    nan = TimeSeries(series.timestamps, np.full_like(series.values, np.nan), series.columns)
    config = _stored(tmp_path, dataclasses.replace(synthetic, behavior={**synthetic.behavior, "hand_vel": nan}))
    with pytest.warns(DataWarning, match="behaviour 'hand_vel' has no finite value"):
        recordings, _ = load_recordings(config.data)
    assert "hand_vel" not in recordings[0].behavior
    with pytest.raises(ValueError, match="POYO decodes 'hand_vel'"):  # before any step (was: loss exactly 0.0)
        build_module(config, recordings)


def test_partly_nan_behaviour_is_kept(synthetic):
    series = synthetic.behavior["hand_vel"]
    values = series.values.copy()
    values[::2] = np.nan
    rec = dataclasses.replace(synthetic, behavior={"hand_vel": TimeSeries(series.timestamps, values)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        (kept,) = check_trainable([rec])
    assert "hand_vel" in kept.behavior


# ------------------------------------------------------------- no spikes
def test_recording_without_spikes_is_an_error(tmp_path, synthetic):
    empty = dataclasses.replace(synthetic, spikes=SpikeTrains(np.zeros(0), np.zeros(0, int)))
    config = _stored(tmp_path, empty)
    with pytest.raises(DataError, match=f"session '{synthetic.session}' has no spikes"):
        load_recordings(config.data)


# ------------------------------------------------------------- behaviour a few bins short
def test_behaviour_a_few_bins_short_is_named_in_a_warning(tmp_path):
    rng = np.random.default_rng(0)
    counts, time = rng.poisson(1.0, size=(5, 200)), 0.05 * np.arange(200)
    sio.savemat(tmp_path / "short.mat", {"spikes": counts, "time": time[None], "handVel": rng.normal(size=(2, 195)),
                                         "handPos": rng.normal(size=(2, 200))})
    with pytest.warns(DataWarning, match=r"short.mat: field 'handVel' \(shape \(2, 195\)\) has 195 samples but the "
                                         r"counts have 200 bins"):
        rec = read_count_file(tmp_path / "short.mat")
    assert list(rec.behavior) == ["hand_pos"]


def test_unrelated_arrays_do_not_warn(tmp_path):
    rng = np.random.default_rng(0)
    counts, time = rng.poisson(1.0, size=(5, 200)), 0.05 * np.arange(200)
    sio.savemat(tmp_path / "ok.mat", {"spikes": counts, "time": time[None], "targets": rng.normal(size=(8, 2)),
                                      "handVel": rng.normal(size=(2, 200))})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert list(read_count_file(tmp_path / "ok.mat").behavior) == ["hand_vel"]


# ------------------------------------------------------------- spike times far outside the rest
def test_spike_at_1e7_seconds_is_a_warning_naming_the_file(tmp_path, synthetic):
    times = np.append(synthetic.spikes.times, 1e7)
    far = dataclasses.replace(synthetic, spikes=SpikeTrains(times, np.append(synthetic.spikes.units, 0)), end=1e7 + 1)
    path = write_recording(far, tmp_path / "far.h5")
    with pytest.warns(DataWarning, match=r"far.h5: 1 spike time\(s\) lie far outside .*1e\+07 s"):
        load(path)


def test_ordinary_recordings_do_not_warn(tmp_path, synthetic):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        load(write_recording(synthetic, tmp_path / "ok.h5"))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 3000),
    span=st.floats(1e-3, 1e5),
    start=st.floats(-1e6, 1e6),
    seed=st.integers(0, 2**16),
)
def test_spikes_spread_over_any_span_are_never_outliers(n, span, start, seed):
    times = np.sort(start + np.random.default_rng(seed).uniform(0, span, n))
    assert far_outside(times).size == 0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(200, 3000), k=st.integers(1, 2), at=st.sampled_from([1e7, -1e7, 5e5]))
def test_a_few_far_spikes_are_found(n, k, at):
    times = np.sort(np.append(np.linspace(0.0, 1000.0, n), np.full(k, at)))
    assert far_outside(times).tolist() == [at] * k


def test_check_spike_span_on_a_recording_in_memory():
    rec = Recording(spikes=SpikeTrains(np.r_[np.linspace(0, 10, 300), 1e6], np.zeros(301, int)),
                    units=Units(ids=["u"]), session="mine")
    with pytest.warns(DataWarning, match="^mine: 1 spike"):
        check_spike_span(rec)


def test_a_unit_on_another_clock_is_outside_the_behaviour(synthetic):
    # 30% of the spikes shifted by 1e6 s: the spikes' own core span covers them, the behaviour's does not.
    times, units = synthetic.spikes.times.copy(), synthetic.spikes.units
    shifted = units < 3
    times[shifted] += 1e6
    order = np.argsort(times, kind="stable")
    rec = dataclasses.replace(synthetic, spikes=SpikeTrains(times[order], units[order]), end=times.max() + 1)
    assert far_outside(rec.spikes.times).size == 0
    with pytest.warns(DataWarning, match=f"{shifted.sum()} spike time\\(s\\) lie far outside .* behaviour / trials'"):
        check_spike_span(rec)

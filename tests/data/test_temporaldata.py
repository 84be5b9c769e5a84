import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.data.recording import DataError, Recording, SpikeTrains, Units
from spikefm.data.store import load
from spikefm.data.synthetic import SyntheticConfig, generate

temporaldata = pytest.importorskip("temporaldata")
from spikefm.data.temporaldata_io import read_temporaldata, write_temporaldata  # noqa: E402


def test_synthetic_recording_round_trips_through_temporaldata(tmp_path):
    rec = generate(SyntheticConfig(n_sessions=1, units_per_session=(10, 10), n_trials=10)).recordings[0]
    path = write_temporaldata(rec, tmp_path / "synth.h5")
    with h5py.File(path, "r") as handle:  # the library itself reads what spikefm wrote
        data = temporaldata.Data.from_hdf5(handle, lazy=False)
        assert len(data.spikes) == rec.n_spikes and data.session.id == rec.session
    back = load(path)
    np.testing.assert_array_equal(back.spikes.times, rec.spikes.times)
    np.testing.assert_array_equal(back.spikes.units, rec.spikes.units)
    np.testing.assert_array_equal(back.units.ids, rec.units.ids)
    np.testing.assert_array_equal(back.units.region, rec.units.region)
    np.testing.assert_array_equal(back.units.heldout, rec.units.heldout)
    np.testing.assert_array_equal(back.behavior["hand_vel"].values, rec.behavior["hand_vel"].values)
    np.testing.assert_array_equal(back.trials.columns["split"], rec.trials.columns["split"])
    assert (back.session, back.subject, back.start, back.end) == (rec.session, rec.subject, rec.start, rec.end)


def _brainsets_file(path, *, unit_index=None):
    """A file laid out as brainsets writes one: descriptions, units, spikes, cursor, trials with split masks."""
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 10, 500))
    domain = temporaldata.Interval(np.array([0.0]), np.array([10.0]))
    data = temporaldata.Data(
        session=temporaldata.Data(id="c_20131003"), subject=temporaldata.Data(id="monkey_c"),
        units=temporaldata.ArrayDict(id=np.array([b"elec1_u1", b"elec2_u1", b"elec3_u1"]),
                                     brain_region=np.array([b"M1", b"M1", b"PMd"])),
        spikes=temporaldata.IrregularTimeSeries(
            timestamps=times, unit_index=rng.integers(0, 3, 500) if unit_index is None else unit_index, domain="auto"),
        cursor=temporaldata.IrregularTimeSeries(timestamps=np.arange(0, 10, 0.01), pos=rng.normal(size=(1000, 2)),
                                                vel=rng.normal(size=(1000, 2)), domain="auto"),
        trials=temporaldata.Interval(start=np.arange(0, 10, 2.0), end=np.arange(0, 10, 2.0) + 1.5,
                                     train_mask=np.array([1, 1, 1, 0, 0], bool), valid_mask=np.array([0, 0, 0, 1, 0], bool),
                                     test_mask=np.array([0, 0, 0, 0, 1], bool)),
        domain=domain,
    )
    with h5py.File(path, "w") as handle:
        data.to_hdf5(handle)
    return path


def test_brainsets_layout_reads_units_regions_behaviour_and_splits(tmp_path):
    rec = read_temporaldata(_brainsets_file(tmp_path / "c.h5"))
    with h5py.File(tmp_path / "c.h5", "r") as handle:
        assert rec.n_spikes == len(temporaldata.Data.from_hdf5(handle, lazy=False).spikes) == 500
    assert rec.session == "c_20131003" and rec.subject == "monkey_c"
    assert rec.units.ids.tolist() == ["elec1_u1", "elec2_u1", "elec3_u1"] and rec.units.region.tolist() == ["M1", "M1", "PMd"]
    assert set(rec.behavior) == {"cursor_pos", "cursor_vel"}
    assert rec.trials.columns["split"].tolist() == ["train", "train", "train", "val", "test"]


def test_bad_unit_index_is_a_data_error(tmp_path):
    path = _brainsets_file(tmp_path / "bad.h5", unit_index=np.full(500, 7))
    with pytest.raises(DataError, match="unit_index"):
        read_temporaldata(path)
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(DataError, match="not a temporaldata file"):
        read_temporaldata(tmp_path / "other.h5")


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100, allow_nan=False), st.integers(0, 4)), min_size=1, max_size=60))
def test_any_spike_set_round_trips_exactly(tmp_path_factory, spikes):
    times = np.array([t for t, _ in spikes])
    order = np.argsort(times, kind="stable")
    rec = Recording(spikes=SpikeTrains(times[order], np.array([u for _, u in spikes])[order]),
                    units=Units(ids=np.array([f"u{i}" for i in range(5)])), session="s")
    back = read_temporaldata(write_temporaldata(rec, tmp_path_factory.mktemp("td") / "s.h5"))
    np.testing.assert_array_equal(back.spikes.times, rec.spikes.times)
    np.testing.assert_array_equal(back.spikes.units, rec.spikes.units)
    np.testing.assert_array_equal(back.spike_counts(), rec.spike_counts())
